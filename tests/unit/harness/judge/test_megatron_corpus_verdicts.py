"""Megatron-LM's verdicts on every golden of the vendored corpus and on perturbed copies.

``tests/data/megatron_verdicts.yaml`` holds, as data, the perturbations and the verdict that
upstream's ``test_inference_regular_pipeline.py`` gives on each (and ours, with the reason, where
we deliberately differ). Each (golden, perturbation) pair is compared the way
``logitsmatch compare GOLDEN CURRENT --case FOLDER`` compares: both files loaded with
``load_output``, then the judge's ``compare`` with the folder's METRICS and TOLERANCES.

The folder's METRICS/TOLERANCES are read here with ``yaml.safe_load`` rather than through the
case loader, so that these verdicts do not depend on it: the committed loader refuses the
corpus folders (``LAUNCHER: ft_launcher``, being added by another change). Where the folders do
load, ``test_case_loader_agrees_with_the_yaml`` checks that ``--case`` gives the same METRICS
and TOLERANCES, and ``test_the_cli_gives_the_same_exit_status`` runs the CLI itself.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from logitsmatch.harness.cases import find_case
from logitsmatch.harness.cases.schema import megatron_golden_platform
from logitsmatch.harness.goldens import load_output
from logitsmatch.harness.goldens.compare import compare_main
from logitsmatch.harness.goldens.io import GoldenError
from logitsmatch.harness.judge import Tolerances, compare
from logitsmatch.harness.judge.tolerances import DEFAULT_METRICS
from logitsmatch.record import request_ids

DATA = Path(__file__).parents[3] / "data"
CORPUS = DATA / "megatron"
VERDICTS = DATA / "megatron_verdicts.yaml"
UPSTREAM_FILE = "tests/functional_tests/python_test_utils/test_inference_regular_pipeline.py"
UPSTREAM_COMMIT = "650b783826bb050eb49b29a0b8b34f1007e297c6"
# why: a floor on the pairs actually compared, so that applicability rules cannot silently
# skip most of the corpus (32 goldens x 57 perturbations = 1824 pairs; 1540 apply today).
MIN_CHECKED_PAIRS = 1500
OPS = (
    "none",
    "set",
    "shift",
    "scale",
    "drop",
    "truncate",
    "add_request",
    "drop_request",
    "set_run_field",
)
SIDES = ("current", "golden", "both")
_PATH_RE = re.compile(
    r"^(first_request|last_request|every_request|run)\.([A-Za-z0-9_-]+)(?:\[(-?\d+|\*)\])?$"
)


# --- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Golden:
    """One golden file of the corpus with its folder's METRICS and TOLERANCES."""

    path: Path
    metrics: tuple[str, ...]
    tolerances: Tolerances

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def platform(self) -> str:
        return megatron_golden_platform(self.path.name) or "unknown"

    @property
    def id(self) -> str:
        short = self.folder.name.removeprefix("gpt_dynamic_inference_")
        return f"{short}@{self.platform}"


def _folder_config(folder: Path) -> tuple[tuple[str, ...], Tolerances]:
    """METRICS and TOLERANCES of a case folder, as the case loader reads them."""
    raw = yaml.safe_load((folder / "model_config.yaml").read_text(encoding="utf-8"))
    # why: the loader's default for a missing METRICS; it refuses an empty or non-list one.
    metrics = raw.get("METRICS", list(DEFAULT_METRICS))
    assert isinstance(metrics, list) and metrics, f"{folder.name}: METRICS {metrics!r}"
    return tuple(metrics), Tolerances.from_mapping(raw.get("TOLERANCES") or {})


def corpus_goldens() -> list[Golden]:
    """Every golden_values_*.json of the corpus, sorted by path."""
    goldens = []
    for path in sorted(CORPUS.glob("*/golden_values_*.json")):
        metrics, tolerances = _folder_config(path.parent)
        goldens.append(Golden(path, metrics, tolerances))
    return goldens


@cache
def _golden_doc(path: Path) -> dict[str, Any]:
    # why: loaded as the CLI loads a golden; cached, each test works on a deep copy.
    return load_output(path, golden=True)


# --- paths into an output JSON ---------------------------------------------------------------


