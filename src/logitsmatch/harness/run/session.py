"""The engine runs of one case target, in its run folder, within the case's deadline.

``EngineSession.run_case`` runs the case's requests once (the builtin engine, or the case's
ENGINE command template); ``run_scoring`` runs exact token-id prompts through the builtin
engine (teacher forcing). Each run gets a subfolder (``repeat-1/``, ``scoring/``) with its
prompts, output JSON, engine log and rank logs; ``run.log`` in the run folder says what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logitsmatch.harness.cases import Case, CaseError, CaseTarget
from logitsmatch.harness.cases.fields import expand
from logitsmatch.harness.cases.flags import (
    builtin_argv,
    expand_vars,
    mode_flags,
    run_environ,
)
from logitsmatch.harness.cases.platforms import TABLE, platform_info
from logitsmatch.harness.run.command import EngineRun, run_engine
from logitsmatch.harness.run.folders import new_run_folder


def add_deadline_flag(parser: argparse.ArgumentParser) -> None:
    """``--deadline-s S``: replace every case's whole-run deadline (DEADLINE_S, default 900)."""
    parser.add_argument(
        "--deadline-s",
        type=_seconds,
        metavar="S",
        help="kill the run after S seconds instead of the case's DEADLINE_S (for a slow "
        "machine or a long case; a Megatron folder cannot say it)",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text}")
    return value


# Time the builtin engine gets past its own --deadline-s to kill its ranks and name the failure.
BUILTIN_GRACE_S = 30.0


def case_notes(case: Case) -> tuple[str, ...]:
    """How the case runs with the builtin engine here: its model, and its no-op flags."""
    if case.engine != "builtin":
        return ()
    notes = [f"model: {case.binding.run_model}"]
    if case.binding.golden_model:
        notes.append(f"its upstream goldens: {case.binding.golden_model}")
    prompts = case.prompt_file
    if prompts is not None and prompts.uses_stand_in(os.environ):
        notes.append(
            f"prompts: stand-in {prompts.stand_in} (seeded synthetic chat requests) for "
            f"{prompts.name}, which is not shipped (set DATA_PATH to read the real one)"
        )
    if case.flags.unused:
        notes.append("no-op here: " + "; ".join(case.flags.unused_lines()))
    return tuple(notes)


def resolve_run(
    case: Case, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], dict[str, Any], tuple[str, ...]]:
    """What a run of ``case`` resolves before it starts: (its environment, the builtin engine's
    MODEL_ARGS with ``${VAR}``s expanded (empty for an ENGINE command), its prompts); a
    CaseError naming the field when one cannot be resolved. ``environ``: default this
    process's environment."""
    env = run_environ(case, environ)
    model_args = expand_vars(case, case.engine_args, env) if case.engine == "builtin" else {}
    return env, model_args, case.load_prompts(env)


def echo_stderr(line: str) -> None:
    """The default progress output: one line on stderr."""
    print(line, file=sys.stderr, flush=True)


@dataclass
class EngineSession:
    """Engine runs for ``target`` in ``run_dir``, all within one deadline (the case's)."""

    target: CaseTarget
    run_dir: Path
    echo: Callable[[str], None] = echo_stderr
    env: dict[str, str] = field(default_factory=dict)
    deadline_at: float = 0.0
    prompts: tuple[str, ...] = ()
    _model_args: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(
        cls, target: CaseTarget, parent: Path, echo: Callable[[str], None] = echo_stderr
    ) -> EngineSession:
        """A new run folder under ``parent``; logs the model the run uses and the MODEL_ARGS
        that are no-ops here (GPU-only, not applicable).

        Raises CaseError when the case cannot be run as written (an unset ${VAR}, a prompt file
        that cannot be read, a platform the hardware table does not know).
        """
        case = target.case
        session = cls(target, new_run_folder(parent), echo)
        session.deadline_at = time.monotonic() + case.deadline_s
        session.log(f"{target.id}: run folder {session.run_dir}")
        if case.engine == "builtin" and platform_info(target.platform) is None:
            raise CaseError(
                f"{case.source}: PLATFORMS.{target.platform}: no such row in the platform "
                f"table ({TABLE}): device and dtype unknown"
            )
        for note in case_notes(case):
            session.log(f"{target.id}: {note}")
        session.env, session._model_args, session.prompts = resolve_run(case)
        return session

    @property
    def builtin(self) -> bool:
        return self.target.case.engine == "builtin"

    def log(self, line: str, *, echo: bool = True) -> None:
        """Append ``line`` to ``run.log``; echo it too unless ``echo`` is False."""
        if echo:
            self.echo(f"logitsmatch: {line}")
        with open(self.run_dir / "run.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def remaining_s(self) -> float:
        return max(1.0, self.deadline_at - time.monotonic())

    def run_case(self, name: str) -> EngineRun:
        """The case's requests, once, in subfolder ``name``."""
        folder = self.run_dir / name
        folder.mkdir()
        output = folder / "output.json"
        if self.builtin:
            prompts = [{"prompt": p} for p in self.prompts]
            mode = mode_flags(self.target.case)
            argv = self._builtin(folder, prompts, self._model_args, output, mode)
        else:
            argv = self._template(folder, output)
        return self._run(name, argv, folder, output)

    def run_scoring(
        self, name: str, token_ids: Sequence[Sequence[int]], model_args: Mapping[str, Any]
    ) -> EngineRun:
        """Score exact token-id prompts with the builtin engine and ``model_args``, in its own
        loop also for DRIVER zmq cases: the coordinator's driver staggers generation lengths,
        and batch-invariant numerics do not depend on the path."""
        folder = self.run_dir / name
        folder.mkdir()
        output = folder / "output.json"
        prompts = [{"prompt_token_ids": list(ids)} for ids in token_ids]
        argv = self._builtin(folder, prompts, model_args, output)
        return self._run(name, argv, folder, output)

    @property
    def model_args(self) -> dict[str, Any]:
        """The MODEL_ARGS passed to the builtin engine (filtered, ${VAR} expanded)."""
        return dict(self._model_args)

    def _builtin(
        self,
        folder: Path,
        prompts: list[dict[str, Any]],
        model_args: Mapping[str, Any],
        output: Path,
        mode: Sequence[str] = (),
    ) -> list[str]:
        prompt_file = folder / "prompts.jsonl"
        prompt_file.write_text("".join(json.dumps(p) + "\n" for p in prompts), encoding="utf-8")
        platform = platform_info(self.target.platform)
        assert platform is not None  # checked in open()
        return builtin_argv(
            platform,
            model_args,
            prompt_file=prompt_file,
            output_path=output,
            run_dir=folder,
            deadline_s=self.remaining_s(),
            mode=mode,
        )

    def _template(self, folder: Path, output: Path) -> list[str]:
        words = self.target.case.engine_argv(
            output_path=str(output), run_dir=str(folder), platform=self.target.platform
        )
        source = self.target.case.source
        return [expand(w, self.env, source=source, field="ENGINE/MODEL_ARGS") for w in words]

    def _run(self, name: str, argv: list[str], folder: Path, output: Path) -> EngineRun:
        self.log(f"{self.target.id}: {name}: starting the engine (log: {folder / 'engine.log'})")
        run = run_engine(
            argv,
            output_path=output,
            log_path=folder / "engine.log",
            env=self.env,
            deadline_s=self.remaining_s(),
            grace_s=BUILTIN_GRACE_S if self.builtin else 0.0,
        )
        status = "ok" if run.error is None else run.error.splitlines()[0]
        self.log(f"{self.target.id}: {name}: {status} ({run.duration_s:.1f} s)")
        return run
