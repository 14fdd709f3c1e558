import numpy as np
import pytest

from replay.variable_server import NO_VERSION, VariableServer
from tests.replay.ray_support import ensure_local_ray


def make_in_process():
    return VariableServer()


def make_ray():
    ensure_local_ray()
    from replay.ray_nodes import create_variable_server

    return create_variable_server()


@pytest.fixture(params=[make_in_process, make_ray], ids=["threads", "ray"])
def server(request):
    return request.param()


def test_versions_advance_and_get_returns_latest(server):
    assert server.get_version() == NO_VERSION
    server.publish(1, {"w": np.ones(2)}, {"mean": np.zeros(2)})
    server.publish(2, {"w": np.full(2, 2.0)}, {"mean": np.ones(2)})
    assert server.get_version() == 2
    latest = server.get()
    assert latest.version == 2
    np.testing.assert_array_equal(latest.params["w"], np.full(2, 2.0))
    np.testing.assert_array_equal(latest.norm_state["mean"], np.ones(2))


def test_stale_version_is_rejected(server):
    server.publish(3, {}, {})
    with pytest.raises(Exception, match="not newer"):
        server.publish(3, {}, {})


def test_wait_first_times_out_then_returns(server):
    with pytest.raises(TimeoutError):
        server.wait_first(timeout=0.1)
    server.publish(0, {"w": 1}, None)
    assert server.wait_first(timeout=1).params == {"w": 1}
