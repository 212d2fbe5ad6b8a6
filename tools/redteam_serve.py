#!/usr/bin/env python3
"""Red-team checks against a real ``logitsmatch serve`` (loopback only, self-contained).

Run:  /work/main/.nox/shared/bin/python tools/redteam_serve.py [--keep] [--only 1a,2,...]

It starts ``logitsmatch serve --model tiny --tensor-model-parallel-size 2`` itself (twice: a
plain one, then one with CURVE keys required), speaks the wire protocol directly (msgpack maps
over a ZMQ DEALER; nothing imported from the project except to locate the interpreter), and
prints one ``[CHECK] PASS|FAIL|INFO: numbers`` line per check plus a summary. Every loop is
bounded in count and time, a watchdog ends the run after ``BUDGET_S``, and every process it
started (serve, the coordinator, the ranks) is killed and verified gone, also on failure.
Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import atexit
import collections
import contextlib
import os
import re
import secrets as rnd
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import msgpack
import psutil
import zmq
import zmq.auth

REPO = Path(__file__).resolve().parents[1]
PY = (
    str(REPO / ".nox/shared/bin/python")
    if (REPO / ".nox/shared/bin/python").exists()
    else sys.executable
)
T0 = time.monotonic()
BUDGET_S = 14.5 * 60  # watchdog: the whole run ends by itself after this
HOST = "127.0.0.1"
MARK_TEXT = "RT-FORGED"
MARK_TOKENS = [31337, 31337, 31337, 31337]
SECRET_PROMPT = "RT-SECRET-PROMPT"

RESULTS: list[tuple[str, str, str]] = []
T_5B_END: list[float] = []


def say(msg: str) -> None:
    print(f"  [{time.monotonic() - T0:6.1f}s] {msg}", flush=True)


def report(check: str, ok: bool | str, detail: str) -> None:
    status = "PASS" if ok is True else "FAIL" if ok is False else str(ok)
    RESULTS.append((check, status, detail))
    print(f"[{check}] {status}: {detail}", flush=True)


def left() -> float:
    return BUDGET_S - (time.monotonic() - T0)


# ---- processes ------------------------------------------------------------------------------


class Tracker:
    """Every process of every serve tree we started, by (pid, create_time), so that a pid
    reused by someone else is never signalled."""

    def __init__(self) -> None:
        self.procs: dict[int, tuple[float, str]] = {}
        self.lock = threading.Lock()

    def add(self, pid: int) -> None:
        with contextlib.suppress(psutil.Error):
            p = psutil.Process(pid)
            with self.lock:
                self.procs.setdefault(pid, (p.create_time(), " ".join(p.cmdline())[:160]))

    def scan(self, root: int) -> None:
        with contextlib.suppress(psutil.Error):
            for c in psutil.Process(root).children(recursive=True):
                self.add(c.pid)

    def alive(self, pids: list[int] | None = None) -> list[int]:
        out = []
        with self.lock:
            items = [(p, self.procs[p]) for p in (pids or list(self.procs)) if p in self.procs]
        for pid, (ctime, _) in items:
            try:
                p = psutil.Process(pid)
                if abs(p.create_time() - ctime) < 0.01 and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
            except psutil.Error:
                pass
        return out

    def kill_all(self) -> list[int]:
        for _ in range(3):
            pids = self.alive()
            if not pids:
                return []
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
            procs = []
            for p in pids:
                with contextlib.suppress(psutil.Error):
                    procs.append(psutil.Process(p))
            psutil.wait_procs(procs, timeout=5)
        return self.alive()


TRACK = Tracker()
SERVES: list[Serve] = []
_scanner_stop = threading.Event()


def _scanner() -> None:
    while not _scanner_stop.wait(0.5):
        for sv in list(SERVES):
            if sv.proc.poll() is None:
                TRACK.scan(sv.proc.pid)


class Serve:
    def __init__(self, tag: str, workdir: Path, extra: list[str] | tuple = ()) -> None:
        self.tag = tag
        self.dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir=workdir))
        self.run_dir = self.dir / "run"
        self.cmd = [
            PY,
            "-m",
            "logitsmatch.cli",
            "serve",
            "--model",
            "tiny",
            "--tensor-model-parallel-size",
            "2",
            "--run-dir",
            str(self.run_dir),
            *extra,
        ]
        self.out_path = self.dir / "serve.out"
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=str(REPO),
                start_new_session=True,
            )
        TRACK.add(self.proc.pid)
        SERVES.append(self)
        self.address: str | None = None
        say(f"started serve[{tag}] pid {self.proc.pid}: {' '.join(self.cmd[1:])}")

    def wait_address(self, timeout_s: float = 180) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = self.out_path.read_text(errors="replace")
            m = re.search(r"coordinator at (tcp://\S+)", text)
            if m:
                self.address = m.group(1)
                TRACK.scan(self.proc.pid)
                return self.address
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"serve[{self.tag}] exited {self.proc.returncode}: {text[-2000:]}"
                )
            time.sleep(0.2)
        raise TimeoutError(f"serve[{self.tag}] printed no address in {timeout_s} s")

    def tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [
                psutil.Process(self.proc.pid),
                *psutil.Process(self.proc.pid).children(recursive=True),
            ]
        return []

    def find(self, module: str) -> list[int]:
        out = []
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                if module in " ".join(p.cmdline()):
                    out.append(p.pid)
        return out

    def coordinator_pid(self) -> int:
        pids = self.find("logitsmatch.serving.coordinator")
        if not pids:
            raise RuntimeError(f"serve[{self.tag}]: no coordinator process")
        return pids[0]

    def secrets(self) -> dict[str, str]:
        out = {}
        for line in (self.run_dir / "secrets.env").read_text().splitlines():
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
        return out

    @property
    def log_path(self) -> Path:
        return self.run_dir / "coordinator.log"

    def log_size(self) -> int:
        with contextlib.suppress(OSError):
            return self.log_path.stat().st_size
        return 0

    def stop(self) -> None:
        """SIGTERM serve (its own clean path), then SIGKILL whatever of its tree is left."""
        TRACK.scan(self.proc.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)


_cleaned = False


def cleanup() -> None:
    global _cleaned
    if _cleaned:
        return
    _cleaned = True
    _scanner_stop.set()
    for sv in SERVES:
        with contextlib.suppress(Exception):
            sv.stop()
    left_over = TRACK.kill_all()
    for sv in SERVES:
        with contextlib.suppress(Exception):
            sv.proc.wait(5)
    still = TRACK.alive()
    print(
        f"cleanup: started {len(TRACK.procs)} processes; still alive after cleanup: "
        f"{still or 'none'}{' (kill failed: ' + str(left_over) + ')' if left_over else ''}",
        flush=True,
    )


def _on_signal(signum, frame):
    print(f"signal {signum}: cleaning up", flush=True)
    cleanup()
    os._exit(3)


def _watchdog() -> None:
    while left() > 0:
        time.sleep(1)
    print("WATCHDOG: time budget spent; cleaning up and exiting", flush=True)
    summary()
    cleanup()
    os._exit(2)


# ---- the wire protocol, by hand -------------------------------------------------------------


def pack(msg: dict) -> bytes:
    return msgpack.packb(msg, use_bin_type=True)


def submit(rid: str, prompt, tokens: int = 4, stream: bool = False) -> dict:
    return {
        "kind": "submit",
        "request_id": rid,
        "prompt": prompt,
        "sampling": {"num_tokens_to_generate": tokens},
        "stream": stream,
    }


def hello(role: str, name: str, secret: str | None = None, version: int = 1) -> dict:
    msg = {"kind": "connect", "role": role, "name": name, "version": version}
    if secret is not None:
        msg["secret"] = secret
    return msg


class Peer:
    def __init__(
        self,
        ctx: zmq.Context,
        addr: str,
        *,
        identity: bytes | None = None,
        curve=None,
        rcvhwm: int | None = None,
        rcvbuf: int | None = None,
        sndhwm: int = 0,
        sndtimeo: int | None = None,
    ) -> None:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, sndhwm)
        s.setsockopt(zmq.RCVHWM, 0 if rcvhwm is None else rcvhwm)
        if rcvbuf:
            s.setsockopt(zmq.RCVBUF, rcvbuf)
        if sndtimeo is not None:
            s.setsockopt(zmq.SNDTIMEO, sndtimeo)
        if identity is not None:
            s.setsockopt(zmq.ROUTING_ID, identity)
        if curve is not None:
            server_public, public, secret = curve
            s.curve_secretkey = secret
            s.curve_publickey = public
            s.curve_serverkey = server_public
        assert addr.startswith(f"tcp://{HOST}:"), addr  # loopback only, always
        s.connect(addr)
        self.sock = s
        self.seen: list[dict] = []  # everything received, in order
        self.raw_bytes = 0

    def send(self, msg: dict, block: bool = False) -> bool:
        return self.send_raw(pack(msg), block)

    def send_raw(self, data: bytes, block: bool = False) -> bool:
        try:
            self.sock.send(data, 0 if block else zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def recv(self, timeout_s: float) -> dict | None:
        if not self.sock.poll(max(0, int(timeout_s * 1000)), zmq.POLLIN):
            return None
        frames = self.sock.recv_multipart(zmq.NOBLOCK)
        self.raw_bytes += sum(len(f) for f in frames)
        try:
            msg = msgpack.unpackb(frames[-1], raw=False)
            if not isinstance(msg, dict):
                msg = {"kind": "<non-map>", "value": msg}
        except Exception as e:
            msg = {"kind": "<undecodable>", "error": repr(e)}
        msg["_raw"] = b"".join(frames)
        self.seen.append(msg)
        return msg

    def drain(self, timeout_s: float = 0.0, max_msgs: int = 1_000_000) -> list[dict]:
        out = []
        deadline = time.monotonic() + timeout_s
        for _ in range(max_msgs):
            m = self.recv(max(0.0, deadline - time.monotonic()))
            if m is None:
                break
            out.append(m)
        return out

    def wait(self, pred, timeout_s: float, heartbeat_s: float | None = 3.0) -> dict | None:
        deadline = time.monotonic() + timeout_s
        next_hb = time.monotonic() + (heartbeat_s or 1e9)
        for _ in range(1_000_000):
            now = time.monotonic()
            if now >= deadline:
                return None
            if now >= next_hb:
                self.send({"kind": "heartbeat"})
                next_hb = now + (heartbeat_s or 1e9)
            m = self.recv(min(0.25, deadline - now))
            if m is not None and pred(m):
                return m
        return None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.sock.close(0)


def strip(m: dict | None) -> dict | None:
    if m is None:
        return None
    return {
        k: (v if len(repr(v)) < 200 else repr(v)[:200] + "...") for k, v in m.items() if k != "_raw"
    }


def do_connect(p: Peer, role: str, name: str, secret: str | None = None, timeout_s: float = 15):
    p.send(hello(role, name, secret))
    return p.wait(lambda m: m.get("kind") in ("ack", "error"), timeout_s, heartbeat_s=None)


def do_status(p: Peer, timeout_s: float = 15) -> dict | None:
    p.send({"kind": "status"})
    return p.wait(
        lambda m: m.get("kind") in ("status", "error") and m.get("request_id") is None,
        timeout_s,
        None,
    )


def wait_answer(p: Peer, rid: str, timeout_s: float) -> dict | None:
    return p.wait(
        lambda m: m.get("kind") in ("reply", "error") and m.get("request_id") == rid, timeout_s
    )


def is_forged(m: dict) -> bool:
    raw = m.get("_raw", b"")
    rec = m.get("record") or {}
    return MARK_TEXT.encode() in raw or rec.get("generated_tokens") == MARK_TOKENS


def health(addr: str, label: str, curve=None, timeout_s: float = 120, tokens: int = 4) -> dict:
    """A fresh plain client: connect, status, one short request. ok=True when it got a reply."""
    ctx = zmq.Context()
    p = Peer(ctx, addr, curve=curve)
    out: dict = {"ok": False}
    try:
        ack = do_connect(p, "client", f"rt-health-{label}")
        if not ack or ack.get("kind") != "ack":
            out["why"] = f"connect answered {strip(ack)}"
            return out
        st = do_status(p)
        out["status"] = strip(st)
        t = time.monotonic()
        p.send(submit("hc", "Hello, world", tokens))
        m = wait_answer(p, "hc", timeout_s)
        out["latency_s"] = round(time.monotonic() - t, 2)
        out["answer"] = m.get("kind") if m else None
        out["ok"] = bool(m and m.get("kind") == "reply" and not is_forged(m))
        out["replica"] = m.get("replica") if m else None
        out["paused"] = (st or {}).get("paused")
        if m and m.get("kind") == "error":
            out["why"] = f"{m.get('code')}: {m.get('message')}"
        p.send({"kind": "bye"})
        return out
    finally:
        p.close()
        ctx.destroy(0)


def wait_replicas(addr: str, curve=None, timeout_s: float = 300) -> dict | None:
    ctx = zmq.Context()
    p = Peer(ctx, addr, curve=curve)
    try:
        ack = do_connect(p, "client", "rt-wait", timeout_s=30)
        if not ack or ack.get("kind") != "ack":
            return None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            st = do_status(p)
            if st and st.get("replicas"):
                p.send({"kind": "bye"})
                return st
            time.sleep(1.0)
        return None
    finally:
        p.close()
        ctx.destroy(0)


def check_health(sv: Serve, after: str) -> bool:
    h = health(sv.address, after.replace(" ", "_"))
    ok = h["ok"] and h.get("paused") is False and sv.proc.poll() is None
    report(
        f"health after {after}",
        ok,
        f"reply={h.get('answer')} latency={h.get('latency_s')}s "
        f"replica={h.get('replica')} paused={h.get('paused')} status={h.get('status')} "
        f"{h.get('why', '')}",
    )
    return ok


def rss(pid: int) -> int:
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid).memory_info().rss
    return 0


class RssSampler:
    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak = self.start = rss(pid)
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak = max(self.peak, rss(self.pid))

    def stop(self) -> int:
        self._stop.set()
        self._t.join(2)
        return self.peak


def wait_idle(pid: int, max_s: float = 90, quiet_cpu_s: float = 0.15) -> float:
    """Until the process used < quiet_cpu_s CPU in each of two consecutive seconds."""
    t = time.monotonic()
    quiet = 0
    try:
        p = psutil.Process(pid)
        last = sum(p.cpu_times()[:2])
        while time.monotonic() - t < max_s and quiet < 2:
            time.sleep(1.0)
            now = sum(p.cpu_times()[:2])
            quiet = quiet + 1 if now - last < quiet_cpu_s else 0
            last = now
    except psutil.Error:
        pass
    return time.monotonic() - t


MB = 1 << 20


def listening(sv: Serve) -> list[tuple[int, str, str, int]]:
    out = []
    for p in sv.tree():
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN or (
                    c.type == 2 and c.laddr
                ):  # TCP listen / UDP bound
                    out.append((p.pid, " ".join(p.cmdline()[2:4]), c.laddr.ip, c.laddr.port))
    return out


def non_loopback(socks) -> list:
    import ipaddress

    return [s for s in socks if not ipaddress.ip_address(s[2]).is_loopback]


# ---- check 1: roles bound to credentials ----------------------------------------------------


def template_record(sv: Serve) -> dict:
    ctx = zmq.Context()
    p = Peer(ctx, sv.address)
    try:
        do_connect(p, "client", "rt-template")
        p.send(submit("tpl", "Hello, world", 4))
        m = wait_answer(p, "tpl", 120)
        p.send({"kind": "bye"})
        if not m or m.get("kind") != "reply":
            raise RuntimeError(f"no genuine reply to copy a record from: {strip(m)}")
        return m["record"]
    finally:
        p.close()
        ctx.destroy(0)


def forged_record(tpl: dict) -> dict:
    rec = dict(tpl)
    for k, v in rec.items():
        if isinstance(v, str) and k != "finish_reason":
            rec[k] = MARK_TEXT
    rec["generated_tokens"] = list(MARK_TOKENS)
    return rec


def forged_messages(rec: dict, ids: range) -> list[dict]:
    out = []
    for i in ids:
        rid = str(i)
        out.append({"kind": "reply", "request_id": rid, "record": rec, "replica": "dp0"})
        out.append(
            {
                "kind": "partial",
                "request_id": rid,
                "offset": 0,
                "tokens": MARK_TOKENS,
                "replica": "dp0",
            }
        )
        out.append({"kind": "error", "code": "rt_forged", "message": MARK_TEXT, "request_id": rid})
    return out


def check_1a(sv: Serve, tpl: dict) -> None:
    sec = sv.secrets()
    eng, opr = sec["LOGITSMATCH_ENGINE_SECRET"], sec["LOGITSMATCH_OPERATOR_SECRET"]
    variants = [
        ("no secret", None),
        ("wrong 64-hex secret", rnd.token_hex(32)),
        ("empty secret", ""),
        ("the operator secret", opr),
        ("engine secret upper-cased", eng.upper()),
        ("engine secret truncated to 32", eng[:32]),
        ("engine secret + newline", eng + "\n"),
        ("engine secret + 1 char", eng + "0"),
        ("engine secret minus last char", eng[:-1]),
    ]
    ctx = zmq.Context()
    fakes: list[tuple[str, Peer, dict | None]] = []
    try:
        for i, (label, s) in enumerate(variants):
            f = Peer(ctx, sv.address)
            ans = do_connect(f, "engine", "dp0" if i % 2 == 0 else f"rt-fake{i}", s, timeout_s=8)
            fakes.append((label, f, ans))
        # a refused fake that then becomes a plain client and forges replies from there
        fc = Peer(ctx, sv.address)
        do_connect(fc, "engine", "rt-fake-c", None, 8)
        fc_ack = do_connect(fc, "client", "rt-fake-then-client", None, 8)
        accepted = [label for label, _, a in fakes if a and a.get("kind") == "ack"]
        answers = collections.Counter(
            (a or {}).get("code", (a or {}).get("kind", "none")) for _, _, a in fakes
        )
        say(f"1a: {len(fakes)} fake engines; answers {dict(answers)}; accepted {accepted}")

        C = Peer(ctx, sv.address)
        do_connect(C, "client", "rt-real-1a")
        forged = forged_messages(forged_record(tpl), range(0, 400))
        sent_forged = 0
        n_prompts, replies, errors, forged_seen = 10, {}, {}, []
        t_end = time.monotonic() + 20
        next_submit, submitted, fi = time.monotonic(), 0, 0
        poll = zmq.Poller()
        peers = [C, fc] + [f for _, f, _ in fakes]
        for p in peers:
            poll.register(p.sock, zmq.POLLIN)
        last_hb = next_forge = time.monotonic()
        coord = sv.coordinator_pid()
        sampler = RssSampler(coord)
        for _ in range(2_000_000):
            now = time.monotonic()
            if now >= t_end and (len(replies) + len(errors) >= submitted or now > t_end + 60):
                break
            if submitted < n_prompts and now >= next_submit:
                C.send(submit(f"s{submitted}", f"{SECRET_PROMPT}-{submitted} tell nobody", 6))
                submitted += 1
                next_submit = now + 1.8
            if now - last_hb > 2:
                for p in peers:
                    p.send({"kind": "heartbeat"})
                last_hb = now
            if now < t_end and now >= next_forge:  # a slice of forged answers from every fake
                next_forge = now + 0.02  # ~5000 frames/s in all: enough, without a heap flood
                for _ in range(10):
                    msg = forged[fi % len(forged)]
                    fi += 1
                    for p in [fc] + [f for _, f, _ in fakes]:
                        p.send(msg)
                        sent_forged += 1
            for sock, _ in poll.poll(50):
                p = next(q for q in peers if q.sock is sock)
                for m in p.drain(0, 1000):
                    if p is C and m.get("kind") == "reply":
                        replies[m["request_id"]] = m
                        if is_forged(m):
                            forged_seen.append(strip(m))
                    elif p is C and m.get("kind") in ("partial", "error") and is_forged(m):
                        forged_seen.append(strip(m))
                    elif p is C and m.get("kind") == "error" and m.get("request_id"):
                        errors[m["request_id"]] = m
        captured = [
            (label, strip(m))
            for label, f, _ in fakes
            for m in f.seen
            if m.get("kind") == "submit" or SECRET_PROMPT.encode() in m.get("_raw", b"")
        ] + [
            ("fake-then-client", strip(m))
            for m in fc.seen
            if m.get("kind") == "submit" or SECRET_PROMPT.encode() in m.get("_raw", b"")
        ]
        fake_kinds = collections.Counter(
            (m.get("kind"), m.get("code")) for _, f, _ in fakes for m in f.seen
        )
        peak = sampler.stop()
        genuine = [r for r in replies.values() if not is_forged(r) and r.get("replica") == "dp0"]
        ok = not accepted and not captured and not forged_seen
        report(
            "1a fake engine (no/wrong secret)",
            ok,
            f"{len(fakes)} engine connects with bad secrets, accepted={len(accepted)} {accepted}; "
            f"answers={dict(answers)}; prompts captured by fakes in {20} s: {len(captured)} "
            f"(real client sent {submitted}); forged reply/partial/error frames sent: "
            f"{sent_forged}, "
            f"forged ones reaching the real client: {len(forged_seen)}; real client got "
            f"{len(genuine)}/{submitted} genuine replies, {len(errors)} errors; fakes received "
            f"{dict(collections.Counter(k for k, _ in fake_kinds.elements()))}; "
            f"fake-then-client connect={strip(fc_ack) and fc_ack.get('kind')}; coordinator RSS "
            f"{sampler.start // MB} -> peak {peak // MB} MiB"
            + (f"; CAPTURED: {captured[:3]}" if captured else "")
            + (f"; FORGED SEEN: {forged_seen[:3]}" if forged_seen else ""),
        )
        if len(genuine) < submitted:
            report(
                "1a real client unaffected",
                False,
                f"only {len(genuine)}/{submitted} genuine "
                f"replies; errors {[strip(e) for e in list(errors.values())[:3]]}",
            )
        for p in peers:
            p.send({"kind": "bye"})
    finally:
        ctx.destroy(0)


def check_1b(sv: Serve) -> None:
    sec = sv.secrets()
    eng = sec["LOGITSMATCH_ENGINE_SECRET"]
    ctx = zmq.Context()
    try:
        P = Peer(ctx, sv.address)
        ack = do_connect(P, "client", "rt-plain")
        verbs = {}
        for verb in ("pause", "unpause", "stop", "shutdown"):
            P.send({"kind": verb})
            got = P.drain(3.0)
            st = do_status(P)
            verbs[verb] = (
                [(m.get("kind"), m.get("code"), m.get("of")) for m in got],
                (st or {}).get("paused"),
                len((st or {}).get("replicas") or []),
            )
        acks = [v for v, (got, _, _) in verbs.items() if any(k == "ack" for k, _, _ in got)]
        # not connected at all
        U = Peer(ctx, sv.address)
        unconn = {}
        for verb in ("pause", "stop", "shutdown"):
            U.send({"kind": verb})
            unconn[verb] = [(m.get("kind"), m.get("code")) for m in U.drain(2.0)]
        # operator connects without the operator secret
        op_tries = {}
        for label, s in [
            ("none", None),
            ("wrong", rnd.token_hex(32)),
            ("engine secret", eng),
            ("empty", ""),
        ]:
            op = Peer(ctx, sv.address)
            a = do_connect(op, "operator", "rt-op-" + label.replace(" ", ""), s, 8)
            after = None
            if a and a.get("kind") == "ack":
                op.send({"kind": "pause"})
                after = [(m.get("kind"), m.get("of"), m.get("code")) for m in op.drain(2.0)]
            op_tries[label] = ((a or {}).get("kind"), (a or {}).get("code"), after)
            op.send({"kind": "bye"})
        op_accepted = [k for k, v in op_tries.items() if v[0] == "ack"]
        # a plain client asks to become operator on the same identity, then tries again
        P.send(hello("operator", "rt-plain", None))
        upgrade = [(m.get("kind"), m.get("code")) for m in P.drain(2.0)]
        P.send({"kind": "pause"})
        upgrade_pause = [(m.get("kind"), m.get("code")) for m in P.drain(2.0)]
        P.send({"kind": "bye"})
        h = health(sv.address, "1b")
        ok = (
            bool(ack and ack.get("kind") == "ack")
            and not acks
            and not op_accepted
            and all(not any(k == "ack" for k, _ in v) for v in unconn.values())
            and all(v[1] is False and v[2] >= 1 for v in verbs.values())
            and not any(k == "ack" for k, _ in upgrade_pause)
            and h["ok"]
        )
        report(
            "1b plain client cannot pause/stop/shutdown",
            ok,
            f"verbs from plain client -> {{verb: (answers, paused_after, replicas_after)}} "
            f"{verbs}; "
            f"from unconnected peer {unconn}; operator connect w/o operator secret "
            f"{op_tries} (accepted {op_accepted}); re-connect as operator on same identity "
            f"{upgrade}, then pause {upgrade_pause}; afterwards real request "
            f"{'answered in ' + str(h.get('latency_s')) + ' s' if h['ok'] else 'FAILED ' + str(h)} "
            f"paused={h.get('paused')}",
        )
    finally:
        ctx.destroy(0)


def check_1c(sv: Serve, tpl: dict) -> None:
    sec = sv.secrets()
    eng, opr = sec["LOGITSMATCH_ENGINE_SECRET"], sec["LOGITSMATCH_OPERATOR_SECRET"]
    ctx = zmq.Context()
    notes: list[str] = []
    bad: list[str] = []
    try:
        E = Peer(ctx, sv.address)
        a = do_connect(E, "engine", "rt-evil", eng)
        notes.append(f"engine connect with engine secret: {(a or {}).get('kind')}")
        if not a or a.get("kind") != "ack":
            report(
                "1c engine-secret peer",
                False,
                f"could not even register with the engine secret: {strip(a)}",
            )
            return

        def e_answers(msg: dict, t: float = 2.0) -> list:
            E.send(msg)
            return [
                (m.get("kind"), m.get("code"), m.get("of"))
                for m in E.drain(t)
                if m.get("kind") != "heartbeat"
            ]

        got = e_answers(submit("e1", "RT-ENGINE-SUBMIT", 4), 3.0)
        notes.append(f"submit as engine -> {got}")
        if any(k in ("reply", "submit") for k, _, _ in got):
            bad.append(f"engine identity could submit: {got}")
        got = e_answers({"kind": "status"})
        notes.append(f"status as engine -> {got}")
        if any(k == "status" for k, _, _ in got):
            bad.append("engine identity got a status answer")
        for verb in ("pause", "unpause", "stop", "shutdown"):
            got = e_answers({"kind": verb})
            notes.append(f"{verb} as engine -> {got}")
            if any(k == "ack" for k, _, _ in got):
                bad.append(f"engine identity acked for {verb}")
        got = e_answers(hello("operator", "rt-evil", eng))
        notes.append(f"same identity re-connect as operator (engine secret) -> {got}")
        got = e_answers(hello("operator", "rt-evil", opr))
        notes.append(f"same identity re-connect as operator (REAL operator secret) -> {got}")
        if any(k == "ack" for k, _, _ in got):
            bad.append("an engine identity switched to operator")
        got = e_answers(hello("client", "rt-evil"))
        notes.append(f"same identity re-connect as client -> {got}")
        E.send({"kind": "abort", "request_id": "0"})
        abort_seen = [
            (m.get("kind"), m.get("code")) for m in E.drain(1.0) if m.get("kind") != "heartbeat"
        ]
        notes.append(f"abort as engine -> {abort_seen}")
        E2 = Peer(ctx, sv.address)
        a2 = do_connect(E2, "operator", "rt-evil-op", eng, 8)
        notes.append(
            f"fresh peer: operator with engine secret -> {(a2 or {}).get('kind')}/"
            f"{(a2 or {}).get('code')}"
        )
        if a2 and a2.get("kind") == "ack":
            bad.append("operator role accepted the engine secret")
        E3 = Peer(ctx, sv.address)
        a3 = do_connect(E3, "client", "rt-evil-cl", eng, 8)
        E3.send({"kind": "stop"})
        g3 = [(m.get("kind"), m.get("code")) for m in E3.drain(2.0)]
        notes.append(
            f"fresh peer: client role showing engine secret -> {(a3 or {}).get('kind')}, "
            f"then stop -> {g3}"
        )
        if any(k == "ack" for k, _ in g3):
            bad.append("client-with-engine-secret could stop")

        # Answering ids it was never given: a real request held (paused) on dp0, while the
        # engine-secret peer forges reply/partial/error for every plausible engine id.
        op = Peer(ctx, sv.address)
        do_connect(op, "operator", "rt-operator", opr)
        C = Peer(ctx, sv.address)
        do_connect(C, "client", "rt-real-1c")
        E.send({"kind": "bye"})  # leave, so the held request goes to dp0
        E.drain(0.5)
        E.close()
        op.send({"kind": "pause"})
        pa = op.wait(lambda m: m.get("kind") in ("ack", "error"), 10, None)
        C.send(submit("L", "Hello there, a request held on dp0", 8))
        time.sleep(1.0)
        E = Peer(ctx, sv.address)
        a = do_connect(E, "engine", "rt-evil2", eng)
        forged = forged_messages(forged_record(tpl), range(0, 600))
        for m in forged:
            E.send(m)
        E.send({"kind": "forgotten", "keys": [b"\0" * 32]})
        time.sleep(1.0)
        # a second request now goes to rt-evil2 (fewest in flight): answer it twice (replay)
        C.send(submit("M", "a request the engine-secret peer will answer", 4))
        sub = E.wait(lambda m: m.get("kind") == "submit", 10, 2.0)
        replay = None
        if sub:
            good = dict(tpl)
            good_reply = {
                "kind": "reply",
                "request_id": sub["request_id"],
                "record": good,
                "replica": "rt-evil2",
            }
            E.send(good_reply)
            E.send(good_reply)  # replay
            E.send(
                {
                    "kind": "partial",
                    "request_id": sub["request_id"],
                    "offset": 0,
                    "tokens": MARK_TOKENS,
                    "replica": "x",
                }
            )
            E.send(
                {
                    "kind": "error",
                    "code": "rt_forged",
                    "message": MARK_TEXT,
                    "request_id": sub["request_id"],
                }
            )
            time.sleep(1.5)
            replay = sub["request_id"]
        notes.append(
            f"rt-evil2 got a submit for M: {bool(sub)} (engine id {replay}); "
            f"operator pause -> {(pa or {}).get('kind')}"
        )
        op.send({"kind": "unpause"})
        op.wait(lambda m: m.get("kind") in ("ack", "error"), 10, None)
        t_end = time.monotonic() + 60
        for _ in range(100000):
            if time.monotonic() > t_end:
                break
            C.drain(0.5)
            E.drain(0)
            if any(
                m.get("kind") in ("reply", "error") and m.get("request_id") == "L" for m in C.seen
            ):
                break
            C.send({"kind": "heartbeat"})
            E.send({"kind": "heartbeat"})
        C.drain(1.0)
        L_msgs = [m for m in C.seen if m.get("request_id") == "L"]
        M_msgs = [m for m in C.seen if m.get("request_id") == "M"]
        forged_seen = [strip(m) for m in C.seen if is_forged(m)]
        L_ok = len([m for m in L_msgs if m.get("kind") == "reply"]) == 1 and all(
            m.get("kind") == "reply" and m.get("replica") == "dp0" for m in L_msgs
        )
        M_replies = [m for m in M_msgs if m.get("kind") == "reply"]
        M_other = [(m.get("kind"), m.get("code")) for m in M_msgs if m.get("kind") != "reply"]
        notes.append(
            "held request L: "
            f"{[(m.get('kind'), m.get('replica'), m.get('code')) for m in L_msgs]}; "
            "M (answered by rt-evil2 twice + partial + error): "
            f"replies={len(M_replies)} others={M_other}; "
            f"forged frames sent {len(forged)}; forged seen by client {len(forged_seen)}"
        )
        if not L_ok:
            bad.append(
                f"held request L not answered exactly once by dp0: {[strip(m) for m in L_msgs]}"
            )
        if forged_seen:
            bad.append(f"forged content reached the client: {forged_seen[:2]}")
        if sub and (len(M_replies) != 1 or M_other):
            bad.append(
                "replayed answers for M reached the client: "
                f"replies={len(M_replies)} others={M_other}"
            )
        E.send({"kind": "bye"})

        # Identity games (explicit ZMQ routing ids)
        vid = b"rt-victim-" + rnd.token_hex(4).encode()
        V = Peer(ctx, sv.address, identity=vid)
        do_connect(V, "client", "rt-victim")
        V.send(submit("v1", "victim request", 6))
        A = Peer(ctx, sv.address, identity=vid)  # same routing id while the victim is connected
        A.send({"kind": "abort", "request_id": "v1"})
        A.send({"kind": "bye"})
        A.send({"kind": "status"})
        va = wait_answer(V, "v1", 60)
        a_got = A.drain(1.0)
        notes.append(
            f"duplicate routing id while victim connected: attacker got {len(a_got)} frames; "
            f"victim's v1 -> {(va or {}).get('kind')}"
        )
        if len(a_got) or not va or va.get("kind") != "reply":
            bad.append(
                "duplicate-identity peer interfered: attacker got "
                f"{[strip(m) for m in a_got]}, victim {strip(va)}"
            )
        A.close()
        # the victim submits (held by a pause), then drops its connection without bye; a new
        # socket takes its routing id, says nothing but status, and waits for the reply
        op.send({"kind": "pause"})
        op.wait(lambda m: m.get("kind") in ("ack", "error"), 10, None)
        V.send(submit("v2", "victim request two", 6))
        time.sleep(0.5)
        V.close()
        time.sleep(0.5)
        A2 = Peer(ctx, sv.address, identity=vid)
        A2.send({"kind": "status"})
        hij = A2.drain(2.0)
        op.send({"kind": "unpause"})
        op.wait(lambda m: m.get("kind") in ("ack", "error"), 10, None)
        hij += A2.drain(6.0)
        kinds = [(m.get("kind"), m.get("request_id"), m.get("code")) for m in hij]
        notes.append(f"re-used routing id after victim left (no connect sent): got {kinds}")
        hijacked = any(m.get("kind") in ("status", "reply") for m in hij)
        for p in (op, C, E2, E3, A2):
            p.send({"kind": "bye"})
        h = health(sv.address, "1c")
        ok = not bad and h["ok"]
        report(
            "1c engine-secret peer: no client/control powers; stray answers dropped",
            ok,
            "; ".join(notes)
            + (f"; BAD: {bad}" if bad else "")
            + f"; afterwards real request ok={h['ok']} in {h.get('latency_s')} s "
            f"paused={h.get('paused')}",
        )
        report(
            "1c-info routing-id reuse after a client disconnects",
            "INFO" if not hijacked else "NOTE",
            "a peer choosing the same explicit ZMQ routing id as a client that dropped without "
            f"bye {'IS' if hijacked else 'is not'} treated as that client (got {kinds[:4]}); real "
            "clients use libzmq's auto ids, which a peer cannot choose knowingly",
        )
    finally:
        ctx.destroy(0)


def check_1d(sv: Serve) -> None:
    """Secrets handed only where they belong: not on any command line, operator secret not
    in the ranks' environment, secrets file mode 0600."""
    sec = sv.secrets()
    eng, opr = sec["LOGITSMATCH_ENGINE_SECRET"], sec["LOGITSMATCH_OPERATOR_SECRET"]
    mode = oct((sv.run_dir / "secrets.env").stat().st_mode & 0o777)
    in_cmdline, rank_has_op = [], []
    for p in sv.tree():
        with contextlib.suppress(psutil.Error):
            cl = " ".join(p.cmdline())
            if eng in cl or opr in cl:
                in_cmdline.append(p.pid)
    for pid in sv.find("logitsmatch.serving.rank_main"):
        with contextlib.suppress(OSError):
            if opr.encode() in Path(f"/proc/{pid}/environ").read_bytes():
                rank_has_op.append(pid)
    report(
        "1d secrets handling",
        mode == "0o600" and not in_cmdline and not rank_has_op,
        f"secrets.env mode {mode}; processes with a secret on their command line: "
        f"{in_cmdline or 'none'}; ranks with the operator secret in their environment: "
        f"{rank_has_op or 'none'}",
    )