@dataclass(frozen=True)
class FieldPath:
    """``first_request.logprobs[3]``: which request(s) or the run, a field, an optional index."""

    scope: str
    field: str
    index: int | str | None

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        match = _PATH_RE.match(text)
        if not match:
            raise ValueError(f"not a path: {text!r}")
        scope, name, index = match.groups()
        parsed: int | str | None = index if index in (None, "*") else int(index)
        return cls(scope, name, parsed)

    def containers(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        """The objects that hold ``field``: the run, or the chosen request entries."""
        if self.scope == "run":
            return [doc]
        ids = request_ids(doc)
        chosen = {"first_request": ids[:1], "last_request": ids[-1:], "every_request": ids}
        return [doc[rid] for rid in chosen[self.scope]]

    def exists(self, doc: dict[str, Any]) -> bool:
        """Whether every chosen container holds the field (and the index), not as null."""
        holders = self.containers(doc)
        return bool(holders) and all(self._holds(h) for h in holders)

    def _holds(self, holder: Mapping[str, Any]) -> bool:
        value = holder.get(self.field)
        if value is None:
            return False
        if self.index is None:
            return True
        if not isinstance(value, (list, str)) or not value:
            return False
        return self.index == "*" or -len(value) <= int(self.index) < len(value)

    def update(self, doc: dict[str, Any], change: Callable[[Any], Any]) -> None:
        """Replace the value (or the indexed items) by ``change(old)`` in every container."""
        for holder in self.containers(doc):
            value = holder.get(self.field)
            if self.index is None:
                holder[self.field] = change(value)
            elif self.index == "*":
                holder[self.field] = [change(v) for v in value]
            elif isinstance(value, str):
                i = int(self.index) % len(value)
                holder[self.field] = value[:i] + change(value[i]) + value[i + 1 :]
            else:
                value[int(self.index)] = change(value[int(self.index)])

    def drop(self, doc: dict[str, Any]) -> None:
        for holder in self.containers(doc):
            del holder[self.field]


# --- perturbations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Perturbation:
    """One entry of megatron_verdicts.yaml."""

    raw: Mapping[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def op(self) -> str:
        op = self.raw["op"]
        return op if isinstance(op, str) else next(iter(op))

    @property
    def args(self) -> Mapping[str, Any]:
        op = self.raw["op"]
        return {} if isinstance(op, str) else op

    @property
    def side(self) -> str:
        return str(self.raw.get("side", "current"))

    def metrics(self, golden: Golden) -> tuple[str, ...]:
        """The METRICS this perturbation is compared under."""
        spec = self.raw["metrics"]
        if spec == "own":
            return golden.metrics
        if isinstance(spec, Mapping):
            extra = [m for m in spec["own_plus"] if m not in golden.metrics]
            return (*golden.metrics, *extra)
        return tuple(spec)

    def why_not_applicable(self, golden: Golden) -> str | None:
        """Why this perturbation cannot be made on this golden (e.g. no logprobs), or None."""
        doc = _golden_doc(golden.path)
        needed = [FieldPath.parse(p) for p in self.raw.get("requires", [])]
        if self._path is not None and not (self.op == "set" and self._path.index is None):
            needed.append(self._path)
        for path in needed:
            if not path.exists(doc):
                return f"golden has no {path.scope}.{path.field}" + _index_text(path)
        for text in self.raw.get("requires_absent", []):
            if FieldPath.parse(text).exists(doc):
                return f"golden has {text}"
        return None

    @property
    def _path(self) -> FieldPath | None:
        if self.op in ("set", "shift", "scale", "drop", "truncate"):
            return FieldPath.parse(self.args[self.op])
        return None

    def apply(self, doc: dict[str, Any]) -> None:
        """Make the change in ``doc`` (one side's copy)."""
        args, path = self.args, self._path
        if self.op == "none":
            return
        if path is not None and self.op == "drop":
            path.drop(doc)
        elif path is not None:
            path.update(doc, _changer(self.op, args))
        elif self.op == "add_request":
            _add_request(doc, args["add_request"])
        elif self.op == "drop_request":
            _drop_request(doc, args["drop_request"])
        elif self.op == "set_run_field":
            doc[args["set_run_field"]] = copy.deepcopy(args["value"])
        else:
            raise AssertionError(f"{self.name}: unknown op {self.op!r}")

    def expected(self, metrics: tuple[str, ...]) -> tuple[str, str, int]:
        """(upstream's verdict, ours, our exit status) under ``metrics``."""
        listed = self.raw.get("only_if_listed")
        if listed is not None and listed not in metrics:
            # why: the changed field is read only for a listed metric, by upstream and by us.
            return "pass", "pass", 0
        upstream = str(self.raw["upstream"])
        ours = str(self.raw.get("ours", upstream))
        exit_status = 0 if ours == "pass" else int(self.raw.get("ours_exit", 1))
        return upstream, ours, exit_status


def _index_text(path: FieldPath) -> str:
    return "" if path.index is None else f"[{path.index}]"


def _changer(op: str, args: Mapping[str, Any]) -> Callable[[Any], Any]:
    """old value -> new value for set/shift/scale/truncate."""
    if op == "set":
        return lambda _old: copy.deepcopy(args["value"])
    if op == "shift":
        return lambda old: old + args["by"]
    if op == "scale":
        return lambda old: old * args["by"]
    if "keep" in args:
        return lambda old: old[: args["keep"]]
    return lambda old: old[: len(old) - args["by"]]


def _add_request(doc: dict[str, Any], which: str) -> None:
    ids = request_ids(doc)
    source = ids[0] if which == "first" else ids[-1]
    numeric = [int(rid) for rid in ids if rid.isdigit()]
    new_id = str(max(numeric) + 1) if numeric else f"{source}_copy"
    doc[new_id] = copy.deepcopy(doc[source])


def _drop_request(doc: dict[str, Any], which: str) -> None:
    ids = request_ids(doc)
    chosen = {"first": ids[:1], "last": ids[-1:], "all": ids}[which]
    for rid in chosen:
        del doc[rid]


def perturbations() -> list[Perturbation]:
    raw = yaml.safe_load(VERDICTS.read_text(encoding="utf-8"))
    return [Perturbation(entry) for entry in raw["perturbations"]]


# --- comparing as `logitsmatch compare GOLDEN CURRENT --case FOLDER` does --------------------


@dataclass(frozen=True)
class Outcome:
    """The exit status the CLI would give (0 pass, 1 fail, 2 refused) and why."""

    exit_status: int
    messages: tuple[str, ...]


def compare_like_cli(
    golden: Golden,
    golden_doc: dict[str, Any] | None,
    current_doc: dict[str, Any],
    workdir: Path,
    metrics: tuple[str, ...],
) -> Outcome:
    """Write the current copy (and a changed golden) to files and compare them as the CLI does.

    ``golden_doc`` None: the golden file itself is compared, unchanged.
    """
    golden_path = golden.path if golden_doc is None else _write(workdir / "golden.json", golden_doc)
    current_path = _write(workdir / "current.json", current_doc)
    try:
        loaded_golden = load_output(golden_path, golden=True)
        loaded_current = load_output(current_path, golden=False)
    except GoldenError as exc:
        return Outcome(2, (str(exc),))
    verdict = compare(
        loaded_golden,
        loaded_current,
        golden.tolerances,
        metrics=metrics,
        case=golden.folder.name,
        platform=golden.platform,
    )
    messages = tuple(f"{rid}: {m.metric}: {m.message}" for rid, m in verdict.failures())
    return Outcome(0 if verdict.passed else 1, messages)


def _write(path: Path, doc: Mapping[str, Any]) -> Path:
    # why: json.dumps writes NaN/Infinity as a run's JSON may hold them; the loader decides.
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _fingerprint(*docs: Mapping[str, Any]) -> str:
    # why: compare documents as text; NaN != NaN would make dict equality unreliable.
    return json.dumps(docs, sort_keys=True)


# --- the pairs -------------------------------------------------------------------------------


GOLDENS = corpus_goldens()
PERTURBATIONS = perturbations()


def _pairs() -> Iterator[tuple[Golden, Perturbation, str | None]]:
    for golden in GOLDENS:
        for perturbation in PERTURBATIONS:
            yield golden, perturbation, perturbation.why_not_applicable(golden)


PAIRS = list(_pairs())


def _param(golden: Golden, perturbation: Perturbation) -> Any:
    return pytest.param(golden, perturbation, id=f"{golden.id}::{perturbation.name}")


# why: only the pairs that apply become tests; the guards below count the others and check
# why each does not apply, so that none is lost silently.
APPLICABLE = [(g, p) for g, p, skip in PAIRS if skip is None]


@pytest.mark.parametrize(("golden", "perturbation"), [_param(*pair) for pair in APPLICABLE])
def test_verdict_on_corpus_golden(golden: Golden, perturbation: Perturbation, tmp_path: Path):
    """Our verdict on the perturbed copy is upstream's, or the YAML's `ours` where we differ."""
    original = _golden_doc(golden.path)
    golden_doc, current_doc = copy.deepcopy(original), copy.deepcopy(original)
    if perturbation.side in ("golden", "both"):
        perturbation.apply(golden_doc)
    if perturbation.side in ("current", "both"):
        perturbation.apply(current_doc)
    if perturbation.op != "none":
        # why: a perturbation that changes nothing would test "identical" under another name.
        assert _fingerprint(golden_doc, current_doc) != _fingerprint(original, original)
    metrics = perturbation.metrics(golden)
    upstream, ours, exit_status = perturbation.expected(metrics)
    changed_golden = golden_doc if perturbation.side != "current" else None
    outcome = compare_like_cli(golden, changed_golden, current_doc, tmp_path, metrics)
    assert outcome.exit_status == exit_status, (
        f"upstream: {upstream}, ours expected: {ours} (exit {exit_status}), "
        f"got exit {outcome.exit_status}: {list(outcome.messages)}"
    )


# why: the CLI end to end on every golden, for the perturbations that use the folder's own
# METRICS and change only the run (the CLI takes METRICS from --case, not from us).
CLI_PERTURBATIONS = (
    "identical",
    "token_changed",
    "logprob_moved_5e-4",
    "logprob_moved_2e-3",
    "request_missing_from_run",
    "throughput_15pct_slower",
)


@pytest.mark.parametrize(
    ("golden", "perturbation"),
    [
        _param(g, p)
        for g, p in APPLICABLE
        if p.name in CLI_PERTURBATIONS and p.raw["metrics"] == "own" and p.side == "current"
    ],
)
def test_the_cli_gives_the_same_exit_status(
    golden: Golden, perturbation: Perturbation, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """``logitsmatch compare GOLDEN CURRENT --case FOLDER`` itself."""
    current = copy.deepcopy(_golden_doc(golden.path))
    perturbation.apply(current)
    current_path = _write(tmp_path / "current.json", current)
    argv = [str(golden.path), str(current_path), "--case", str(golden.folder)]
    _, _, exit_status = perturbation.expected(golden.metrics)
    assert compare_main(argv) == exit_status, capsys.readouterr().out[-2000:]


# --- guards against vacuous coverage ---------------------------------------------------------


def test_the_corpus_is_every_vendored_golden():
    """The pairs cover every golden that UPSTREAM.json lists: 32 files in 31 folders."""
    listed = json.loads((CORPUS / "UPSTREAM.json").read_text(encoding="utf-8"))["files"]
    vendored = sorted(name for name in listed if "/golden_values_" in name)
    assert [str(g.path.relative_to(CORPUS)) for g in GOLDENS] == vendored
    assert len(GOLDENS) == 32 and len({g.folder for g in GOLDENS}) == 31


def test_enough_pairs_are_checked():
    """Applicability rules leave most pairs compared, and every perturbation used."""
    checked = [(g, p) for g, p, skip in PAIRS if skip is None]
    assert len(checked) >= MIN_CHECKED_PAIRS, f"only {len(checked)} of {len(PAIRS)} pairs apply"
    unused = {p.name for p in PERTURBATIONS} - {p.name for _, p in checked}
    assert not unused, f"perturbations that apply to no golden: {sorted(unused)}"
    for golden in GOLDENS:
        mine = [p for g, p in checked if g is golden]
        assert len(mine) >= len(PERTURBATIONS) // 2, f"{golden.id}: only {len(mine)} apply"


def test_skips_are_only_for_missing_fields_or_requirements():
    """A pair is skipped only for a field the golden lacks (or holds, for requires_absent)."""
    reasons = {skip for _, _, skip in PAIRS if skip is not None}
    assert all(r.startswith(("golden has no ", "golden has ")) for r in reasons), reasons


def test_logprob_perturbations_skip_only_the_goldens_without_logprobs():
    """Only the async_sched goldens (METRICS [generated_tokens], no logprobs) skip them."""
    skipped = {g.id for g, p, skip in PAIRS if p.name == "logprob_moved_2e-3" and skip}
    without = {g.id for g in GOLDENS if not _every_request_has(g, "logprobs")}
    assert skipped == without and len(without) == 2  # the async_sched folder's two goldens


def _every_request_has(golden: Golden, field: str) -> bool:
    doc = _golden_doc(golden.path)
    return all(doc[rid].get(field) is not None for rid in request_ids(doc))


# --- the verdict file ------------------------------------------------------------------------


def test_verdict_file_names_upstream_and_is_well_formed():
    """The header names upstream's file and commit; every entry has the keys it needs."""
    raw = yaml.safe_load(VERDICTS.read_text(encoding="utf-8"))
    assert raw["upstream"]["file"] == UPSTREAM_FILE
    assert raw["upstream"]["commit"] == UPSTREAM_COMMIT
    names = [p.name for p in PERTURBATIONS]
    assert len(names) == len(set(names)), "perturbation names must be unique"
    for p in PERTURBATIONS:
        _check_entry(p)


def _check_entry(p: Perturbation) -> None:
    """Assert one YAML entry is well formed."""
    assert p.op in OPS and p.side in SIDES, p.name
    assert p.raw["upstream"] in ("pass", "fail") and p.raw.get("why"), p.name
    if "ours" in p.raw:
        # why: `ours` records a deliberate disagreement; it must differ and say why.
        assert p.raw["ours"] in ("pass", "fail") and p.raw["ours"] != p.raw["upstream"], p.name
        assert p.raw.get("ours_why"), p.name
    if "ours_exit" in p.raw:
        assert p.raw.get("ours", p.raw["upstream"]) == "fail" and p.raw["ours_exit"] in (1, 2)
    if p._path is not None:
        FieldPath.parse(p.args[p.op])
    for text in (*p.raw.get("requires", []), *p.raw.get("requires_absent", [])):
        FieldPath.parse(text)


def test_the_issue_cases_are_covered():
    """The perturbations the issue asks for are all in the file."""
    names = {p.name for p in PERTURBATIONS}
    wanted = {
        "identical",
        "token_changed",
        "last_token_changed",
        "logprob_moved_2e-3",
        "logprob_moved_5e-4",
        "every_logprob_moved_9e-4",
        "logprobs_one_short",
        "nan_logprob",
        "request_missing_from_run",
        "extra_request_in_run",
        "golden_holds_only_some_ids",
        "throughput_listed_5pct_slower",
        "throughput_listed_15pct_slower",
        "throughput_listed_25pct_faster",
        "memory_listed_plus_4.9pct",
        "memory_listed_plus_6pct",
        "memory_listed_minus_6pct",
        "memory_plus_6pct",
        "lifetime_prefill_token_count_changed",
        "async_sched_step_count_changed",
        "async_sched_compaction_step_count_changed",
        "text_listed_run_is_a_prefix",
        "text_listed_character_changed",
    }
    assert wanted <= names, sorted(wanted - names)


def test_disagreements_are_the_recorded_ones():
    """Exactly these entries record a verdict of ours that differs from upstream's."""
    # why: a new disagreement must be a deliberate, reviewed entry in the YAML, not a drift.
    assert sorted(p.name for p in PERTURBATIONS if "ours" in p.raw) == [
        "empty_metrics",
        "minus_inf_logprob_on_both_sides",
        "no_requests_on_either_side_with_run_fields",
        "run_request_marked_error",
        "throughput_listed_one_figure_each",
        "unknown_metric_listed",
    ]


# --- the case loader ---------------------------------------------------------------------------


def test_case_loader_agrees_with_the_yaml():
    """``--case FOLDER`` gives the METRICS/TOLERANCES used above, for every folder."""
    for folder in sorted({g.folder for g in GOLDENS}):
        case = find_case(str(folder))
        assert (case.metrics, case.tolerances) == _folder_config(folder), folder.name
