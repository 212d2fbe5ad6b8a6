"""Cases: what to run, where, and how strictly to compare; loaded and validated from YAML.

A case is ``cases/<name>.yaml`` (name = file stem), or a Megatron-LM test-case folder
``<name>/model_config.yaml`` next to ``golden_values_<env>_<platform>.json``, taken as is.
The schema is Megatron-LM's ``model_config.yaml`` plus the keys a standalone harness needs::

    DESCRIPTION: "reference case: Megatron's seed prompt, 30 greedy tokens"   # optional
    DRIVER: zmq                    # how the builtin engine gets the requests: in-process (its
                                   # own loop) or zmq (the ZeroMQ coordinator, generate --zmq)
    ENV_VARS:                      # exported to every rank (values become strings)
      CUBLAS_WORKSPACE_CONFIG: ":4096:8"
    TEST_TYPE: frozen-start        # Megatron's field, kept for compatibility
    MODE: inference                # the only mode this harness runs
    MODEL_ARGS:                    # the engine's flags (Megatron-LM names); true = bare flag,
      --model: smollm2-135m        # false/null = left out
      --tensor-model-parallel-size: 1
      --pipeline-model-parallel-size: 8
      --data-parallel-size: 1      # ranks = tp × pp × dp
      --num-tokens-to-generate: 30
      --top_k: 1
      --return-log-probs: true
      --prompts: "Time travel to 2008, ..."   # the requests: exactly one of --prompts (a
                                              # string or list), --prompt-file (JSONL of
                                              # strings or {"prompt": ...}) or PROMPTS
    METRICS: [generated_tokens, logprobs]     # which golden fields must match (default: tokens,
                                              # logprobs, text); throughput and
                                              # mem-max-allocated-bytes only when listed
    PLATFORMS:                     # where the case runs and what to expect there
      cpu: {expected: pass}
      dgx_h100: {expected: not_recorded, reason: "no H100 golden yet"}
    NPROC: 8                       # optional: ranks; see "NPROC" below
    TOLERANCES:                    # optional, per metric
      logprobs: {abs: 1.0e-3}
      throughput: {min_ratio: 0.9, max_ratio: 1.2}
      mem-max-allocated-bytes: {rel: 0.05}
    N_REPEAT: 1                    # runs; all must pass
    DETERMINISTIC: true            # repeats must be bit-identical (default: --deterministic-mode)
    DEADLINE_S: 900                # the whole run is killed after this
    ENGINE: builtin                # or e.g. "torchrun --nproc-per-node {nproc} gpt.py
                                   #   {model_args} --output-path {output_path}"

Request ids are "0", "1", ... in prompt order. ENGINE placeholders: {output_path} {model_args}
{nproc} {tp} {pp} {dp} {case} {platform} {run_dir}; ``{model_args}`` as its own word expands to
the MODEL_ARGS flags (see ``Case.engine_argv``). ``${VAR}`` in MODEL_ARGS values (and so in
ENGINE's ``{model_args}``) and in ENV_VARS is left for the runner to expand, from the
environment and the ENV_VARS before it (Megatron's cases use ${CHECKPOINT_LOAD_PATH},
${TENSORBOARD_PATH}); an unset one is an error naming it. ``--prompt-file`` is read when the
case loads, its ``${VAR}`` from the environment.

``DRIVER`` is required in a case file: renaming a case never changes what it runs. A Megatron
folder has no such key; it is driven as its name says (``*_zmq``: zmq, else in-process). An
ENGINE command drives itself; DRIVER then only says how the builtin engine would.

``NPROC``: the builtin engine runs the layout of MODEL_ARGS, tp × pp × dp ranks
(--tensor-model-parallel-size, --pipeline-model-parallel-size, --data-parallel-size, each 1
when not given), so an NPROC that differs from it is an error. An ENGINE command gets the ranks
as ``{nproc}`` (and ``{dp}``): NPROC must then be a multiple of tp × pp, and gives
dp = NPROC / (tp × pp) when MODEL_ARGS has no --data-parallel-size (else it must equal it).

``expected``: ``pass`` (compare with the golden), ``not_recorded`` (no golden yet: reported
as skipped, never passed), ``xfail`` (known to fail: a pass is reported as unexpected),
``skip`` (not run). All but ``pass`` need a ``reason``. A case file lists only platforms of
the platform table (``logitsmatch.harness.cases.platforms``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from logitsmatch.harness.cases import fields as f
from logitsmatch.harness.cases.binding import ModelBinding, bind_model
from logitsmatch.harness.cases.engine_check import check_engine_args, without_vars
from logitsmatch.harness.cases.fields import CaseError, Driver, Expected, PromptFile
from logitsmatch.harness.cases.flag_table import FlagReport, RunShape, sort_flags
from logitsmatch.harness.cases.platforms import PLATFORMS
from logitsmatch.harness.judge.tolerances import (
    DEFAULT_METRICS,
    KNOWN_METRICS,
    ToleranceError,
    Tolerances,
)

TEST_TYPES = ("regular", "frozen-start", "ckpt-resume")
# Every top-level key, with what it is for. Megatron-LM's keys are all here (a folder loads as
# it is upstream); a key in no row is an error with the nearest key.
KEYS: dict[str, str] = {
    "DESCRIPTION": "one line saying what the case checks",
    "ENV_VARS": "exported to every rank",
    "TEST_TYPE": "Megatron-LM's test type: " + ", ".join(TEST_TYPES) + "; kept, not used",
    "MODE": "inference, the only mode this harness runs",
    "MODEL_ARGS": "the engine's flags (src/logitsmatch/harness/cases/flag_table.py)",
    "METRICS": "which golden fields must match",
    "PLATFORMS": "where the case runs and what to expect there",
    "NPROC": "ranks, when an ENGINE command is given",
    "TOLERANCES": "per-metric tolerances",
    "N_REPEAT": "runs, all of which must pass",
    "DETERMINISTIC": "repeats must be bit-identical",
    "DEADLINE_S": "the whole run is killed after this",
    "ENGINE": "builtin, or a command template",
    "DRIVER": "in-process or zmq",
    "PROMPTS": "the requests' prompts",
    "LAUNCHER": "Megatron-LM's launcher (ft_launcher, torchrun): not applicable, the harness "
    "starts the ranks itself",
}
DEFAULT_DEADLINE_S = 900.0
# A Megatron folder cannot say DEADLINE_S; these two run 3 trials of 128 requests x 128 tokens
# of the 583m stand-in: 1386 s to record on 2 cores (2026-12-01). About 2.5x that, for slower
# or busier machines (`--deadline-s` replaces any deadline).
MEGATRON_DEADLINES_S = {
    "gpt_dynamic_inference_tp1_pp1_583m_logitsmatch": 3600.0,
    "gpt_dynamic_inference_tp1_pp1_583m_async_sched": 3600.0,
}
MEGATRON_CONFIG = "model_config.yaml"
# Where a Megatron folder's goldens for our platforms go: where our own goldens go.
DEFAULT_GOLDEN_ROOT = Path("golden")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_GOLDEN_RE = re.compile(r"^golden_values_([a-z0-9]+)_([a-z0-9_]+)\.json$")
# why: Megatron keeps a golden per environment; "dev" is the one its CI compares by default.
_ENV_PREFERENCE = ("dev", "lts")
_MEGATRON_DP_RE = re.compile(r"_dp(\d+)_")


@dataclass(frozen=True)
class Case:
    """One validated case. Build it with ``load_case``; the fields mirror the YAML keys."""

    name: str
    source: Path
    prompts: tuple[str, ...] = ()
    metrics: tuple[str, ...] = DEFAULT_METRICS
    model_args: dict[str, Any] = field(default_factory=dict, hash=False)
    env_vars: dict[str, str] = field(default_factory=dict, hash=False)
    platforms: dict[str, tuple[Expected, str]] = field(default_factory=dict, hash=False)
    driver: Driver = Driver.IN_PROCESS
    tensor_parallel: int = 1
    pipeline_parallel: int = 1
    data_parallel: int = 1
    tolerances: Tolerances = field(default_factory=Tolerances)
    n_repeat: int = 1
    deterministic: bool = False
    deadline_s: float = DEFAULT_DEADLINE_S
    engine: str = "builtin"
    test_type: str = "frozen-start"
    mode: str = "inference"
    description: str = ""
    golden_root: Path = Path("golden")
    megatron_goldens: dict[str, Path] = field(default_factory=dict, hash=False)
    prompt_file: PromptFile | None = None  # read when the case runs (its ${VAR}s unset at load)
    flags: FlagReport = field(default_factory=FlagReport, hash=False)
    binding: ModelBinding = field(default_factory=lambda: ModelBinding("smollm2-135m"))
    blocked: tuple[str, ...] = ()  # why the builtin engine cannot run it (every target skips)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise CaseError(
                f"{self.source}: case name {self.name!r}: expected letters, digits, "
                "'_', '.', '-' (it names files and nox sessions)"
            )
        if not self.prompts and self.prompt_file is None and not self.blocked:
            raise CaseError(f"{self.source}: prompts: expected at least one prompt")
        for name in ("tensor_parallel", "pipeline_parallel", "data_parallel", "n_repeat"):
            if getattr(self, name) < 1:
                raise CaseError(f"{self.source}: {name} must be >= 1, got {getattr(self, name)}")
        if not self.platforms:
            raise CaseError(f"{self.source}: platforms: expected at least one platform")

    def with_platform(self, platform: str) -> Case:
        """This case also listing ``platform`` (the scratch platform: any case runs there),
        expected to pass unless the builtin engine cannot run it."""
        if platform in self.platforms:
            return self
        entry = (Expected.SKIP, "; ".join(self.blocked)) if self.blocked else (Expected.PASS, "")
        return dataclasses.replace(self, platforms={**self.platforms, platform: entry})

    def with_deadline(self, seconds: float | None) -> Case:
        """This case with its whole-run deadline replaced (``None``: unchanged)."""
        if seconds is None:
            return self
        if not seconds > 0 or seconds == float("inf"):
            raise CaseError(f"--deadline-s: expected a positive number of seconds, got {seconds}")
        return dataclasses.replace(self, deadline_s=float(seconds))

    @property
    def engine_args(self) -> dict[str, Any]:
        """The MODEL_ARGS the builtin engine gets: the model binding's, then the flag table's,
        and the case's DP size when MODEL_ARGS do not name it (a Megatron folder's comes from
        its name, ``..._dp8_...``; NPROC's from the world size)."""
        args = {**self.binding.engine_args, **self.flags.engine_args}
        if self.data_parallel != 1:
            args.setdefault("--data-parallel-size", self.data_parallel)
        return args

    @property
    def nproc(self) -> int:
        """Ranks the case needs: tp × pp × dp."""
        return self.tensor_parallel * self.pipeline_parallel * self.data_parallel

    def load_prompts(self, environ: Mapping[str, str]) -> tuple[str, ...]:
        """The prompts, reading ``--prompt-file`` now if it was not read at load."""
        return self.prompt_file.read(environ) if self.prompt_file else self.prompts

    @property
    def megatron(self) -> bool:
        """A Megatron-LM folder (``<name>/model_config.yaml``), taken as it is upstream."""
        return self.source.name == MEGATRON_CONFIG

    def targets(self) -> list[CaseTarget]:
        return [CaseTarget(self, p) for p in self.platforms]

    def engine_argv(self, **values: Any) -> list[str]:
        """The ENGINE template as argv; ``{model_args}`` as its own word becomes the flags.

        ``values`` fill the placeholders (output_path, run_dir, platform, ...); nproc, tp, pp,
        dp and case come from the case.
        """
        if self.engine == "builtin":
            raise ValueError(f"{self.name}: ENGINE is builtin; the runner builds its command")
        args = model_args_argv(self.model_args)
        filled = {
            "nproc": self.nproc,
            "tp": self.tensor_parallel,
            "pp": self.pipeline_parallel,
            "dp": self.data_parallel,
            "case": self.name,
            "model_args": shlex.join(args),
            **values,
        }
        argv: list[str] = []
        for word in shlex.split(self.engine):
            argv.extend(args if word == "{model_args}" else [word.format(**filled)])
        return argv


