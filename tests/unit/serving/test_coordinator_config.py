import pytest
import zmq

from logitsmatch.serving.coordinator import Coordinator, write_address_file
from logitsmatch.serving.coordinator_config import CoordinatorConfig


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"port": 70000}, r"port must be in \[0, 65535\], got 70000"),
        ({"heartbeat_s": 0}, "heartbeat_s must be > 0, got 0"),
        ({"heartbeat_s": 2.0, "engine_timeout_s": 1.0}, r"engine_timeout_s \(1.0\) must exceed"),
        ({"policy": "fastest"}, "policy 'fastest' is unknown"),
    ],
)
def test_bad_config_names_the_field(kw, match):
    with pytest.raises(ValueError, match=match):
        CoordinatorConfig(**kw)


def test_port_zero_reports_the_chosen_port_and_close_frees_it():
    coordinator = Coordinator()
    assert coordinator.address == f"tcp://127.0.0.1:{coordinator.port}" and coordinator.port > 0
    coordinator.close()
    again = Coordinator(CoordinatorConfig(port=coordinator.port))  # the port is free again
    again.close()


def test_a_port_in_use_is_an_error_and_leaks_nothing():
    first = Coordinator()
    with pytest.raises(zmq.ZMQError, match="Address already in use"):
        Coordinator(CoordinatorConfig(port=first.port))
    first.close()


def test_address_file_is_replaced_whole(tmp_path):
    path = tmp_path / "addr"
    write_address_file(path, "tcp://127.0.0.1:1")
    write_address_file(path, "tcp://127.0.0.1:2")
    assert path.read_text() == "tcp://127.0.0.1:2\n"
    assert [p.name for p in tmp_path.iterdir()] == ["addr"]
