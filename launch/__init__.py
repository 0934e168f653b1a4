"""The commands people run, one file each (``python launch/X.py`` or ``python -m launch.X``):
submit, run, compare, tables, vis, bench, gpu_check, weights, recipes.

Below them: ``launch.engine`` (what one run needs: config, the task contract, the training and
evaluation loop, optimizer, data, checkpoints, logs, weights) and ``launch.runs`` (what happens
around runs: sweep/stage plans, checks before submission, the submitit job, reports).
"""
