"""Configs, the launcher in debug/local modes, DDP on CPU, resume, and the comparison report."""
import json
import os

import pytest
import torch
import yaml

from launch import compare, submit
from launch.runs import report as report_lib
from launch.engine.config import resolve
from launch.engine.loop import Interrupted, run
from launch.engine.errors import ConfigError
from launch.runs.plan import expand

from tests.tiny_configs import write_config

# ------------------------------------------------------------------ config errors

@pytest.mark.parametrize("override, match", [
    ("train.epoch=3", "unknown config key train.epoch"),
    ("bogus=1", "unknown config key 'bogus'"),
    ("train.epochs=three", "train.epochs must be an integer, got 'three'"),
    ("train.amp=fp8", "train.amp must be none, bf16 or fp16, got 'fp8'"),
    ("tome.r=-2", "tome: r must be a non-negative integer, got -2"),
    ("tome.inflection=3.0", r"inflection must be in \[-1, 1\]"),
    ("tome.mode=median", "mode must be one of"),
    ("launch.cluster=kubernetes", "launch.cluster must be one of"),
    ("task=speech", "task must be one of image, video, audio, got 'speech'"),
    ("paper=nope", "paper must be one of"),
    ("train.batch_size=0", "train.batch_size must be positive"),
    ("epochs", "must look like key=value"),
])
def test_config_errors_are_one_line(tmp_path, override, match):
    path = write_config(tmp_path)
    with pytest.raises(ConfigError, match=match) as err:
        resolve(path, [override])
    assert "\n" not in str(err.value)


def test_missing_paths_fail_before_submission(tmp_path, capsys):
    path = write_config(tmp_path)
    code = submit.main([path, "data.demo=false", f"data.root={tmp_path}/nowhere", "--cluster", "debug"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs")
    code = submit.main([path, f"model.checkpoint={tmp_path}/missing.pth", "--cluster", "debug"])
    assert code == 2 and "model.checkpoint" in capsys.readouterr().err


def test_overrides_apply_on_top_of_the_inherited_base_config(tmp_path):
    cfg = resolve(write_config(tmp_path), ["tome.r=3", "train.blr=2e-3"])
    assert cfg.tome.r == 3 and cfg.train.blr == 2e-3 and cfg.data.family == "demo"
    assert cfg.model.name == "demo_vit_mae"  # from the base file


def test_sweep_and_stages_expand_to_named_runs(tmp_path):
    path = write_config(tmp_path, """\
        stages:
          - {name: a, set: {tome.r: 0}, sweep: {}}
          - {name: b, set: {model.checkpoint: "${stage:a}/checkpoint.pth"}}
        sweep:
          tome.r: [1, 2]
        """)
    from launch.engine.config import load_yaml
    raw = load_yaml(path)
    plan = expand(raw)
    assert [r.run_dir for r in plan[0]] == [f"{tmp_path}/runs/tiny/a"]
    assert [os.path.basename(r.run_dir) for r in plan[1]] == ["r1", "r2"]
    assert [r.cfg.tome.r for r in plan[1]] == [1, 2]
    assert plan[1][0].cfg.model.checkpoint == f"{tmp_path}/runs/tiny/a/checkpoint.pth"
    # a stage swept into several runs cannot be referenced
    raw["stages"][0]["sweep"] = None
    with pytest.raises(ConfigError, match="not an earlier single-run stage"):
        expand(raw)


# ------------------------------------------------------------------ running

def test_debug_mode_logs_the_accuracy_of_a_direct_loop_at_each_r_and_writes_the_report(tmp_path):
    path = write_config(tmp_path)
    submit.submit(path, ["tome.r=1"], cluster="debug")
    run_dir = tmp_path / "runs" / "tiny"
    results = [json.loads(l) for l in open(run_dir / "results.jsonl")]
    assert [r["r"] for r in results] == [0, 1]
    assert results[1]["tokens_out"] < results[0]["tokens_out"]
    # the engine's accuracy against a plain loop over the validation images with the saved weights
    assert [r["acc1"] for r in results] == [_direct_accuracy(run_dir, r) for r in (0, 1)]
    assert all(r["throughput"] > 0 for r in results)
    epochs = [json.loads(l) for l in open(run_dir / "log.jsonl")]
    assert [e["epoch"] for e in epochs] == [1, 2] and "eval_acc1" in epochs[-1]
    assert os.listdir(run_dir / "tb")
    saved = yaml.safe_load(open(run_dir / "config.yaml"))
    assert saved["tome"]["r"] == 1
    assert os.path.isfile(tmp_path / "runs" / "tiny" / "compare.png")
    from launch import vis
    picture = vis.draw(str(run_dir), 1, 0, str(tmp_path / "groups.png"))
    assert os.path.getsize(picture) > 100


def test_local_executor_streams_the_log_and_marks_the_run_done(tmp_path, capsys):
    path = write_config(tmp_path, name="local")
    submit.submit(path, ["train.epochs=1", "tome.eval_r=[0]"], cluster="local")
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "eval r=0" in out
    assert os.path.isfile(tmp_path / "runs" / "local" / "DONE")


def test_two_process_ddp_on_cpu_splits_the_steps_between_the_processes(tmp_path):
    path = write_config(tmp_path, name="ddp")
    submit.submit(path, ["train.epochs=1", "tome.eval_r=[0]", "launch.tasks_per_node=2"],
                  cluster="local", compare=False)
    run_dir = tmp_path / "runs" / "ddp"
    log = open(run_dir / "log.txt").read()
    assert "x 2:" in log  # two processes
    epochs = [json.loads(l) for l in open(run_dir / "log.jsonl")]
    assert len(epochs) == 1
    # 16 training images, 2 processes x batch 4 -> 2 steps each
    assert "2 steps" in log


def _weights(run_dir):
    return torch.load(os.path.join(run_dir, "checkpoint.pth"), weights_only=True)["model"]


def _direct_accuracy(run_dir, r) -> float:
    """Top-1 accuracy (%) of a run's saved weights at ``r``, one validation image at a time."""
    from launch.engine.config import from_dict
    from launch.engine.tasks import get_task
    raw = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    raw["model"]["checkpoint"] = None
    cfg = from_dict(raw)
    task = get_task(cfg.task)
    model = task.build_model(cfg)
    task.patch(model, cfg)
    model.load_state_dict(_weights(run_dir))
    model.eval().r = r
    data = task.build_dataset(cfg, train=False)
    with torch.no_grad():
        correct = sum(int(model(data[i]["input"][None]).argmax(-1).item() == int(data[i]["target"]))
                      for i in range(len(data)))
    return 100.0 * correct / len(data)


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


def test_compare_writes_table_csv_and_plot_with_the_papers_number(tmp_path):
    run_dir = tmp_path / "exp" / "r2"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(
        {"task": "image", "paper": "deit_s16_tome", "model": {"name": "deit_small_patch16_224"},
         "tome": {"r": 13}}))
    rows = [{"r": 0, "acc1": 80.0, "throughput": 100.0, "gflops": 4.6, "tokens_out": 197},
            {"r": 13, "acc1": 79.0, "throughput": 170.0, "gflops": 2.7, "tokens_out": 41}]
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = report_lib.write_report([str(tmp_path / "exp")], str(tmp_path / "out"))
    table = report["markdown"]
    assert "| r2 | image | deit_small_patch16_224 | 13 | 13 | acc1 | 79.0 | 170.0 | 1.7 |" in table
    assert "79.36" in table or "79.4" in table  # the paper's ToMe accuracy for DeiT-S r=13
    assert "Paper numbers:" in table
    assert os.path.getsize(tmp_path / "out.png") > 1000
    assert open(tmp_path / "out.csv").read().startswith("run,task,model")
    assert compare.main([str(tmp_path / "nothing")]) == 2


def test_compare_reports_training_speedup_as_the_ratio_of_training_seconds(tmp_path):
    for name, train_r, seconds in (("base", 0, [10.0, 10.0]), ("merged", 8, [5.0, 5.0])):
        run_dir = tmp_path / "exp" / name
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(
            {"task": "video", "model": {"name": "video_vit_l"}, "tome": {"r": train_r}}))
        (run_dir / "results.jsonl").write_text(json.dumps({"r": train_r, "acc1": 80.0}) + "\n")
        (run_dir / "log.jsonl").write_text("".join(json.dumps({"epoch": i + 1, "epoch_seconds": s}) + "\n"
                                                   for i, s in enumerate(seconds)))
    rows = {os.path.basename(r["run"]): r for r in report_lib.collect([str(tmp_path / "exp")])}
    assert rows["merged"]["train_s"] == 10.0 and rows["merged"]["train_speedup"] == 2.0
    assert rows["base"]["train_speedup"] == 1.0


