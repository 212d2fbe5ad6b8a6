"""Fixtures that start the serving layer for real, and always take it down again.

``threads``: coordinator and workers as threads of the test process (real sockets on
127.0.0.1; starts in milliseconds). ``services``: coordinator and workers as child
processes (what crashes and kills need). Both reap everything at teardown, even on failure.
"""

from __future__ import annotations

import threading
from typing import Any

import psutil
import pytest

from logitsmatch.serving.coordinator import Coordinator
from logitsmatch.serving.coordinator_config import CoordinatorConfig
from logitsmatch.serving.launch import Service, start_coordinator, start_worker
from logitsmatch.serving.null_engine import NullEngine
from logitsmatch.serving.roles import ServiceSecrets
from logitsmatch.serving.worker import run_worker


class Threads:
    def __init__(self) -> None:
        self.running: list[tuple[threading.Event, threading.Thread]] = []
        self.secrets: dict[str, ServiceSecrets] = {}  # coordinator address -> its secrets

    def _start(self, target: Any) -> threading.Event:
        stop = threading.Event()
        thread = threading.Thread(target=target, args=(stop,), daemon=True)
        thread.start()
        self.running.append((stop, thread))
        return stop

    def coordinator(self, **config: Any) -> Coordinator:
        coordinator = Coordinator(CoordinatorConfig(**config))
        self.secrets[coordinator.address] = coordinator.config.secrets
        self._start(lambda stop: coordinator.serve(should_stop=stop.is_set))
        return coordinator

    def operator(self, address: str) -> str:
        """The operator secret of the coordinator at ``address`` (for pause, stop, shutdown)."""
        return self.secrets[address].operator

    def worker(self, address: str, name: str, engine: Any = None, **kw: Any) -> dict[str, Any]:
        """Returns a dict that gets "exit" (the reason) or "error" when the worker ends; it
        shows the coordinator's engine secret unless ``secret`` says otherwise."""
        result: dict[str, Any] = {}
        engine = engine or NullEngine()
        known = self.secrets.get(address)
        kw.setdefault("secret", known.engine if known else None)

        def run(stop: threading.Event) -> None:
            try:
                result["exit"] = run_worker(engine, address, name, should_stop=stop.is_set, **kw)
            except BaseException as e:
                result["error"] = e

        self._start(run)
        return result

    def close(self) -> None:
        for stop, _ in reversed(self.running):
            stop.set()
        for _, thread in self.running:
            thread.join(20)
        assert not any(t.is_alive() for _, t in self.running), "a serving thread did not exit"


@pytest.fixture
def threads():
    t = Threads()
    yield t
    t.close()


class Services:
    def __init__(self, log_dir: Any) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []

    def coordinator(self, *args: str) -> Service:
        service = start_coordinator(*args, log_dir=self.log_dir)
        self.started.append(service)
        return service

    def secrets(self, address: str) -> ServiceSecrets:
        (found,) = [s.secrets for s in self.started if s.address == address]
        return found

    def worker(self, address: str, name: str, *args: str) -> Service:
        secrets = self.secrets(address)
        service = start_worker(address, name, *args, secrets=secrets, log_dir=self.log_dir)
        self.started.append(service)
        return service


@pytest.fixture
def services(tmp_path):
    s = Services(tmp_path)
    yield s
    for service in reversed(s.started):
        service.stop(5)


class Leftovers:
    """What a clean shutdown must not leave: listening ports, live child processes."""

    @staticmethod
    def listening(port: int) -> bool:
        return any(
            c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
            for c in psutil.net_connections("tcp")
        )

    @staticmethod
    def children() -> list[psutil.Process]:
        return [
            p
            for p in psutil.Process().children(recursive=True)
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        ]


@pytest.fixture
def leftovers():
    return Leftovers()