@dataclass(frozen=True)
class CaseTarget:
    """A case on one platform: one nox session, one golden, one JUnit testcase."""

    case: Case
    platform: str
    golden: Path | None = None  # compare with this file instead (check --golden)

    def __post_init__(self) -> None:
        if self.platform not in self.case.platforms:
            raise CaseError(
                f"{self.case.source}: PLATFORMS: {self.platform!r} is not listed "
                f"(the case runs on {', '.join(self.case.platforms)})"
            )

    @property
    def id(self) -> str:
        return f"{self.case.name}@{self.platform}"

    @property
    def expected(self) -> Expected:
        return self.case.platforms[self.platform][0]

    @property
    def reason(self) -> str:
        return self.case.platforms[self.platform][1]

    @property
    def golden_path(self) -> Path:
        """golden/<platform>/<case>.json, or the Megatron folder's own golden for the platform
        (or the file given with check --golden)."""
        if self.golden is not None:
            return self.golden
        return self.case.megatron_goldens.get(
            self.platform, self.case.golden_root / self.platform / f"{self.case.name}.json"
        )


def model_args_argv(model_args: Mapping[str, Any]) -> list[str]:
    """MODEL_ARGS as command-line words: true -> ``--flag``, false/null -> nothing, list -> many."""
    argv: list[str] = []
    for flag, value in model_args.items():
        if value is True:
            argv.append(flag)
        elif value is False or value is None:
            continue
        elif isinstance(value, list):
            argv.extend([flag, *(str(v) for v in value)])
        else:
            argv.extend([flag, str(value)])
    return argv


