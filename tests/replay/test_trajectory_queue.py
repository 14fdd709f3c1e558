import threading
import time

import numpy as np
import pytest

from replay.trajectory_queue import QueueClosedError, QueueTimeoutError, TrajectoryQueue
from tests.replay.ray_support import ensure_local_ray


def make_in_process(capacity, min_fill):
    return TrajectoryQueue(capacity, min_fill)


def make_ray(capacity, min_fill):
    ensure_local_ray()
    from replay.ray_nodes import create_queue

    return create_queue(capacity, min_fill)


@pytest.fixture(params=[make_in_process, make_ray], ids=["threads", "ray"])
def make_queue(request):
    return request.param


def test_fifo_order_and_items_removed(make_queue):
    queue = make_queue(4, 1)
    for i in range(3):
        queue.put({"i": i, "x": np.full(3, i)}, timeout=5)
    first_two = queue.take(2, timeout=5)
    assert [item["i"] for item in first_two] == [0, 1]
    np.testing.assert_array_equal(first_two[1]["x"], np.full(3, 1))
    assert queue.size() == 1
    assert [item["i"] for item in queue.take(1, timeout=5)] == [2]
    stats = queue.stats()
    assert (stats.inserted, stats.taken, stats.size) == (3, 3, 0)


def test_put_blocks_when_full_until_take(make_queue):
    queue = make_queue(2, 1)
    queue.put(0, timeout=5)
    queue.put(1, timeout=5)
    with pytest.raises(QueueTimeoutError, match="full"):
        queue.put(2, timeout=0.2)
    finished = threading.Event()

    def blocked_put():
        queue.put(3, timeout=10)
        finished.set()

    thread = threading.Thread(target=blocked_put)
    thread.start()
    time.sleep(0.3)
    assert not finished.is_set(), "put must block while the queue is full"
    assert queue.take(1, timeout=5) == [0]
    thread.join(timeout=10)
    assert finished.is_set()
    assert queue.take(2, timeout=5) == [1, 3]


def test_min_fill_holds_back_the_first_take(make_queue):
    queue = make_queue(4, 3)
    queue.put("a", timeout=5)
    queue.put("b", timeout=5)
    with pytest.raises(QueueTimeoutError, match="minimum fill"):
        queue.take(1, timeout=0.2)
    queue.put("c", timeout=5)
    assert queue.take(1, timeout=5) == ["a"]
    # Once started, the queue hands out items below the minimum fill.
    assert queue.take(1, timeout=5) == ["b"]


def test_take_timeout_names_the_problem(make_queue):
    queue = make_queue(4, 1)
    queue.put(1, timeout=5)
    with pytest.raises(QueueTimeoutError, match="for 2 trajectories"):
        queue.take(2, timeout=0.2)


def test_close_wakes_waiters(make_queue):
    queue = make_queue(1, 1)
    errors = []

    def blocked_take():
        try:
            queue.take(1, timeout=10)
        except QueueClosedError as error:
            errors.append(error)

    thread = threading.Thread(target=blocked_take)
    thread.start()
    time.sleep(0.2)
    queue.close()
    thread.join(timeout=10)
    assert len(errors) == 1
    with pytest.raises(QueueClosedError):
        queue.put(1, timeout=1)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="capacity"):
        TrajectoryQueue(0)
    with pytest.raises(ValueError, match="min_fill"):
        TrajectoryQueue(2, 3)
    with pytest.raises(ValueError, match="take"):
        TrajectoryQueue(2).take(3)


def test_ray_client_travels_by_name_and_works_in_another_process():
    ensure_local_ray()
    import pickle

    import ray

    from replay.ray_nodes import create_queue

    queue = create_queue(2, 1)
    assert pickle.loads(pickle.dumps(queue))._handle is None  # no actor handle inside

    @ray.remote(num_cpus=0)
    def produce(client):
        client.put({"i": 7}, timeout=30)
        return client.size()

    assert ray.get(produce.remote(queue), timeout=120) == 1
    assert queue.take(1, timeout=30)[0]["i"] == 7