# ---- check 2: one client cannot take the service down ----------------------------------------


def check_2(sv: Serve) -> None:
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        base = health(sv.address, "2-baseline")
        H = Peer(ctx, sv.address)
        S = Peer(ctx, sv.address)
        do_connect(H, "client", "rt-heavy")
        do_connect(S, "client", "rt-short")
        prompt = ("lorem ipsum dolor sit amet " * 40000)[:1_000_000]
        sampler = RssSampler(coord)
        t0 = time.monotonic()
        for i in range(32):
            H.send(submit(f"h{i}", prompt + str(i), 4))
        t_sent = time.monotonic() - t0
        time.sleep(0.5)
        ts = time.monotonic()
        S.send(submit("short", "Hello, world", 4))
        m = None
        last_hb = time.monotonic()
        deadline = ts + 120
        for _ in range(100000):
            if time.monotonic() > deadline:
                break
            got = S.recv(0.2)
            H.drain(0)
            if got and got.get("request_id") == "short" and got.get("kind") in ("reply", "error"):
                m = got
                break
            if time.monotonic() - last_hb > 3:
                S.send({"kind": "heartbeat"})
                H.send({"kind": "heartbeat"})
                last_hb = time.monotonic()
        short_s = round(time.monotonic() - ts, 2)

        # wait for the heavy client's 32 answers (bounded)
        def answered() -> dict:
            return {
                x["request_id"]: x
                for x in H.seen
                if x.get("kind") in ("reply", "error")
                and str(x.get("request_id", "")).startswith("h")
            }

        heavy = answered()
        deadline = time.monotonic() + 240
        last_hb = 0.0
        while len(heavy) < 32 and time.monotonic() < deadline:
            H.drain(0.5)
            heavy = answered()
            if time.monotonic() - last_hb > 3:
                H.send({"kind": "heartbeat"})
                last_hb = time.monotonic()
        heavy_s = round(time.monotonic() - t0, 1)
        peak = sampler.stop()
        codes = collections.Counter(x.get("code") or x.get("kind") for x in heavy.values())
        log_text = sv.log_path.read_text(errors="replace")
        dropped = re.findall(r"replica 'dp0' .*(?:deadline|disconnected)", log_text)
        H.send({"kind": "bye"})
        S.send({"kind": "bye"})
        h = health(sv.address, "2-after")
        ok = bool(m and m.get("kind") == "reply") and short_s <= 60 and h["ok"] and not dropped
        report(
            "2 32 x 1 MB prompts vs a short request",
            ok,
            f"baseline short request {base.get('latency_s')} s; 32 x 1,000,000-byte submits sent "
            f"in {t_sent:.2f} s; concurrent short request from a 2nd client -> "
            f"{(m or {}).get('kind')} in {short_s} s (bound used: 60 s); heavy client's answers "
            f"{len(heavy)}/32 {dict(codes)} after {heavy_s} s; coordinator RSS "
            f"{sampler.start // MB}"
            f" -> peak {peak // MB} MiB; replica dropped: {bool(dropped)}; afterwards real request "
            f"ok={h['ok']} in {h.get('latency_s')} s",
        )
    finally:
        ctx.destroy(0)


