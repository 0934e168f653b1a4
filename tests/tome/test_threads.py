"""tome.threads.calling_thread: the merge bookkeeping runs on the calling thread on the CPU, with the
thread settings restored afterwards and other threads untouched; merging gives the same tokens."""
import threading

import pytest
import torch

import tome.threads as threads
from tome.merge import merge_step


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _runtime_found() -> bool:
    return threads._libs()[0] is not None


def test_one_thread_inside_and_the_count_restored_after(two_threads):
    if not _runtime_found():
        pytest.skip("no OpenMP runtime found in this process: calling_thread is a no-op")
    with threads.calling_thread(torch.zeros(1)):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError):
        with threads.calling_thread(torch.zeros(1)):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == 2


def test_other_threads_keep_their_thread_count(two_threads):
    if not _runtime_found():
        pytest.skip("no OpenMP runtime found in this process: calling_thread is a no-op")
    inside, seen = threading.Event(), []
    done = threading.Event()

    def other():
        torch.set_num_threads(2)
        inside.wait(timeout=30)
        seen.append(torch.get_num_threads())
        done.set()

    worker = threading.Thread(target=other)
    worker.start()
    with threads.calling_thread(torch.zeros(1)):
        inside.set()
        done.wait(timeout=30)
    worker.join(timeout=30)
    assert seen == [2]


def test_no_change_off_the_cpu_or_when_disabled(two_threads, monkeypatch):
    with threads.calling_thread(torch.zeros(1, device="meta")):
        assert torch.get_num_threads() == 2
    monkeypatch.setattr(threads, "ENABLED", False)
    with threads.calling_thread(torch.zeros(1)):
        assert torch.get_num_threads() == 2


def test_merge_on_the_calling_thread_equals_merge_on_all_threads(two_threads, monkeypatch):
    # Large enough that ATen splits the row gathers and reductions over both threads.
    torch.manual_seed(0)
    x, metric = torch.randn(3, 401, 256), torch.randn(3, 401, 64)
    size = torch.randint(1, 6, (3, 401, 1)).float()
    serial = merge_step(x, metric, 40, size, None, None, protected=1)
    monkeypatch.setattr(threads, "ENABLED", False)
    parallel = merge_step(x, metric, 40, size, None, None, protected=1)
    torch.testing.assert_close(serial[0], parallel[0], rtol=1e-6, atol=1e-6)
    assert torch.equal(serial[1], parallel[1])


@pytest.fixture
def load(monkeypatch):
    """Set the load average the module reads (fresh reading, no cache)."""
    monkeypatch.setattr(threads, "LOAD_CHECK_S", 0.0)

    def set_load(value):
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (value, value, value))
    return set_load


def test_a_large_op_gets_the_team_back_inside_a_calling_thread_block(two_threads, load):
    if not _runtime_found():
        pytest.skip("no OpenMP runtime found in this process: calling_thread is a no-op")
    load(0.0)
    with threads.calling_thread(torch.zeros(1)):
        with threads.whole_team(threads.TEAM_ELEMENTS):
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 1  # back on the calling thread after it
        with threads.whole_team(threads.TEAM_ELEMENTS - 1):
            assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with threads.whole_team(threads.TEAM_ELEMENTS):  # outside a block: nothing to give back
        assert torch.get_num_threads() == 2
    with threads.calling_thread(torch.zeros(1), elements=threads.TEAM_ELEMENTS):
        assert torch.get_num_threads() == 2  # a large single op keeps the team
    with threads.calling_thread(torch.zeros(1), elements=10):
        assert torch.get_num_threads() == 1


def test_on_an_oversubscribed_machine_even_large_ops_stay_on_the_calling_thread(two_threads, load):
    if not _runtime_found():
        pytest.skip("no OpenMP runtime found in this process: calling_thread is a no-op")
    cpus = threads.os.cpu_count()
    load(cpus + 1.0)  # more runnable threads than CPUs
    assert threads.oversubscribed()
    with threads.calling_thread(torch.zeros(1)):
        with threads.whole_team(threads.TEAM_ELEMENTS * 4):
            assert torch.get_num_threads() == 1
    with threads.calling_thread(torch.zeros(1), elements=threads.TEAM_ELEMENTS * 4):
        assert torch.get_num_threads() == 1
    load(cpus + 0.4)  # a full machine (this process's own threads count), not an oversubscribed one
    assert not threads.oversubscribed()


def test_a_missing_load_average_counts_as_not_oversubscribed(monkeypatch):
    monkeypatch.setattr(threads, "LOAD_CHECK_S", 0.0)

    def no_load():
        raise OSError("no load average")
    monkeypatch.setattr(threads.os, "getloadavg", no_load)
    assert not threads.oversubscribed()


@pytest.mark.parametrize("busy", [False, True])
def test_video_sized_merge_is_the_same_whichever_threads_run_it(two_threads, load, monkeypatch, busy):
    # A clip's 784 x 784 similarities and 1.5 M-element kept tokens cross TEAM_ELEMENTS.
    torch.manual_seed(0)
    x, metric = torch.randn(2, 1569, 768), torch.randn(2, 1569, 64)
    size = torch.randint(1, 6, (2, 1569, 1)).float()
    load(threads.os.cpu_count() + 1.0 if busy else 0.0)
    mixed = merge_step(x, metric, 100, size, None, None, protected=1)
    monkeypatch.setattr(threads, "ENABLED", False)
    team = merge_step(x, metric, 100, size, None, None, protected=1)
    torch.testing.assert_close(mixed[0], team[0], rtol=1e-6, atol=1e-6)
    assert torch.equal(mixed[1], team[1])