def test_slurm_submission_chains_stages_with_afterok_and_sweeps_as_job_arrays(tmp_path, monkeypatch, capsys):
    """On a (fake) SLURM cluster: a stage chain with afterok, a sweep as a job array, then return."""
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    log_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/bash\nn=$(ls $FAKE_SLURM_LOG | wc -l); id=$((1000 + n))\n"
        'cp "${@: -1}" "$FAKE_SLURM_LOG/job_$id.sh"\necho "Submitted batch job $id"\n')
    (bin_dir / "srun").write_text("#!/bin/bash\nexit 0\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_LOG", str(log_dir))
    path = write_config(tmp_path, """\
        stages:
          - {name: pre, set: {tome.r: 0}, sweep: {}}
          - {name: ft, set: {model.checkpoint: "${stage:pre}/checkpoint.pth"}}
        sweep:
          tome.r: [1, 2]
        slurm: {nodes: 2, gpus_per_node: 4, partition: learn}
        """)
    jobs = submit.submit(path, [], cluster="auto")
    assert [j.job_id for j in jobs] == ["1000", "1001_0", "1001_1"]
    out = capsys.readouterr().out
    assert "submitted 1001_1" in out and "log:" in out
    first, second = (log_dir / "job_1000.sh").read_text(), (log_dir / "job_1001.sh").read_text()
    assert "#SBATCH --nodes=2" in first and "#SBATCH --partition=learn" in first
    assert "#SBATCH --gpus-per-node=4" in first and "#SBATCH --signal=USR2@" in first
    assert "#SBATCH --array=0-1" in second and "#SBATCH --dependency=afterok:1000" in second
    assert not (tmp_path / "runs" / "tiny" / "pre" / "results.jsonl").exists()  # nothing ran here
    import pickle
    pre_job = pickle.load(open(jobs[0].paths.submitted_pickle, "rb"))  # checks ft/r1 and ft/r2 at its end
    assert [e["reader"] for e in pre_job.args[2]] == ["ft/r1", "ft/r2"]
