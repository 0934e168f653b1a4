"""The training engine: everything one run needs, for every modality. Imports only ``tome``.

- the contract a modality fills in: ``tasks`` (Task, the plugin table), ``errors`` (ConfigError);
- the config: ``config`` (schema, loading, validation), ``paper`` and ``official`` (published
  rows and tables, official recipe values, with their sources);
- the loop: ``loop`` (train, evaluate, run), ``optim``, ``lr_schedule``, ``mixup``, ``steps``
  (batch and lr arithmetic), ``distributed``, ``throughput`` and ``timing``;
- data: ``data`` (seeded datasets, the epoch sampler, stand-ins for unreadable files),
  ``ra_sampler``, ``skips``, ``generated`` (the demo-data cache rule);
- a run directory that survives faults: ``checkpoint``, ``rundir_lock``, ``runlog``, ``records``,
  ``stop``, ``schedule_record``, ``stats``;
- published weights: ``weights`` (sources and the download cache), ``state_dict`` (the one
  checkpoint loader), ``hf_models`` and ``hf_bench`` (transformers classifiers).
"""
