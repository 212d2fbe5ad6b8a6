"""Read goldens and run outputs with clear errors; write goldens safely, with provenance."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from logitsmatch.harness.goldens.diff import GoldenDiff, diff_goldens
from logitsmatch.harness.goldens.schema import OutputFormatError, first_nonfinite, validate_output
from logitsmatch.record import request_ids


class GoldenError(ValueError):
    """A golden/output file that cannot be used; the message names the file and the key."""


class GoldenRefused(GoldenError):
    """``write_golden`` would record a failed or non-finite run; nothing was written."""


def load_output(path: str | Path, *, golden: bool = True) -> dict[str, Any]:
    """Read and validate an output JSON; ``golden=True`` also rejects NaN/inf and failed requests.

    Accepts Megatron-LM's variant where the file holds one JSON string of the object (JSONL).
    Raises GoldenError naming the file (and key) for a missing, empty, corrupt or ill-typed file.
    """
    path = Path(path)
    what = "golden" if golden else "run output"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GoldenError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenError(f"{path}: cannot read the {what}: {exc}") from exc
    if not text.strip():
        raise GoldenError(f"{path}: the {what} file is empty")
    doc = _parse(text, path)
    if isinstance(doc, str):
        doc = _parse(doc, path)
    try:
        validate_output(doc, str(path), allow_nonfinite=not golden)
    except OutputFormatError as exc:
        raise GoldenError(str(exc)) from None
    if golden:
        failed = [rid for rid in request_ids(doc) if "error" in doc[rid]]
        if failed:
            raise GoldenError(
                f"{path}: {failed[0]!r}.error: a golden must not record a failed "
                f"request ({doc[failed[0]]['error']})"
            )
    return doc


def write_golden(
    path: str | Path,
    output: Mapping[str, Any],
    provenance: Mapping[str, Any],
    *,
    run_error: str | None = None,
) -> GoldenDiff:
    """Write ``output`` as the golden at ``path`` with ``_provenance``; return the diff vs the old.

    Refuses (GoldenRefused, nothing written) when ``run_error`` says the run failed, a request
    failed, there are no requests, or any value is NaN/inf. The write is atomic, so a crash
    never leaves half a golden behind.
    """
    path = Path(path)
    if run_error:
        raise GoldenRefused(f"refusing to write {path}: the run failed: {run_error}")
    doc = {k: v for k, v in output.items() if k != "_provenance"}
    ids = request_ids(doc)
    if not ids:
        raise GoldenRefused(f"refusing to write {path}: the run produced no requests")
    failed = [rid for rid in ids if isinstance(doc[rid], Mapping) and "error" in doc[rid]]
    if failed:
        raise GoldenRefused(
            f"refusing to write {path}: request {failed[0]!r} failed: {doc[failed[0]]['error']}"
        )
    bad = first_nonfinite(doc)
    if bad:
        raise GoldenRefused(f"refusing to write {path}: {bad} is NaN/inf")
    try:
        validate_output(doc, f"run output for {path}", allow_nonfinite=False)
    except OutputFormatError as exc:
        raise GoldenRefused(f"refusing to write {path}: {exc}") from None
    old = _previous(path)
    record = {"_provenance": dict(provenance), **doc}
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        # why: mkstemp makes the file 0600; a golden is a shared, committed file
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return diff_goldens(old, doc, path=str(path))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _previous(path: Path) -> dict[str, Any] | None:
    # why: a corrupt old golden must not block re-recording; the diff then shows all as new.
    if not path.exists():
        return None
    try:
        return load_output(path, golden=False)
    except GoldenError:
        return None


def _parse(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GoldenError(
            f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
