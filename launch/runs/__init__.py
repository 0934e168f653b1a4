"""Around runs: from a config to its runs and back to a report. Imports ``tome`` and
``launch.engine`` (the modalities only through the engine's plugin table).

``plan`` (stages x sweeps), ``precheck`` (what must hold before anything is submitted),
``submission`` (submitit on SLURM or locally), ``slurm_cluster`` (what the live cluster offers,
checked before submitting), ``job`` (the submitted callable), ``requeue`` (a time limit told from
a preemption), ``local_jobs``
(the local launcher's signal forwarding), ``resolved`` (``--print``), ``report`` (compare.md,
CSV, plot), ``tables`` (the paper's tables, ours beside theirs), ``recipes_table`` (docs/recipes.md),
``draw`` (a run's merged groups).
"""
