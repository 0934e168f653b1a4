"""The loop (launch/engine/loop.py): a resumed run ends where an uninterrupted one does, and DDP on CPU equals one process at the same effective batch."""
import json
import os

import pytest
import torch

from launch.engine.config import resolve
from launch.engine.loop import Interrupted, run

from tests.tiny_configs import write_config
from tests.run_helpers import _weights  # noqa: F401,F811


def _records(run_dir, name, drop=("epoch_seconds",)):
    return [{k: v for k, v in json.loads(line).items() if k not in drop}
            for line in open(os.path.join(run_dir, name))]


def _assert_same_weights(a, b, atol=0.0, rtol=0.0):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=rtol, atol=atol, msg=key)


@pytest.fixture(scope="module")
def resumed_runs(tmp_path_factory):
    """The same run straight through, and interrupted mid second epoch then resumed."""
    tmp_path = tmp_path_factory.mktemp("resume")
    cfg = resolve(write_config(tmp_path), ["train.checkpoint_every=1", "tome.r=1",
                                           "eval.throughput=false"])
    from launch.engine.tasks import get_task
    get_task("image").prepare(cfg)
    straight = str(tmp_path / "straight")
    run(cfg, straight)
    broken = str(tmp_path / "broken")
    with pytest.raises(Interrupted):
        # 16 training images at batch 4: 4 steps per epoch, so step 6 is mid second epoch (the
        # checkpoint of step 2 of epoch 2 is the one resumed from)
        run(cfg, broken, stop_after_steps=6)
    run(cfg, broken)
    return straight, broken


def test_interrupted_run_resumes_to_the_same_result(resumed_runs):
    straight, broken = resumed_runs
    _assert_same_weights(_weights(straight), _weights(broken))
    assert _records(straight, "results.jsonl") == _records(broken, "results.jsonl")
    # every epoch record except the wall-clock time and the resumed epoch's mean loss (below)
    la, lb = _records(straight, "log.jsonl"), _records(broken, "log.jsonl")
    assert [e["epoch"] for e in la] == [e["epoch"] for e in lb] == [1, 2]
    assert la[0] == lb[0]
    assert ({k: v for k, v in la[1].items() if k != "train_loss"}
            == {k: v for k, v in lb[1].items() if k != "train_loss"})


def test_resumed_epoch_logs_the_whole_epochs_train_loss(resumed_runs):
    straight, broken = resumed_runs
    assert _records(straight, "log.jsonl") == _records(broken, "log.jsonl")


def _fixed_train_transform(img_size, *args, mean, std, **kwargs):
    """The evaluation transform in place of the random training one: with nothing random in the
    samples, the data of a step no longer depends on which process builds it."""
    from image.transforms import eval_transform
    return eval_transform("demo", img_size, mean=mean, std=std)


def _ddp_worker(rank, world, port, config, overrides, run_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import image.transforms
    image.transforms.train_transform = _fixed_train_transform
    torch.set_num_threads(1)
    run(resolve(config, overrides), run_dir)


def test_two_processes_at_batch_4_end_with_the_weights_of_one_at_batch_8(tmp_path, monkeypatch):
    """DDP's gradient average over 2 x 4 samples is the gradient of the 8-sample batch: same data
    order (the sampler shards each global batch), same steps, so the same final weights."""
    import socket

    import torch.multiprocessing as mp
    import image.transforms
    config = write_config(tmp_path, name="ddp_weights")
    common = ["train.epochs=2", "tome.r=1", "tome.eval_r=[1]", "eval.throughput=false"]
    from launch.engine.tasks import get_task
    get_task("image").prepare(resolve(config, common))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    two = str(tmp_path / "two")
    mp.start_processes(_ddp_worker, args=(2, port, config, common + ["train.batch_size=4"], two),
                       nprocs=2, join=True, start_method="spawn")
    monkeypatch.setattr(image.transforms, "train_transform", _fixed_train_transform)
    one = str(tmp_path / "one")
    run(resolve(config, common + ["train.batch_size=8"]), one)
    assert "x 2:" in open(os.path.join(two, "log.txt")).read()
    _assert_same_weights(_weights(one), _weights(two), atol=1e-5, rtol=1e-4)
    cfg = resolve(config, common)
    torch.manual_seed(cfg.train.seed)  # the engine's initial weights: training moved them far
    start = get_task("image").build_model(cfg).state_dict()
    assert max((start[k] - v).abs().max().item() for k, v in _weights(one).items()) > 1e-3
    assert _records(one, "results.jsonl", drop=("batch",)) == _records(two, "results.jsonl",
                                                                       drop=("batch",))
