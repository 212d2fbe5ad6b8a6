"""`nox -s image`'s parts that need no builder: the mirror it bootstraps from, the wheel index
it serves (real pip against a real server), the buildah command, and how a failed step reads.
The build itself runs in `.ci/run` (`nox -s image`), not here: it takes minutes."""

from __future__ import annotations

import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from logitsmatch.ci import base_image, image
from logitsmatch.ci.base_image import host_mirror
from logitsmatch.ci.podman import CONTAINERS_CONF, Podman, StepFailed, run_step
from logitsmatch.ci.wheel_index import WheelServer, normalize, write_simple_index

DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
"""


def test_the_mirror_is_the_hosts_own_bookworm_source(tmp_path, monkeypatch):
    monkeypatch.delenv("LOGITSMATCH_DEBIAN_MIRROR", raising=False)
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(DEB822)
    assert host_mirror((deb822,)) == "http://mirror.example/debian"
    one_line = tmp_path / "sources.list"
    one_line.write_text(
        "deb http://sec.example/x bookworm-security main\ndeb http://m.example/d bookworm main\n"
    )
    assert host_mirror((tmp_path / "absent", one_line)) == "http://m.example/d"
    assert host_mirror((tmp_path / "absent",)) is None
    monkeypatch.setenv("LOGITSMATCH_DEBIAN_MIRROR", "http://mine.example/debian")
    assert host_mirror((deb822,)) == "http://mine.example/debian"


def _wheel(folder: Path, name: str, version: str) -> Path:
    """A minimal valid wheel (metadata only)."""
    dist = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(
            f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
        )
        whl.writestr(
            f"{dist}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        whl.writestr(f"{dist}/RECORD", "")
    return path


def test_pip_resolves_a_pin_from_the_served_index(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "Lm_Probe.Pkg", "1.0")
    _wheel(wheels, "Lm_Probe.Pkg", "2.0")
    write_simple_index(wheels)
    assert normalize("Lm_Probe.Pkg") == "lm-probe-pkg"
    assert (wheels / "simple" / "lm-probe-pkg" / "index.html").is_file()
    server = WheelServer(wheels, port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        dest = tmp_path / "got"
        pip = [sys.executable, "-m", "pip", "download", "--isolated", "--no-deps"]
        proc = subprocess.run(
            [*pip, "--dest", str(dest), "--index-url", server.url, "lm-probe-pkg==1.0"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in dest.iterdir()] == ["Lm_Probe.Pkg-1.0-py3-none-any.whl"]
    assert server.proc.poll() is not None  # stopped, its port closed


def test_an_empty_wheel_folder_is_a_failed_step(tmp_path):
    with pytest.raises(StepFailed, match="no wheels in"):
        write_simple_index(tmp_path)


def test_a_failed_step_quotes_the_builder_and_says_how_to_rerun_it(tmp_path):
    log = tmp_path / "build.log"
    argv = [sys.executable, "-c", "import sys; print('STEP 3/9: RUN pip install'); sys.exit(7)"]
    with pytest.raises(StepFailed) as failed:
        run_step("build cpu", argv, log=log)
    text = str(failed.value)
    assert text.startswith("step 'build cpu' failed (exit 7)")
    assert "STEP 3/9: RUN pip install" in text
    assert text.rstrip().endswith(f"rerun this step alone:\n    {shlex.join(argv)}")
    assert "STEP 3/9" in log.read_text()


def test_a_step_that_hangs_is_killed_at_its_deadline():
    with pytest.raises(StepFailed, match="passed its 1 s deadline"):
        run_step("base", [sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=1)


def test_a_missing_tool_is_a_failed_step_not_a_traceback():
    with pytest.raises(StepFailed, match="is not installed"):
        run_step("tools", ["logitsmatch-no-such-builder", "--version"])


def test_the_builder_config_lives_in_the_state_folder(tmp_path):
    podman = Podman(tmp_path / "state")
    podman.write_config()
    assert podman.containers_conf.read_text() == CONTAINERS_CONF
    assert 'runtime = "runc"' in CONTAINERS_CONF
    storage = podman.storage_conf.read_text()
    assert f'graphroot = "{tmp_path / "state" / "storage" / "graph"}"' in storage
    assert podman.env() == {
        "CONTAINERS_CONF": str(podman.containers_conf),
        "CONTAINERS_STORAGE_CONF": str(podman.storage_conf),
    }


def test_the_build_command_uses_host_network_the_ca_secret_and_the_indexes(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("cert")
    opts = image.Options(ca_bundle=ca, package_index="http://127.0.0.1:9/pypi/simple")
    argv = image.build_argv("cpu", "localhost/logitsmatch:cpu-x", "base:1", "http://t/simple", opts)
    joined = " ".join(argv)
    assert argv[:2] == ["buildah", "build"]
    assert "--network host" in joined and "--isolation chroot" in joined
    assert "--target cpu --tag localhost/logitsmatch:cpu-x" in joined
    assert f"--secret id=pip-ca,src={ca}" in joined
    for arg in ("PYTHON_IMAGE=base:1", "TORCH_INDEX_URL=http://t/simple"):
        assert f"--build-arg {arg}" in joined
    assert "--build-arg PACKAGE_INDEX_URL=http://127.0.0.1:9/pypi/simple" in joined
    assert "REQUIRE_CUDA" not in joined
    standin = " ".join(
        image.build_argv(image.STANDIN, "s", "base:1", "http://t/s", image.Options())
    )
    assert "gpu-standin.Containerfile" in standin and "--target" not in standin
    gpu = " ".join(image.build_argv("gpu", "t", "base:1", "http://t/simple", image.Options()))
    assert "--build-arg REQUIRE_CUDA=0" in gpu and "--secret" not in gpu
    assert f"--build-arg BASE_IMAGE={image.STANDIN_REF.rpartition(':')[0]}" in gpu


def test_a_ca_bundle_that_is_not_a_file_is_refused_at_the_command_line(tmp_path):
    with pytest.raises(SystemExit):
        image.main(["--ca-bundle", str(tmp_path / "missing.crt")])


def test_debootstrap_is_tried_again_after_a_mirror_hiccup(tmp_path, monkeypatch):
    monkeypatch.setattr(base_image, "BOOTSTRAP_RETRY_PAUSES_S", (0.0, 0.0))
    marker = tmp_path / "tried"
    # fails the first time (as a mirror mid-update does), succeeds the second
    code = (
        f"import pathlib, sys; p = pathlib.Path({str(marker)!r}); t = p.exists(); "
        "p.touch(); sys.exit(0 if t else 1)"
    )
    rootfs = tmp_path / "rootfs"
    base_image._bootstrap([sys.executable, "-c", code], rootfs, tmp_path / "log")
    assert marker.exists()
    always = [sys.executable, "-c", "import sys; print('E: Couldn\\'t download'); sys.exit(1)"]
    with pytest.raises(StepFailed, match="Couldn't download"):
        base_image._bootstrap(always, rootfs, tmp_path / "log")