def load_case(path: str | Path, *, golden_root: Path | None = None) -> Case:
    """Load ``cases/<name>.yaml`` or a Megatron-LM case folder; raise CaseError when invalid.

    ``golden_root`` defaults to ``golden/`` beside the folder that holds a case file, and for
    a Megatron folder to the checkout's ``golden/`` (its vendored corpus) or ``golden/`` here.
    """
    path = Path(path)
    folder = path if path.is_dir() else None
    source = folder / MEGATRON_CONFIG if folder else path
    name = folder.name if folder else path.stem
    raw = _read_yaml(source)
    goldens = _megatron_goldens(folder) if folder else {}
    default_root = (
        _megatron_golden_root(folder) if folder else path.resolve().parent.parent / "golden"
    )
    root = golden_root if golden_root is not None else default_root
    return _build(name, source, raw, goldens, root, megatron=folder is not None)


def _megatron_golden_root(folder: Path) -> Path:
    """Where a Megatron folder's goldens for our platforms go: the checkout's ``golden/`` for
    a folder of its vendored corpus (``<checkout>/tests/data/megatron/<name>``, found from
    any working directory), else ``golden/`` here."""
    parent = folder.resolve().parent
    if parent.parts[-3:] == ("tests", "data", "megatron"):
        return parent.parents[2] / DEFAULT_GOLDEN_ROOT
    return DEFAULT_GOLDEN_ROOT


