from pathlib import Path

import pytest
import zmq

from logitsmatch.serving.coordinator_config import CoordinatorConfig
from logitsmatch.serving.security import (
    CurveClientKeys,
    CurveServerKeys,
    check_bind,
    is_loopback,
)


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1", True),
        ("127.8.0.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("::", False),
        ("no-such-host.invalid", False),
    ],
)
def test_is_loopback(host, loop):
    assert is_loopback(host) is loop


def test_non_loopback_needs_curve_or_insecure():
    with pytest.raises(ValueError, match=r"refusing to bind '0\.0\.0\.0'.*--insecure"):
        check_bind("0.0.0.0", None, insecure=False)
    check_bind("0.0.0.0", None, insecure=True)
    public, secret = zmq.curve_keypair()
    check_bind("0.0.0.0", CurveServerKeys(public, secret), insecure=False)
    with pytest.raises(ValueError, match="refusing to bind"):
        CoordinatorConfig(host="0.0.0.0")


def test_keys_are_checked():
    with pytest.raises(ValueError, match=r"CurveServerKeys\.secret must be a 40-byte Z85"):
        CurveServerKeys(zmq.curve_keypair()[0], b"short")
    with pytest.raises(ValueError, match=r"CurveClientKeys\.server_public"):
        CurveClientKeys(b"", *zmq.curve_keypair())


def test_keys_load_from_zmq_certificate_files(tmp_path):
    import zmq.auth

    server_public_file, server_secret_file = zmq.auth.create_certificates(tmp_path, "server")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    client_public_file, _ = zmq.auth.create_certificates(tmp_path, "client")
    (allowed / "client.key").write_bytes(Path(client_public_file).read_bytes())
    keys = CurveServerKeys.from_files(server_secret_file, allowed)
    assert keys.public == zmq.auth.load_certificate(server_public_file)[0]
    assert keys.authorized == {zmq.auth.load_certificate(client_public_file)[0]}
    with pytest.raises(ValueError, match="not a secret certificate"):
        CurveServerKeys.from_files(server_public_file)
