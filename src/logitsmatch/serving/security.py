"""Who may talk to the coordinator: loopback by default, CURVE (pyzmq's built-in) otherwise.

Binding any interface but loopback needs CURVE server keys, or an explicit ``insecure=True``
(``--insecure``), because every peer that can connect can also pause, stop or shut down the
engines. With ``authorized`` client keys a ZAP handler admits only those keys; without it any
peer that knows the server's public key may connect (the traffic is still encrypted).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

Z85_KEY_LEN = 40
# How serve hands its ranks their CURVE keys, and the coordinator the engines' public key: in
# the environment, as Z85 text (a secret key never goes on a command line).
SERVER_PUBLIC_ENV = "LOGITSMATCH_CURVE_SERVER_PUBLIC"
ENGINE_PUBLIC_ENV = "LOGITSMATCH_CURVE_ENGINE_PUBLIC"
ENGINE_SECRET_ENV = "LOGITSMATCH_CURVE_ENGINE_SECRET"


def _check_key(owner: str, field: str, key: bytes) -> None:
    if not isinstance(key, bytes) or len(key) != Z85_KEY_LEN:
        raise ValueError(
            f"{owner}.{field} must be a {Z85_KEY_LEN}-byte Z85 CURVE key, "
            f"got {type(key).__name__} of length {len(key) if key else 0}"
        )


@dataclass(frozen=True)
class CurveServerKeys:
    """The coordinator's keypair, and optionally the client public keys it admits."""

    public: bytes
    secret: bytes
    authorized: frozenset[bytes] | None = None

    def __post_init__(self) -> None:
        _check_key("CurveServerKeys", "public", self.public)
        _check_key("CurveServerKeys", "secret", self.secret)
        for key in self.authorized or ():
            _check_key("CurveServerKeys", "authorized[...]", key)

    @classmethod
    def from_files(
        cls, secret_cert: str | Path, authorized_dir: str | Path | None = None
    ) -> CurveServerKeys:
        """Keys from a ``zmq.auth.create_certificates`` secret file (+ a dir of public ones)."""
        public, secret = zmq.auth.load_certificate(str(secret_cert))
        if secret is None:
            raise ValueError(f"{secret_cert}: not a secret certificate (no secret-key)")
        authorized = None
        if authorized_dir is not None:
            if not Path(authorized_dir).is_dir():
                raise ValueError(f"CURVE authorized-clients folder {authorized_dir} does not exist")
            authorized = frozenset(zmq.auth.load_certificates(str(authorized_dir)))
        return cls(public, secret, authorized)


@dataclass(frozen=True)
class CurveClientKeys:
    """What a client or engine needs: the server's public key and its own keypair."""

    server_public: bytes
    public: bytes
    secret: bytes

    def __post_init__(self) -> None:
        for name in ("server_public", "public", "secret"):
            _check_key("CurveClientKeys", name, getattr(self, name))

    @classmethod
    def generate(cls, server_public: bytes) -> CurveClientKeys:
        public, secret = zmq.curve_keypair()
        return cls(server_public, public, secret)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to those."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(i[4][0]).is_loopback for i in infos)


def check_bind(host: str, curve: CurveServerKeys | None, insecure: bool) -> None:
    """Refuse a non-loopback bind that has neither CURVE keys nor an explicit opt-out."""
    if is_loopback(host) or curve is not None or insecure:
        return
    raise ValueError(
        f"refusing to bind {host!r}: it is not a loopback address, so anything on that network "
        "could pause or stop the engines; give CURVE keys (--curve-secret-cert) or pass "
        "--insecure (insecure=True) to accept that"
    )


def secure_server(
    sock: zmq.Socket, ctx: zmq.Context, keys: CurveServerKeys | None
) -> ThreadAuthenticator | None:
    """Make ``sock`` a CURVE server; returns the running ZAP authenticator, if any."""
    if keys is None:
        return None
    auth = None
    if keys.authorized is not None:
        auth = ThreadAuthenticator(ctx)
        auth.start()
        allowed = keys.authorized
        auth.configure_curve_callback("*", credentials_provider=_KeySet(allowed))
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
    return auth


def secure_client(sock: zmq.Socket, keys: CurveClientKeys | None) -> None:
    if keys is None:
        return
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_serverkey = keys.server_public


class _KeySet:
    """ZAP credentials provider: admits exactly the given Z85 public keys."""

    def __init__(self, keys: frozenset[bytes]) -> None:
        self.keys = keys

    def callback(self, domain: str, key: bytes) -> bool:
        return key in self.keys


def engine_curve_env(server_public: bytes) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh engine keypair for a service whose server key is ``server_public``: (what the
    ranks get: the server key and the engine keypair; what the coordinator gets: the engine
    public key, which it then admits beside the authorized clients)."""
    keys = CurveClientKeys.generate(server_public)
    ranks = {
        SERVER_PUBLIC_ENV: server_public.decode(),
        ENGINE_PUBLIC_ENV: keys.public.decode(),
        ENGINE_SECRET_ENV: keys.secret.decode(),
    }
    return ranks, {ENGINE_PUBLIC_ENV: keys.public.decode()}


def engine_curve_from_env(environ: Mapping[str, str]) -> CurveClientKeys | None:
    """The engine's CURVE keys from ``engine_curve_env``'s entries (None when there are none)."""
    if SERVER_PUBLIC_ENV not in environ:
        return None
    return CurveClientKeys(
        environ[SERVER_PUBLIC_ENV].encode(),
        environ[ENGINE_PUBLIC_ENV].encode(),
        environ[ENGINE_SECRET_ENV].encode(),
    )


def admit_engine_key(keys: CurveServerKeys, environ: Mapping[str, str]) -> CurveServerKeys:
    """``keys`` also admitting the engines' public key that ``environ`` names, if any."""
    engine = environ.get(ENGINE_PUBLIC_ENV)
    if engine is None or keys.authorized is None:
        return keys
    return CurveServerKeys(keys.public, keys.secret, keys.authorized | {engine.encode()})