def load_all(cases_dir: str | Path, *, golden_root: Path | None = None) -> list[Case]:
    """Every case in ``cases_dir`` (``*.yaml`` files and Megatron folders), sorted by name."""
    cases = [load_case(p, golden_root=golden_root) for p in case_paths(cases_dir)]
    clashes = name_clashes(cases)
    if clashes:
        raise CaseError(clashes[0])
    return sorted(cases, key=lambda c: c.name)


def name_clashes(cases: list[Case]) -> list[str]:
    """One error for each case whose name another case (from another file) already has: the
    name is the nox session, the golden file and the run folder."""
    seen: dict[str, Path] = {}
    errors = []
    for case in cases:
        if case.name in seen and seen[case.name] != case.source:
            errors.append(f"{case.source}: case name {case.name!r} is also {seen[case.name]}")
        seen.setdefault(case.name, case.source)
    return errors


def case_paths(cases_dir: str | Path) -> list[Path]:
    """The case files and Megatron folders in ``cases_dir``, sorted by name (unloaded)."""
    cases_dir = Path(cases_dir)
    if not cases_dir.is_dir():
        raise CaseError(f"{cases_dir}: no such cases folder")
    return sorted(
        (
            p
            for p in cases_dir.iterdir()
            if (p.is_file() and p.suffix in (".yaml", ".yml"))
            or (p.is_dir() and (p / MEGATRON_CONFIG).is_file())
        ),
        key=lambda p: p.stem if p.is_file() else p.name,
    )


