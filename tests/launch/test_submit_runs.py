"""The launcher end to end (launch/submit.py): debug, local and fake-SLURM submission, DDP on CPU, and the report it writes."""
import json
import os

import torch
import yaml

from launch import submit

from tests.tiny_configs import write_config
from tests.run_helpers import _weights  # noqa: F401,F811


def test_missing_paths_fail_before_submission(tmp_path, capsys):
    path = write_config(tmp_path)
    code = submit.main([path, "data.demo=false", f"data.root={tmp_path}/nowhere", "--cluster", "debug"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "runs")
    code = submit.main([path, f"model.checkpoint={tmp_path}/missing.pth", "--cluster", "debug"])
    assert code == 2 and "model.checkpoint" in capsys.readouterr().err


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


# two 4-GPU nodes in partition "learn", as `scontrol show node|partition -o` prints them
FAKE_SCONTROL = """#!/bin/bash
case "$2" in
  node) for n in 1 2; do echo "NodeName=gpu$n Arch=x86_64 CPUTot=40 RealMemory=500000 Gres=gpu:v100:4(S:0-1) OS=Linux 6.1 #1 SMP State=IDLE Partitions=learn,dev"; done ;;
  partition) echo "PartitionName=learn AllowGroups=ALL Default=NO MaxTime=3-00:00:00 Nodes=gpu[1-2] State=UP"
             echo "PartitionName=dev AllowGroups=ALL Default=YES MaxTime=01:00:00 Nodes=gpu[1-2] State=UP" ;;
esac
"""


def test_slurm_submission_chains_stages_with_afterok_and_sweeps_as_job_arrays(tmp_path, monkeypatch, capsys):
    """On a (fake) SLURM cluster: a stage chain with afterok, a sweep as a job array, then return."""
    bin_dir, log_dir = tmp_path / "bin", tmp_path / "sbatch"
    bin_dir.mkdir()
    log_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/bash\nn=$(ls $FAKE_SLURM_LOG | wc -l); id=$((1000 + n))\n"
        'cp "${@: -1}" "$FAKE_SLURM_LOG/job_$id.sh"\necho "Submitted batch job $id"\n')
    (bin_dir / "srun").write_text("#!/bin/bash\nexit 0\n")
    (bin_dir / "scontrol").write_text(FAKE_SCONTROL)
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
        data: {demo_train_per_class: 16}   # 8 processes x batch 4
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
