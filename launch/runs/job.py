"""The callable submitit runs (importable, so it pickles from any entry point)."""


class Job:
    """The submitted callable. On timeout/preemption submitit calls ``checkpoint``, which only
    resubmits: the run itself resumes from the checkpoints in its directory. ``loaders``: later
    stages' runs that load a checkpoint of this run, checked when it ends (launch/runs/stage_check.py)."""

    def __call__(self, cfg_dict: dict, run_dir: str, loaders=()):
        from launch.engine.config import from_dict
        from launch.engine.loop import run
        from launch.runs.requeue import count_only_time_limits
        from launch.runs.stage_check import check_produced
        cfg = from_dict(cfg_dict)
        count_only_time_limits(cfg.slurm.signal_delay_s)
        rows = run(cfg, run_dir)
        check_produced(loaders)
        return rows

    def checkpoint(self, cfg_dict: dict, run_dir: str, loaders=()):
        import submitit
        return submitit.helpers.DelayedSubmission(Job(), cfg_dict, run_dir, loaders)