def megatron_golden_platform(filename: str) -> str | None:
    """The platform of a Megatron golden file name (``golden_values_<env>_<platform>.json``)."""
    match = _GOLDEN_RE.match(filename)
    return match.group(2) if match else None


def _read_yaml(source: Path) -> dict[str, Any]:
    # why: imported here, not at the top, so that the platform table and the case lookup stay
    # stdlib-only for `logitsmatch.ci.repro` (a bare python3 in CI has no pyyaml).
    import yaml

    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError(f"{source}: no such case file") from None
    except yaml.YAMLError as exc:
        raise CaseError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise f.fail(source, "<top level>", "a mapping of " + ", ".join(KEYS), raw)
    for key in raw:
        if key not in KEYS:
            f.choice(source, str(key), key, list(KEYS))
    return raw


def _megatron_goldens(folder: Path) -> dict[str, Path]:
    found: dict[str, tuple[int, Path]] = {}
    for p in folder.iterdir():
        m = _GOLDEN_RE.match(p.name)
        if m:
            env, platform = m.groups()
            rank = _ENV_PREFERENCE.index(env) if env in _ENV_PREFERENCE else len(_ENV_PREFERENCE)
            if platform not in found or rank < found[platform][0]:
                found[platform] = (rank, p)
    return {platform: p for platform, (_, p) in sorted(found.items())}


def _build(
    name: str,
    source: Path,
    raw: dict[str, Any],
    goldens: dict[str, Path],
    golden_root: Path,
    *,
    megatron: bool,
) -> Case:
    """``megatron``: a Megatron folder, taken as is (no DRIVER, its goldens' platforms)."""
    # why: upstream's script-only folders have `MODEL_ARGS:` with nothing under it (null).
    args = f.model_args(source, raw.get("MODEL_ARGS") or {})
    metrics = raw.get("METRICS", list(DEFAULT_METRICS))
    if not isinstance(metrics, list) or not metrics or any(m not in KNOWN_METRICS for m in metrics):
        raise f.fail(source, "METRICS", "a non-empty list of " + ", ".join(KNOWN_METRICS), metrics)
    mode = raw.get("MODE", "inference")
    if mode != "inference":
        raise f.fail(source, "MODE", "'inference' (the only mode this harness runs)", mode)
    try:
        tolerances = Tolerances.from_mapping(
            f.mapping(source, "TOLERANCES", raw.get("TOLERANCES", {}), "of metric: {field: number}")
        )
    except ToleranceError as exc:
        raise CaseError(f"{source}: TOLERANCES: {exc}") from None
    tp = f.parallel_size(source, args, "--tensor-model-parallel-size") or 1
    pp = f.parallel_size(source, args, "--pipeline-model-parallel-size") or 1
    dp = f.parallel_size(source, args, "--data-parallel-size")
    if dp is None and megatron:
        # why: upstream sets no DP flag; DP is the world size / (tp × pp), and the folder's
        # name says it (`..._tp1_pp1_dp8_...`).
        named = _MEGATRON_DP_RE.search(name)
        dp = int(named.group(1)) if named else None
    engine = f.engine(source, raw.get("ENGINE", "builtin"), args)
    if "NPROC" in raw:
        dp = _nproc_dp(source, f.positive_int(source, "NPROC", raw["NPROC"]), tp, pp, dp, engine)
    driver = f.driver(source, raw, name, required=not megatron)
    builtin = engine == "builtin"
    if builtin and driver is Driver.ZMQ and "mem-max-allocated-bytes" in metrics:
        # why: the coordinator's output, like Megatron-LM's coordinator script's, carries no
        # peak memory; a listed metric that no run reports would never be checked
        raise f.fail(
            source,
            "METRICS",
            "no mem-max-allocated-bytes with DRIVER zmq (the ZMQ output reports no peak "
            "memory; DRIVER in-process does)",
            metrics,
        )
    prompts = () if not args and megatron else f.prompts(source, raw, args)
    count = len(prompts) if isinstance(prompts, tuple) else None
    flags = sort_flags(source, args, RunShape(driver, count, megatron)) if builtin else FlagReport()
    blocked = flags.blockers
    if not args and megatron:
        blocked = ("no MODEL_ARGS: upstream runs this folder with its own scripts, not an engine",)
    if blocked and not megatron:
        raise CaseError(
            f"{source}: MODEL_ARGS: the builtin engine cannot run this case: " + "; ".join(blocked)
        )
    if megatron and "PLATFORMS" not in raw:
        platforms = _megatron_platforms(name, goldens, golden_root, blocked)
    else:
        platforms = f.platforms(source, raw.get("PLATFORMS", {}), PLATFORMS)
    case = Case(
        name=name,
        source=source,
        prompts=prompts if isinstance(prompts, tuple) else (),
        prompt_file=prompts if isinstance(prompts, PromptFile) else None,
        metrics=tuple(metrics),
        model_args=args,
        env_vars=f.env_vars(source, raw.get("ENV_VARS", {})),
        platforms=platforms,
        tensor_parallel=tp,
        pipeline_parallel=pp,
        data_parallel=dp or 1,
        tolerances=tolerances,
        n_repeat=f.positive_int(source, "N_REPEAT", raw.get("N_REPEAT", 1)),
        deterministic=f.boolean(
            source,
            "DETERMINISTIC",
            raw.get("DETERMINISTIC", args.get("--deterministic-mode") is True),
        ),
        deadline_s=f.positive_number(
            source,
            "DEADLINE_S",
            raw.get("DEADLINE_S", MEGATRON_DEADLINES_S.get(name, DEFAULT_DEADLINE_S)),
        ),
        engine=engine,
        test_type=f.choice(source, "TEST_TYPE", raw.get("TEST_TYPE", "frozen-start"), TEST_TYPES),
        mode=mode,
        description=str(raw.get("DESCRIPTION", "")),
        golden_root=golden_root,
        megatron_goldens=goldens,
        driver=driver,
        flags=flags,
        binding=bind_model(source, args, os.environ) if builtin else ModelBinding(engine),
        blocked=blocked,
    )
    if builtin and not blocked:
        args = without_vars(case.engine_args)
        check_engine_args(source, args, case.flags.origin, model_args_argv(args))
    return case


