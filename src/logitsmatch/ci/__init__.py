"""CI plumbing: the case targets nox lists, where each platform's jobs run, the GitHub and GitLab
matrices, the `docker run` of a target (`repro`), the CI linters and the fallback CI report.

Above the harness: `logitsmatch.ci` may import `logitsmatch.harness`, never the other way. Stdlib
and pyyaml only (`targets`, `runners` and `repro`: stdlib only), so that CI runners use it from
the checkout with a bare python3, before anything is installed.
"""
