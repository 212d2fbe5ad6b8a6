"""Refresh the vendored Megatron-LM case corpus (tests/data/megatron/) and show what changed.

    python tools/refresh_megatron_corpus.py --from ~/src/Megatron-LM          # its HEAD
    python tools/refresh_megatron_corpus.py --from ~/src/Megatron-LM --rev v0.14.0
    python tools/refresh_megatron_corpus.py --from PATH --check                # changes only

``--from`` is a Megatron-LM git checkout (a work tree or a bare clone): files are read with
``git show REV:path``, so a dirty work tree never leaks in. Only data is copied: every
``tests/functional_tests/test_cases/gpt/gpt_dynamic_inference_*/`` folder's
``model_config.yaml`` and ``golden_values_*.json``, byte for byte; anything else there (scripts)
is named as left out. ``UPSTREAM.json`` records the commit and each file's sha256. Exit 0, or
1 with ``--check`` when the vendored copy differs from upstream.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "megatron"
UPSTREAM_DIR = "tests/functional_tests/test_cases/gpt"
FOLDER_RE = re.compile(r"^gpt_dynamic_inference_[A-Za-z0-9_]+$")
DATA_RE = re.compile(r"^(model_config\.yaml|golden_values_[a-z0-9]+_[a-z0-9_]+\.json)$")
MANIFEST = "UPSTREAM.json"


def _git(source: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(source), *args], check=True, capture_output=True).stdout


def upstream_files(source: Path, rev: str) -> tuple[dict[str, bytes], list[str]]:
    """({folder/file: bytes} of the corpus' data files at ``rev``, [left-out paths])."""
    names = _git(source, "ls-tree", "-r", "--name-only", rev, UPSTREAM_DIR + "/").decode()
    data: dict[str, bytes] = {}
    left_out: list[str] = []
    for path in names.splitlines():
        parts = path[len(UPSTREAM_DIR) + 1 :].split("/")
        if len(parts) < 2 or not FOLDER_RE.match(parts[0]):
            continue
        if len(parts) == 2 and DATA_RE.match(parts[1]):
            data["/".join(parts)] = _git(source, "show", f"{rev}:{path}")
        else:
            left_out.append("/".join(parts))
    return data, left_out


def vendored_files(corpus: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(corpus)): p.read_bytes()
        for p in sorted(corpus.glob("gpt_dynamic_inference_*/*"))
        if p.is_file()
    }


def changes(old: dict[str, bytes], new: dict[str, bytes]) -> list[str]:
    """Readable lines: folders added/removed, files added/removed/changed (YAML diffed)."""
    lines: list[str] = []
    old_folders = {k.split("/")[0] for k in old}
    new_folders = {k.split("/")[0] for k in new}
    lines += [f"+ folder {f}" for f in sorted(new_folders - old_folders)]
    lines += [f"- folder {f}" for f in sorted(old_folders - new_folders)]
    for name in sorted(set(old) | set(new)):
        if name.split("/")[0] not in old_folders & new_folders or old.get(name) == new.get(name):
            continue
        if name not in old or name not in new:
            lines.append(f"{'+' if name in new else '-'} file {name}")
        elif name.endswith(".yaml"):
            diff = difflib.unified_diff(
                old[name].decode().splitlines(), new[name].decode().splitlines(), lineterm="", n=0
            )
            lines.append(f"~ file {name}")
            lines += [f"    {d}" for d in list(diff)[2:] if not d.startswith("@@")]
        else:
            lines.append(f"~ file {name} ({_json_change(old[name], new[name])})")
    return lines


def _json_change(old: bytes, new: bytes) -> str:
    a, b = json.loads(old), json.loads(new)
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return "changed"
    added, removed = sorted(set(b) - set(a)), sorted(set(a) - set(b))
    changed = sorted(k for k in set(a) & set(b) if a[k] != b[k])
    parts = [
        f"{label} {', '.join(keys)}"
        for label, keys in (("added", added), ("removed", removed), ("changed", changed))
        if keys
    ]
    return "; ".join(parts) or "formatting only"


def write(corpus: Path, data: dict[str, bytes], source: Path, rev: str, commit: str) -> None:
    for folder in corpus.glob("gpt_dynamic_inference_*"):
        shutil.rmtree(folder)
    for name, content in data.items():
        target = corpus / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    date = _git(source, "show", "-s", "--format=%cI", commit).decode().strip()
    manifest = {
        "repository": "https://github.com/NVIDIA/Megatron-LM",
        "path": UPSTREAM_DIR,
        "commit": commit,
        "commit_date": date,
        "license": "Apache-2.0",
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in data.items()},
    }
    (corpus / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--from", dest="source", type=Path, required=True, help="Megatron-LM checkout")
    p.add_argument("--rev", default="HEAD", help="the commit to copy from (default HEAD)")
    p.add_argument("--check", action="store_true", help="show the changes, write nothing")
    p.add_argument("--corpus", type=Path, default=CORPUS, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    commit = _git(args.source, "rev-parse", f"{args.rev}^{{commit}}").decode().strip()
    data, left_out = upstream_files(args.source, commit)
    if not data:
        print(f"no {UPSTREAM_DIR}/gpt_dynamic_inference_* folders at {commit}", file=sys.stderr)
        return 2
    folders = sorted({k.split("/")[0] for k in data})
    lines = changes(vendored_files(args.corpus), data)
    print(f"Megatron-LM {commit}: {len(folders)} folders, {len(data)} data files")
    for path in left_out:
        print(f"  left out (not data): {path}")
    print("\n".join(lines) if lines else "no change against the vendored copy")
    if args.check:
        return 1 if lines else 0
    write(args.corpus, data, args.source, args.rev, commit)
    print(f"wrote {args.corpus}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