# ---- check 5: bounded memory and log ----------------------------------------------------------


def count_lines(sv: Serve, pattern: str) -> int:
    with contextlib.suppress(OSError):
        return len(re.findall(pattern, sv.log_path.read_text(errors="replace")))
    return 0


def check_5a(sv: Serve, n: int = 300_000) -> None:
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        N = Peer(ctx, sv.address, rcvhwm=1, rcvbuf=4096)
        a = do_connect(N, "client", "rt-nonreader")
        wait_idle(coord, 10)
        r0, log0, fd0 = rss(coord), sv.log_size(), psutil.Process(coord).num_fds()
        cs0 = count_lines(sv, r"cannot send")
        sampler = RssSampler(coord)
        t = time.monotonic()
        frame = pack({"kind": "heartbeat"})
        sent = 0
        for i in range(n):
            if not N.send_raw(frame):
                break
            sent += 1
            if i % 20000 == 0 and time.monotonic() - t > 90:
                break
        t_send = time.monotonic() - t
        idle = wait_idle(coord, 120)
        r1 = rss(coord)
        peak = sampler.stop()
        log1 = sv.log_size()
        cs1 = count_lines(sv, r"cannot send")
        N.close()
        time.sleep(3)
        r2 = rss(coord)
        growth = (max(peak, r1) - r0) / MB
        ok = growth <= 100 and sv.proc.poll() is None
        report(
            "5a 300k small valid frames, never reads",
            ok,
            f"connect={(a or {}).get('kind')}; sent {sent} heartbeat frames ({len(frame)} B each) "
            f"in {t_send:.1f} s; coordinator busy {idle:.0f} s more; RSS {r0 // MB} -> peak "
            f"{peak // MB}"
            f" -> settled {r1 // MB} MiB (growth {growth:.1f} MiB; bound used 100 MiB); "
            f"{r2 // MB} MiB 3 s after the peer closed; log +{(log1 - log0) / 1024:.0f} KiB "
            f"('cannot send' lines +{cs1 - cs0}); fds {fd0}",
        )
        report(
            "5a-log non-reader's frames: log growth",
            log1 - log0 <= 100 * 1024,
            f"the same {sent} valid frames grew the coordinator log by "
            f"{(log1 - log0) / 1024:.0f} KiB: "
            f"{cs1 - cs0} INFO 'coordinator: cannot send ... (Resource temporarily unavailable)' "
            f"lines, one per frame once the peer's queue is full, not rate-limited "
            f"({(log1 - log0) / max(1, sent):.0f} B per frame sent); bound used 100 KiB",
        )
    finally:
        ctx.destroy(0)


