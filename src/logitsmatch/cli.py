"""The ``logitsmatch`` command: one subcommand per job (generate, serve, check, record, compare)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {
        "generate": _generate,
        "serve": _serve,
        "check": _check,
        "record": _record,
        "compare": _compare,
    }
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in commands:
        print("usage: logitsmatch {" + ",".join(commands) + "} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return commands[argv[0]](argv[1:])
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"logitsmatch {argv[0]}: error: {exc}", file=sys.stderr)
        return 2


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


if __name__ == "__main__":
    sys.exit(main())
