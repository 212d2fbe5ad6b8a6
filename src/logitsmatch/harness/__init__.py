"""The CI harness: cases, goldens, comparison, reports (imports serving and engine, not back)."""
