"""The harness: cases, runs, goldens, comparison and reports (imports serving and engine, never
``logitsmatch.ci``, which sits above it).

Its packages, each with a small public face; each imports only the ones above it, but for the
commands (``run.check``, ``goldens.record``, ``goldens.compare``), which only ``cli`` imports:

    judge/    compare a run with its golden: tolerances, verdicts, divergence, teacher forcing
    cases/    the case schema, its YAML loading and lookup, the platform table, engine flags
    reports/  how a target ended (outcomes) and its terminal, markdown, JUnit and plot reports
    goldens/  golden I/O, schema, diff, provenance; the ``record`` and ``compare`` commands
    run/      this machine, skips, engine runs in run folders, run + judge a target; ``check``
"""
