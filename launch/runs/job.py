"""The callable submitit runs (importable, so it pickles from any entry point)."""


class Job:
    """The submitted callable. On timeout/preemption submitit calls ``checkpoint``, which only
    resubmits: the run itself resumes from the checkpoints in its directory."""

    def __call__(self, cfg_dict: dict, run_dir: str):
        from launch.engine.config import from_dict
        from launch.engine.loop import run
        return run(from_dict(cfg_dict), run_dir)

    def checkpoint(self, cfg_dict: dict, run_dir: str):
        import submitit
        return submitit.helpers.DelayedSubmission(Job(), cfg_dict, run_dir)
