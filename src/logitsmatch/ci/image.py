"""Build the image with buildah and run the CPU matrix inside it with podman (`nox -s image`).

On a machine with no Docker engine and no container registry, in order:

1. tools: buildah, podman, runc, debootstrap, installed with apt-get when missing, and a
   ``docker`` that runs podman (first on the matrix's PATH);
2. base: ``--base REF`` (a registry or stored image), or ``local``: bookworm from debootstrap;
3. wheels: ``--torch-index URL``, or ``local``: the torch pin fetched by this host's pip and
   served on 127.0.0.1;
4. build: the Dockerfile's ``cpu`` target (``--network host``, the CA bundle as the build
   secret ``pip-ca``), tagged only when every step passed; with ``--gpu-standin`` also the
   ``gpu`` target on a stand-in base that carries the CPU torch;
5. matrix: every ``cpu`` case target through ``python -m logitsmatch.ci.repro``, i.e. the very
   `docker run` a CI job and `nox -s repro` run, here through podman's `docker`;
6. clean-up: the images, layers and files this run made, unless ``--keep``.

A failed step stops the run with the builder's words and the command that reruns that step.
Stdlib only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from logitsmatch.ci.base_image import LOCAL, prepare_base
from logitsmatch.ci.podman import Podman, StepFailed, ensure_tools, state_dir
from logitsmatch.ci.repro import LOCAL_REPOSITORY
from logitsmatch.ci.targets import Target, list_targets
from logitsmatch.ci.wheel_index import WheelServer, download

ROOT = Path(__file__).resolve().parents[3]
PLATFORM = "cpu"
STANDIN = "standin"
STANDIN_REF = "localhost/logitsmatch-gpu-standin:cpu-torch"
_CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


@dataclass(frozen=True)
class Options:
    """What one run builds on and from; see ``--help``."""

    base: str = LOCAL
    torch_index: str = LOCAL
    package_index: str | None = None
    ca_bundle: Path | None = None
    keep: bool = False
    matrix: bool = True
    gpu_standin: bool = False
    cases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise ValueError(f"--ca-bundle: {self.ca_bundle} is not a file")


@dataclass
class Timings:
    """Seconds per step, printed at the end (the README's figures come from these lines)."""

    steps: dict[str, float] = field(default_factory=dict)

    def timed(self, name: str, started: float) -> None:
        self.steps[name] = time.monotonic() - started

    def report(self) -> str:
        return "\n".join(f"  {name:<28} {secs:7.1f} s" for name, secs in self.steps.items())


def default_ca_bundle() -> Path | None:
    """The host's CA bundle (the one its own pip trusts), which a TLS-inspecting proxy's CA
    is in; None when there is none."""
    for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return next((Path(c) for c in _CA_CANDIDATES if Path(c).is_file()), None)


def image_tag(variant: str) -> str:
    """``localhost/logitsmatch:<variant>-<commit>`` (what `repro` finds by default), with
    ``-dirty`` when the tree has uncommitted changes, which the image then holds."""
    commit = _git("rev-parse", "HEAD")
    dirty = "-dirty" if _git("status", "--porcelain") else ""
    return f"localhost/{LOCAL_REPOSITORY}:{variant}-{commit}{dirty}"


def build_argv(target: str, tag: str, base: str, torch_index: str, opts: Options) -> list[str]:
    """The buildah command for one Dockerfile target (``cpu``, ``gpu``), or for ``standin``:
    ci/gpu-standin.Containerfile, the base the gpu target is built on here."""
    argv = ["buildah", "build", "--isolation", "chroot", "--network", "host", "--layers"]
    if target == STANDIN:
        argv += ["--tag", tag, "--file", str(ROOT / "ci" / "gpu-standin.Containerfile")]
    else:
        argv += ["--target", target, "--tag", tag, "--file", str(ROOT / "Dockerfile")]
    args = {"PYTHON_IMAGE": base, "TORCH_INDEX_URL": torch_index}
    if target != STANDIN:
        args["SOURCE_COMMIT"] = _git("rev-parse", "HEAD")
    if opts.package_index:
        args["PACKAGE_INDEX_URL"] = opts.package_index
    if target == "gpu":
        name, _, tag_part = STANDIN_REF.rpartition(":")
        args |= {"BASE_IMAGE": name, "BASE_TAG": tag_part, "REQUIRE_CUDA": "0"}
    for key, value in args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if opts.ca_bundle is not None:
        argv += ["--secret", f"id=pip-ca,src={opts.ca_bundle}"]
    return [*argv, str(ROOT)]


def build(podman: Podman, opts: Options, timings: Timings, log: Path) -> str:
    """Steps 2-4; returns the cpu image's tag."""
    started = time.monotonic()
    base = prepare_base(podman, opts.base, log)
    timings.timed("base image", started)
    server = None
    torch_index = opts.torch_index
    if torch_index == LOCAL:
        started = time.monotonic()
        download(ROOT / "ci" / "constraints.txt", podman.state / "wheels", log)
        server = WheelServer(podman.state / "wheels")
        torch_index = server.url
        timings.timed("wheel index", started)
    try:
        tag = image_tag("cpu")
        started = time.monotonic()
        podman.run("build cpu", build_argv("cpu", tag, base, torch_index, opts), log=log)
        timings.timed("build cpu", started)
        if opts.gpu_standin:
            started = time.monotonic()
            standin = build_argv(STANDIN, STANDIN_REF, base, torch_index, opts)
            podman.run("build gpu stand-in base", standin, log=log)
            gpu = build_argv("gpu", image_tag("gpu-standin"), base, torch_index, opts)
            podman.run("build gpu (stand-in base)", gpu, log=log)
            timings.timed("build gpu on stand-in", started)
    finally:
        if server is not None:
            server.stop()
    return tag


def image_size(podman: Podman, tag: str) -> str:
    proc = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", tag],
        env=podman.full_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    size = proc.stdout.strip()
    return f"{int(size) / 1e9:.2f} GB" if size.isdigit() else f"unknown ({proc.stderr.strip()})"


def run_matrix(podman: Podman, tag: str, cases: Sequence[str], timings: Timings) -> int:
    """Every cpu case target (or ``cases``) through repro's `docker run`; 0 when all passed."""
    targets = [t for t in list_targets(ROOT) if t.platform == PLATFORM]
    if cases:
        unknown = sorted(set(cases) - {t.case for t in targets})
        if unknown:
            raise StepFailed(f"step 'matrix': no {PLATFORM} target for case(s) {unknown}")
        targets = [t for t in targets if t.case in cases]
    if not targets:
        raise StepFailed(f"step 'matrix': nox lists no {PLATFORM} case target: nothing to run")
    env = {**podman.full_env(), "PATH": podman.docker_path()}
    env["PYTHONPATH"] = str(ROOT / "src")
    failed: list[Target] = []
    for target in targets:
        started = time.monotonic()
        argv = [sys.executable, "-m", "logitsmatch.ci.repro", target.case]
        argv += ["--platform", target.platform, "--image", tag, "--checkout", str(ROOT)]
        code = subprocess.run(argv, env=env, check=False).returncode
        timings.timed(f"matrix {target.case}", started)
        if code != 0:
            failed.append(target)
            print(f"image: [matrix] {target.id} FAILED (exit {code})", flush=True)
    print(f"image: [matrix] {len(targets) - len(failed)} passed, {len(failed)} failed", flush=True)
    for target in failed:
        print(f"  rerun: nox -s repro -- {target.case} --platform {target.platform} --image {tag}")
    return 1 if failed else 0


def run(opts: Options) -> int:
    """The whole session; the exit status is the matrix's (1 on a failed step)."""
    podman = Podman(state_dir())
    timings = Timings()
    log = ROOT / "runs" / "image" / "build.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    code = 1
    try:
        started = time.monotonic()
        ensure_tools()
        podman.write_config()
        timings.timed("tools", started)
        tag = build(podman, opts, timings, log)
        print(f"image: built {tag} ({image_size(podman, tag)}); log: {log}", flush=True)
        code = run_matrix(podman, tag, opts.cases, timings) if opts.matrix else 0
    except StepFailed as exc:
        print(f"image: {exc}", file=sys.stderr, flush=True)
    finally:
        if not opts.keep:
            clean(podman)
        print("image: timings\n" + timings.report(), flush=True)
    return code


def clean(podman: Podman) -> None:
    """Remove everything under the state folder: images, layers, root file system, wheels."""
    podman.remove_storage()
    shutil.rmtree(podman.state, ignore_errors=True)
    print(f"image: removed {podman.state} (images, layers, wheels)", flush=True)


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise StepFailed(f"step 'build': git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _parse(argv: Sequence[str]) -> tuple[str, Options]:
    p = argparse.ArgumentParser(prog="python -m logitsmatch.ci.image", description=__doc__)
    p.add_argument("action", nargs="?", default="run", choices=("run", "env", "clean"))
    p.add_argument("--base", default=LOCAL, help="base image reference, or 'local' (debootstrap)")
    p.add_argument("--torch-index", default=LOCAL, help="index URL for torch, or 'local'")
    p.add_argument("--package-index", help="index URL for every other package (default: pip's)")
    p.add_argument(
        "--ca-bundle", help="CA bundle for pip inside the build; 'none': none (default: host's)"
    )
    p.add_argument("--keep", action="store_true", help="keep images and layers (warm rebuild)")
    p.add_argument("--build-only", action="store_true", help="build, do not run the matrix")
    p.add_argument("--gpu-standin", action="store_true", help="also build gpu on a stand-in")
    p.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    a = p.parse_args(argv)
    ca = None if a.ca_bundle == "none" else Path(a.ca_bundle) if a.ca_bundle else None
    if a.ca_bundle is None:
        ca = default_ca_bundle()
    try:
        opts = Options(
            base=a.base,
            torch_index=a.torch_index,
            package_index=a.package_index,
            ca_bundle=ca,
            keep=a.keep,
            matrix=not a.build_only,
            gpu_standin=a.gpu_standin,
            cases=tuple(a.case),
        )
    except ValueError as exc:
        p.error(str(exc))
    return a.action, opts


def main(argv: Sequence[str] | None = None) -> int:
    action, opts = _parse(sys.argv[1:] if argv is None else argv)
    podman = Podman(state_dir())
    if action == "env":
        podman.write_config()
        print(podman.exports(), end="")
        return 0
    if action == "clean":
        clean(podman)
        return 0
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