def _amplify_frame(key_len: int) -> bytes:
    # an unknown field whose *name* is long: the error reply carries up to max_text_chars of it
    return pack({"kind": "heartbeat", "K" * key_len: 1})


def check_5a_amplified(
    sv: Serve, peers: int = 2, per_peer: int = 60_000, cap_mb: int = 1500
) -> None:
    """Not-connected peers that never read, sending small-ish bad frames whose error replies
    are ~4 KB: the coordinator queues up to its per-peer high-water mark of replies for each."""
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        wait_idle(coord, 10)
        r0, log0 = rss(coord), sv.log_size()
        sampler = RssSampler(coord)
        frame = _amplify_frame(4200)
        rows = []
        ps = []
        t_all = time.monotonic()
        for k in range(peers):
            N = Peer(ctx, sv.address, rcvhwm=1, rcvbuf=4096, sndhwm=2000, sndtimeo=20000)
            ps.append(N)
            t = time.monotonic()
            sent = 0
            for i in range(per_peer):
                if not N.send_raw(frame, block=True):
                    break
                sent += 1
                if i % 2000 == 0 and (
                    rss(coord) - r0 > cap_mb * MB or time.monotonic() - t > 100 or left() < 300
                ):
                    break
            wait_idle(coord, 90)
            rows.append((k, sent, round(time.monotonic() - t, 1), rss(coord) // MB))
        peak = sampler.stop()
        held = rss(coord)
        for N in ps:
            N.close()
        time.sleep(3)
        r2 = rss(coord)
        growth = (max(peak, held) - r0) / MB
        ok = growth <= 100
        report(
            "5a+ amplified replies to non-readers",
            ok,
            f"{peers} unconnected peers, each sending {len(frame)}-byte frames with a 4200-char "
            f"unknown field name (each error reply ~4.1 KB) and never reading: per peer "
            f"(peer, frames, s, coordinator RSS MiB after) {rows}; RSS {r0 // MB} -> peak "
            f"{peak // MB} MiB (growth {growth:.0f} MiB, {growth / max(1, peers):.0f} MiB/peer; "
            f"bound used 100 MiB); {r2 // MB} MiB 3 s after the peers closed; log "
            f"+{(sv.log_size() - log0) / 1024:.0f} KiB; total {time.monotonic() - t_all:.0f} s",
        )
    finally:
        ctx.destroy(0)


def check_5a_queue(sv: Serve, n: int = 200) -> None:
    """One client queues many 1 MB prompts: they wait in the coordinator (the replica takes
    ~4 MB at a time), so its memory grows with what one client may queue (cap 4096)."""
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        wait_idle(coord, 10)
        r0 = rss(coord)
        Q = Peer(ctx, sv.address)
        do_connect(Q, "client", "rt-queuer")
        sampler = RssSampler(coord)
        prompt = "x" * 1_000_000
        t = time.monotonic()
        for i in range(n):
            Q.send(submit(f"q{i}", prompt[:-6] + f"{i:06d}", 4))
            if i % 20 == 0 and rss(coord) - r0 > 1500 * MB:
                break
        time.sleep(4)
        Q.drain(0)
        r1 = rss(coord)
        answered = len([m for m in Q.seen if m.get("kind") in ("reply", "error")])
        codes = collections.Counter(m.get("code") for m in Q.seen if m.get("kind") == "error")
        Q.send({"kind": "bye"})
        time.sleep(3)
        peak = sampler.stop()
        r2 = rss(coord)
        Q.close()
        growth = (max(r1, peak) - r0) / MB
        report(
            "5a++ one client's queued 1 MB prompts",
            growth <= 100,
            f"{n} submits of 1,000,000 B from one client in {time.monotonic() - t:.1f} s; "
            "after 4 s "
            f"{answered} answered {dict(codes)}; coordinator RSS {r0 // MB} -> {r1 // MB} (peak "
            f"{peak // MB}) MiB, growth {growth:.0f} MiB = {growth / n:.2f} MiB per queued prompt "
            f"(per-client cap is 4096 requests => ~{growth / n * 4096 / 1024:.1f} GiB per client "
            f"identity, and identities are free); {r2 // MB} MiB 3 s after its bye; "
            "bound used 100 MiB",
        )
    finally:
        ctx.destroy(0)


def check_5b(sv: Serve, n: int = 8000, batch: int = 250) -> None:
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    ctx.setsockopt(zmq.LINGER, 0)
    ctx.set(zmq.MAX_SOCKETS, 4096)
    try:
        wait_idle(coord, 10)
        r0, log0, fd0 = rss(coord), sv.log_size(), psutil.Process(coord).num_fds()
        sampler = RssSampler(coord)
        t = time.monotonic()
        acks = 0
        done = 0
        while done < n and time.monotonic() - t < 240 and left() > 240:
            ps = [Peer(ctx, sv.address) for _ in range(min(batch, n - done))]
            poll = zmq.Poller()
            for p in ps:
                p.send(hello("client", "rt-leaver"))
                poll.register(p.sock, zmq.POLLIN)
            pending = {p.sock: p for p in ps}
            deadline = time.monotonic() + 20
            while pending and time.monotonic() < deadline:
                for sock, _ in poll.poll(200):
                    p = pending.pop(sock, None)
                    if p is not None:
                        m = p.recv(0)
                        acks += bool(m and m.get("kind") == "ack")
                        poll.unregister(sock)
            for p in ps:
                p.close()  # no bye
            done += len(ps)
        t_run = time.monotonic() - t
        T_5B_END.append(time.monotonic())
        wait_idle(coord, 30)
        r1 = rss(coord)
        peak = sampler.stop()
        fd1 = psutil.Process(coord).num_fds()
        h = health(sv.address, "5b")
        growth = (max(r1, peak) - r0) / MB
        ok = growth <= 64 and h["ok"] and fd1 <= fd0 + 50
        report(
            "5b 8000 clients leave without bye",
            ok,
            f"{done} clients connected ({acks} acks) and closed without bye in {t_run:.0f} s; "
            f"coordinator RSS {r0 // MB} -> {r1 // MB} (peak {peak // MB}) MiB, growth "
            f"{growth:.1f} MiB (bound used 64 MiB); fds {fd0} -> {fd1}; log "
            f"+{(sv.log_size() - log0) / 1024:.0f} KiB so far (the coordinator forgets them after "
            f"its client timeout, 60 s); afterwards real request ok={h['ok']} in "
            f"{h.get('latency_s')} s",
        )
    finally:
        ctx.destroy(0)


def check_5c(sv: Serve, n: int = 100_000) -> None:
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        wait_idle(coord, 10)
        log0 = sv.log_size()
        B = Peer(ctx, sv.address)
        frames = [
            b"\xc1garbage",
            b"not msgpack at all",
            pack([1, 2, 3]),
            pack({"kind": "nope"}),
            pack({"kind": "submit", "request_id": "x", "prompt": 5, "sampling": {}}),
            pack({"kind": "connect", "role": "root", "name": "x", "version": 1}),
            pack({"kind": "heartbeat", "extra": 1}),
            pack({"no": "kind"}),
            b"",
            pack(
                {
                    "kind": "submit",
                    "request_id": "x" * 500,
                    "prompt": "p",
                    "sampling": {"top_k": -1},
                }
            ),
        ]
        t = time.monotonic()
        sent = 0
        for i in range(n):
            B.send_raw(frames[i % len(frames)])
            sent += 1
            if i % 500 == 0:
                B.drain(0)
                if time.monotonic() - t > 120:
                    break
        with contextlib.suppress(zmq.Again):
            B.sock.send_multipart([b"a", b"b"], zmq.NOBLOCK)  # two payload frames
        t_send = time.monotonic() - t
        wait_idle(coord, 60)
        B.drain(1.0)
        replies = len(B.seen)
        time.sleep(11)  # the limiter reports its count when its 10 s window ends
        log1 = sv.log_size()
        text = sv.log_path.read_bytes()[log0:].decode(errors="replace")
        summary_lines = re.findall(r"(\d+) more like that", text)
        growth = log1 - log0
        ok = growth <= 100 * 1024 and bool(summary_lines)
        report(
            "5c 100k malformed frames: log growth",
            ok,
            f"sent {sent} malformed frames in {t_send:.1f} s, got {replies} error replies; "
            f"coordinator log +{growth / 1024:.1f} KiB ({growth / max(1, sent):.2f} B/frame; "
            f"bound used 100 KiB); rate-limit summary lines: {len(summary_lines)} "
            f"(suppressed counts {summary_lines[:5]})",
        )
        # the same limiter counts lines, not bytes: a frame whose unknown field name is long
        log0 = sv.log_size()
        big = _amplify_frame(2_000_000)
        for _ in range(10):
            B.send_raw(big)
        wait_idle(coord, 60)
        B.drain(1.0)
        g2 = sv.log_size() - log0
        report(
            "5c+ long-field-name frames: log bytes per line unbounded",
            g2 <= 100 * 1024,
            f"10 bad frames of {len(big) / MB:.1f} MiB (unknown field with a 2,000,000-char name) "
            "-> "
            f"coordinator log +{g2 / MB:.1f} MiB; at 20 logged lines per 10 s window and 8 MiB "
            f"frames that is ~{20 * 8 / 10:.0f} MiB/s of log; bound used 100 KiB",
        )
        # valid frames that are refused: connect as engine with a wrong secret, from one peer
        log0 = sv.log_size()
        F = Peer(ctx, sv.address)
        m = 20_000
        t = time.monotonic()
        wrong = pack(hello("engine", "rt-flood", rnd.token_hex(32)))
        for i in range(m):
            F.send_raw(wrong)
            if i % 500 == 0:
                F.drain(0)
        wait_idle(coord, 60)
        F.drain(1.0)
        g3 = sv.log_size() - log0
        lines = count_lines(sv, r"without its secret")
        report(
            "5c++ refused-connect flood: log growth",
            g3 <= 100 * 1024,
            f"{m} engine connects with a wrong secret from one peer in "
            f"{time.monotonic() - t:.1f} s -> coordinator log +{g3 / 1024:.0f} KiB "
            f"({g3 / m:.0f} B/frame, 'without its secret' lines "
            f"in log: {lines}; not rate-limited if ~{m}); bound used 100 KiB",
        )
        B.close()
        F.close()
    finally:
        ctx.destroy(0)


def check_5e(sv: Serve, n: int = 200_000, pad: int = 2000, cap_mb: int = 1500) -> None:
    """A peer that reads every reply but sends faster than the coordinator's loop decodes:
    the coordinator's receive queue has no high-water mark (RCVHWM 0)."""
    coord = sv.coordinator_pid()
    ctx = zmq.Context()
    try:
        wait_idle(coord, 10)
        r0 = rss(coord)
        sampler = RssSampler(coord, 0.05)
        F = Peer(ctx, sv.address, sndhwm=1000, sndtimeo=20000)
        frame = pack({"kind": "heartbeat", "pad": "p" * pad})
        t = time.monotonic()
        sent = 0
        for i in range(n):
            if not F.send_raw(frame, block=True):
                break
            sent += 1
            if i % 1000 == 0:
                F.drain(0)
                if rss(coord) - r0 > cap_mb * MB or time.monotonic() - t > 60:
                    break
        t_send = time.monotonic() - t
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(F.seen) < sent:
            F.drain(0.5)
        t_done = time.monotonic() - t
        peak = sampler.stop()
        F.close()
        time.sleep(2)
        growth = (peak - r0) / MB
        report(
            "5e inbound flood from a peer that reads its replies",
            growth <= 100,
            f"{sent} frames of {len(frame)} B ({sent * len(frame) / MB:.0f} MiB) sent in "
            f"{t_send:.1f} s; all {len(F.seen)} error replies read by {t_done:.1f} s; "
            f"coordinator RSS {r0 // MB} -> "
            f"peak {peak // MB} MiB (growth {growth:.0f} MiB: the backlog the loop had not yet "
            f"decoded); {rss(coord) // MB} MiB 2 s later; bound used 100 MiB",
        )
    finally:
        ctx.destroy(0)


# ---- check 3: nothing outlives serve --------------------------------------------------------


def check_3(sv: Serve) -> None:
    TRACK.scan(sv.proc.pid)
    tree = [p.pid for p in sv.tree()]
    names = {}
    for pid in tree:
        with contextlib.suppress(psutil.Error):
            names[pid] = " ".join(psutil.Process(pid).cmdline()[2:3])
    socks = listening(sv)
    ports = sorted({s[3] for s in socks})
    nl = non_loopback(socks)
    report(
        "3a listening sockets of the serve tree",
        not nl,
        f"{len(socks)} listening/bound sockets over {len(tree)} processes: "
        f"{[(pid, names.get(pid), ip, port) for pid, _, ip, port in socks]}; "
        f"non-loopback: {nl or 'none'}",
    )
    t = time.monotonic()
    os.kill(sv.proc.pid, signal.SIGKILL)
    sv.proc.wait(5)
    alive, still_listening = tree, ports
    gone_at = None
    while time.monotonic() - t < 10:
        alive = TRACK.alive(tree)
        with contextlib.suppress(psutil.Error):
            still_listening = sorted(
                {
                    c.laddr.port
                    for c in psutil.net_connections(kind="tcp")
                    if c.status == psutil.CONN_LISTEN and c.laddr.port in ports
                }
            )
        if not alive and not still_listening:
            gone_at = time.monotonic() - t
            break
        time.sleep(0.1)
    zombies = []
    for pid in tree:
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                zombies.append(pid)
    report(
        "3b SIGKILL serve: nothing outlives it",
        gone_at is not None,
        f"tree {len(tree)} processes {[(p, names.get(p)) for p in tree]}; after SIGKILL of serve "
        f"{sv.proc.pid}: "
        + (
            f"all gone and ports {ports} closed after {gone_at:.2f} s"
            if gone_at is not None
            else f"after 10 s still alive {[(p, names.get(p)) for p in alive]}, "
            f"still listening {still_listening}"
        )
        + (f"; zombies (dead, unreaped) {zombies}" if zombies else ""),
    )


# ---- check 4: CURVE from the CLI --------------------------------------------------------------


def check_4(workdir: Path) -> None:
    keys = Path(tempfile.mkdtemp(prefix="curve-", dir=workdir))
    (keys / "server").mkdir()
    (keys / "good").mkdir()
    (keys / "bad").mkdir()
    (keys / "authorized").mkdir()
    (keys / "fake-server").mkdir()
    s_pub, s_sec = zmq.auth.create_certificates(str(keys / "server"), "server")
    g_pub, g_sec = zmq.auth.create_certificates(str(keys / "good"), "good")
    _b_pub, b_sec = zmq.auth.create_certificates(str(keys / "bad"), "bad")
    f_pub, _ = zmq.auth.create_certificates(str(keys / "fake-server"), "fake")
    (keys / "authorized" / "good.key").write_bytes(Path(g_pub).read_bytes())
    server_public, _ = zmq.auth.load_certificate(s_pub)
    good = zmq.auth.load_certificate(g_sec)
    badk = zmq.auth.load_certificate(b_sec)
    fake_server_public, _ = zmq.auth.load_certificate(f_pub)
    sv = Serve(
        "curve",
        workdir,
        ["--curve-secret-cert", s_sec, "--curve-authorized-dir", str(keys / "authorized")],
    )
    try:
        addr = sv.wait_address()
        good_curve = (server_public, good[0], good[1])
        st = wait_replicas(addr, curve=good_curve, timeout_s=min(300, left() - 60))
        say(f"curve serve at {addr}; replicas {strip(st)}")
        socks = listening(sv)
        ctx = zmq.Context()
        results = {}
        try:
            cases = {
                "plaintext": None,
                "wrong server key": (fake_server_public, good[0], good[1]),
                "unauthorized client key": (server_public, badk[0], badk[1]),
            }
            peers = {}
            for label, curve in cases.items():
                p = Peer(ctx, addr, curve=curve)
                p.send(hello("client", "rt-" + label.replace(" ", "-")))
                p.send({"kind": "status"})
                p.send(submit("c1", "Hello, world", 4))
                peers[label] = p
            for label, p in peers.items():
                got = p.drain(8.0)
                results[label] = [(m.get("kind"), m.get("code")) for m in got]
            G = Peer(ctx, addr, curve=good_curve)
            ga = do_connect(G, "client", "rt-good")
            G.send(submit("g1", "Hello, world", 4))
            gr = wait_answer(G, "g1", 120)
            G.send({"kind": "pause"})
            gp = [(m.get("kind"), m.get("code")) for m in G.drain(2.0)]
            G.send({"kind": "bye"})
        finally:
            ctx.destroy(0)
        got_anything = {k: v for k, v in results.items() if v}
        ok = (
            not got_anything
            and bool(ga and ga.get("kind") == "ack")
            and bool(gr and gr.get("kind") == "reply")
        )
        report(
            "4 CURVE required from the CLI",
            ok,
            f"answers within 8 s: {results}; authorized client: connect={(ga or {}).get('kind')}, "
            f"request -> {(gr or {}).get('kind')} from {(gr or {}).get('replica')}; authorized "
            f"plain client's pause -> {gp}; non-loopback sockets: {non_loopback(socks) or 'none'}",
        )
    finally:
        tree = [p.pid for p in sv.tree()]
        sv.stop()
        time.sleep(1)
        alive = TRACK.alive(tree)
        report(
            "4-cleanup SIGTERM serve (CURVE): nothing left",
            not alive,
            f"serve exit code {sv.proc.returncode}; tree {tree}; "
            f"alive after stop: {alive or 'none'}",
        )


# ---- main -------------------------------------------------------------------------------------


def summary() -> None:
    print("\n===== SUMMARY =====", flush=True)
    for check, status, _detail in RESULTS:
        print(f"{status:5} {check}", flush=True)
    fails = [r for r in RESULTS if r[1] == "FAIL"]
    print(
        f"{len(fails)} FAIL, {len([r for r in RESULTS if r[1] == 'PASS'])} PASS, "
        f"elapsed {time.monotonic() - T0:.0f} s",
        flush=True,
    )


def start_plain(workdir: Path) -> Serve:
    sv = Serve("plain", workdir)
    sv.wait_address()
    st = wait_replicas(sv.address, timeout_s=min(300, left() - 60))
    if not st:
        raise RuntimeError(f"no replica registered; serve out: {sv.out_path.read_text()[-2000:]}")
    say(f"serve[plain] at {sv.address}; coordinator pid {sv.coordinator_pid()}; status {strip(st)}")
    return sv


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--only", default="", help="comma list of checks: 1a,1b,1c,1d,2,5a,5a+,5a++,5b,5c,5e,3,4"
    )
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))

    def want(name: str) -> bool:
        return not only or name in only or name == "baseline"

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="rt-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"redteam_serve: python {PY}; workdir {workdir}", flush=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    threading.Thread(target=_scanner, daemon=True).start()
    threading.Thread(target=_watchdog, daemon=True).start()

    sv: Serve | None = None

    def step(name: str, fn, *a, fresh: bool = False) -> None:
        nonlocal sv
        if not want(name):
            return
        if left() < 120:
            report(name, "SKIP", "time budget nearly spent")
            return
        try:
            if fresh and sv is not None and sv.proc.poll() is None:
                tree = [p.pid for p in sv.tree()]
                sv.stop()
                alive = TRACK.alive(tree)
                if alive:
                    report(
                        f"graceful stop before {name}",
                        False,
                        f"SIGTERM to serve left {alive} alive",
                    )
                sv = None
            if sv is None or sv.proc.poll() is not None:
                sv = start_plain(workdir)
            fn(sv, *a)
        except Exception as e:
            report(name, False, f"the check itself raised {type(e).__name__}: {e}")
            traceback.print_exc()
        if sv is not None and name not in ("1b", "1c", "2", "5b") and sv.proc.poll() is None:
            check_health(sv, name)

    try:
        tpl: dict = {}

        def _tpl(s: Serve) -> None:
            tpl.update(template_record(s))
            say(f"captured a genuine record template with keys {sorted(tpl)}")

        if any(want(x) for x in ("1a", "1c")):
            step("baseline", _tpl)
        step("1d", check_1d)
        step("1a", check_1a, tpl)
        step("1b", check_1b)
        step("1c", check_1c, tpl)
        # a fresh serve for each check that measures memory, so that no earlier flood's
        # freed-but-kept heap hides growth
        step("2", check_2, fresh=True)
        step("5a", check_5a, fresh=True)
        step("5a++", check_5a_queue, fresh=True)
        step("5b", check_5b, fresh=True)
        if sv is not None and sv.proc.poll() is None and T_5B_END:
            with contextlib.suppress(Exception):
                wait_s = 70 - (time.monotonic() - T_5B_END[0])
                if wait_s > 0 and left() > wait_s + 200:
                    say(f"waiting {wait_s:.0f} s for the coordinator's 60 s client timeout (5b)")
                    time.sleep(wait_s)
                n = count_lines(sv, r"sent nothing for .* forgotten")
                report(
                    "5b-info vanished clients logged",
                    "INFO",
                    f"{n} 'client ... forgotten' lines in the coordinator log (one per vanished "
                    f"client, not rate-limited); log size now {sv.log_size() / 1024:.0f} KiB; "
                    f"coordinator RSS now {rss(sv.coordinator_pid()) // MB} MiB",
                )
        step("5c", check_5c, fresh=True)
        step("5e", check_5e, fresh=True)
        step("5a+", check_5a_amplified, fresh=True)
        if want("3"):
            step("3", check_3)
        if want("4") and left() > 200:
            try:
                check_4(workdir)
            except Exception as e:
                report("4", False, f"the check itself raised {type(e).__name__}: {e}")
                traceback.print_exc()
    finally:
        summary()
        cleanup()
        print(f"logs and run dirs kept under {workdir}", flush=True)
    return 1 if any(r[1] == "FAIL" for r in RESULTS) else 0


if __name__ == "__main__":
    sys.exit(main())