def _megatron_platforms(
    name: str, goldens: Mapping[str, Path], golden_root: Path, blocked: tuple[str, ...]
) -> dict[str, tuple[Expected, str]]:
    """A Megatron folder's platforms: those of its own goldens, and cpu, whose golden goes
    where ours go (not recorded until it exists). A blocked folder skips everywhere."""
    out: dict[str, tuple[Expected, str]] = {p: (Expected.PASS, "") for p in goldens}
    if "cpu" not in out:
        recorded = (golden_root / "cpu" / f"{name}.json").is_file()
        why = f"no cpu golden yet (nox -s record -- {name} --platform cpu)"
        out["cpu"] = (Expected.PASS, "") if recorded else (Expected.NOT_RECORDED, why)
    if blocked:
        why = "the builtin engine cannot run it: " + "; ".join(blocked)
        out = {platform: (Expected.SKIP, why) for platform in out}
    return out


def _nproc_dp(source: Path, nproc: int, tp: int, pp: int, dp: int | None, engine: str) -> int:
    """The data-parallel size NPROC leaves: the builtin engine runs MODEL_ARGS' layout, so NPROC
    must equal it; an ENGINE command gets dp = NPROC / (tp × pp) unless MODEL_ARGS sets dp."""
    if engine == "builtin":
        ranks = tp * pp * (dp or 1)
        if nproc != ranks:
            raise f.fail(
                source,
                "NPROC",
                f"tp × pp × dp = {tp} × {pp} × {dp or 1} = {ranks} ranks, the layout MODEL_ARGS "
                "gives the builtin engine (set --data-parallel-size there, or drop NPROC)",
                nproc,
            )
        return dp or 1
    if nproc % (tp * pp) or (dp is not None and dp * tp * pp != nproc):
        raise f.fail(source, "NPROC", f"tp × pp × dp = {tp} × {pp} × {dp or 'dp'} ranks", nproc)
    return nproc // (tp * pp)
