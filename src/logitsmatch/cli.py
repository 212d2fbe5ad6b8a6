"""The ``logitsmatch`` command: one subcommand per job (generate, serve, check, record, compare)."""

from __future__ import annotations

import difflib
import sys

COMMANDS = {
    "generate": "run an engine on prompts and write the output JSON (--zmq: through the "
    "ZeroMQ coordinator)",
    "serve": "serve an engine behind the ZeroMQ coordinator",
    "check": "run cases and compare them with their goldens (the tripwire)",
    "record": "run a case and write its golden, with provenance",
    "compare": "compare an output JSON with a golden, running nothing",
}


def usage() -> str:
    """The top-level help: one line per subcommand."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, what in COMMANDS.items()]
    return (
        "usage: logitsmatch COMMAND [options]   (logitsmatch COMMAND --help for its options)\n\n"
        "commands:\n" + "\n".join(lines)
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _HANDLERS
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] not in commands:
        (nearest,) = difflib.get_close_matches(argv[0], list(commands), n=1, cutoff=0.0)
        print(
            f"logitsmatch: unknown command {argv[0]!r}; did you mean {nearest!r}?\n\n{usage()}",
            file=sys.stderr,
        )
        return 2
    try:
        return commands[argv[0]](argv[1:])
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"logitsmatch {argv[0]}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # why: Ctrl-C is an answer, not a crash: no traceback
        print(f"logitsmatch {argv[0]}: interrupted", file=sys.stderr)
        return 130


def _generate(argv: list[str]) -> int:
    if "--zmq" in argv:
        from logitsmatch.serving.zmq_generate import main as zmq_main

        return zmq_main(argv)
    from logitsmatch.engine.generate import main

    return main(argv)


def _serve(argv: list[str]) -> int:
    from logitsmatch.serving.serve import main

    return main(argv)


def _check(argv: list[str]) -> int:
    from logitsmatch.harness.run.check import check_main

    return check_main(argv)


def _record(argv: list[str]) -> int:
    from logitsmatch.harness.goldens.record import record_main

    return record_main(argv)


def _compare(argv: list[str]) -> int:
    from logitsmatch.harness.goldens.compare import compare_main

    return compare_main(argv)


_HANDLERS = {
    "generate": _generate,
    "serve": _serve,
    "check": _check,
    "record": _record,
    "compare": _compare,
}
assert set(_HANDLERS) == set(COMMANDS)  # why: the help lists exactly what main dispatches


if __name__ == "__main__":
    sys.exit(main())
