"""Typed experiment configs: YAML with inheritance, ``key=value`` overrides, one validation pass.

A config file may name ``_base_: other.yaml`` (or a list); bases merge first, the file on top,
command-line overrides last. Every key is checked against the dataclasses below (the ``data`` and
``model`` sections against the task's own schema), so an unknown key or a wrong type is a one-line
:class:`ConfigError` before any job starts. The resolved config is written to each run directory.
"""
from __future__ import annotations

import copy
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import yaml

from .errors import ConfigError


@dataclass
class ToMeConfig:
    r: Union[int, list] = 0                 # tokens merged per layer while training (or a list)
    inflection: Optional[float] = None      # with r: a ramp schedule, -1 = decreasing
    eval_r: list = field(default_factory=lambda: [0])  # r values evaluated at the end
    prop_attn: bool = True
    metric: str = "k"                       # x_pre | x | q | k | v (Table 1a; docs/api_options.md)
    mode: str = "wavg"                      # wavg | mean | max | keep (Table 1d)
    matching: str = "bipartite"             # bipartite | greedy | kmeans | random_prune | attn_prune (Table 2); random (old)
    distance: str = "cosine"                # cosine | euclidean | dot | softmax (Table 1b)
    heads: str = "mean"                     # mean | concat: per-head q/k/v averaged or joined (Table 1c)
    partition: str = "alternating"          # alternating | sequential | random: bipartite A/B split (Table 1e)
    kmeans_iters: int = 5                   # Lloyd steps of matching kmeans (Table 2: 2 and 5); = tome.matching.KMEANS_ITERS
    attn: str = "sdpa"                      # attention backend: sdpa | flex | eager (tome/attention.py)
    band: Optional[int] = None              # audio: merge only within bands of this many freq patches
    window: Optional[int] = None            # audio: ... and within windows of this many time patches


@dataclass
class TrainConfig:
    epochs: int = 0                         # 0: evaluation only
    batch_size: int = 64                    # per process
    accum_steps: int = 1
    blr: float = 1e-3                       # lr = blr * effective batch / 256
    lr: Optional[float] = None              # absolute lr, overrides blr
    min_lr: float = 1e-6
    warmup_epochs: float = 5.0
    weight_decay: float = 0.05
    layer_decay: float = 0.75               # 1.0 disables layer-wise lr decay
    mixup: float = 0.8
    cutmix: float = 1.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    label_smoothing: float = 0.1
    amp: str = "none"                       # none | bf16 | fp16
    ema: bool = False
    ema_decay: float = 0.9999
    clip_grad: Optional[float] = None
    seed: int = 0
    checkpoint_every: int = 0               # also save every N steps (0: at epoch ends only)
    eval_every: int = 1                     # epochs between evaluations (0: only at the end)
    lr_schedule: str = "half_cosine"        # half_cosine (MAE, per step) | timm_epoch_cosine (DeiT, per epoch)
    warmup_lr: float = 0.0                  # lr at the start of warm-up (timm_epoch_cosine: DeiT --warmup-lr)


@dataclass
class EvalConfig:
    batch_size: int = 64
    throughput: bool = True
    throughput_batch: Union[int, str] = 64  # per model, or "search": best power-of-two batch each
    throughput_iters: int = 10              # interleaved rounds (every r and the unpatched model once each)
    throughput_warmup: int = 3
    throughput_dtype: str = "fp32"          # fp32 | fp16 | bf16; the paper times fp32, whatever train.amp
    throughput_threads: Optional[int] = None  # intra-op threads while timing (None: torch's default)
    throughput_clock: str = "wall"          # wall (the paper's) | cpu: one thread's CPU time, for shared CPUs
    payoff_max_batch: int = 256             # a merged model slower than the unmerged one: double the batch
                                            # up to this to find where merging pays off (0: warn only)
    use_ema: bool = False
    amp: str = "none"                       # evaluation and throughput precision: none (fp32) | bf16 | fp16
    interim_views: str = "single"           # evaluations between epochs: single (one cheap view) | full


@dataclass
class SlurmConfig:
    nodes: int = 1
    gpus_per_node: int = 8
    cpus_per_task: int = 10
    mem_gb: int = 0                         # 0: SLURM default
    partition: str = ""
    account: str = ""
    qos: str = ""
    constraint: str = ""
    timeout_min: int = 4320                 # each attempt's time limit; a longer run is requeued
    max_timeouts: int = 30                  # requeues at the time limit before the job fails (preemptions do not count)
    signal_delay_s: int = 120               # USR2 this long before the time limit: checkpoint and requeue
    max_parallel: int = 64                  # job-array concurrency


@dataclass
class LaunchConfig:
    cluster: str = "auto"                   # auto | slurm | local | debug
    out_dir: str = "runs"
    num_workers: int = 4
    device: str = "auto"                    # auto | cpu | cuda
    tasks_per_node: int = 1                 # processes per node for CPU jobs (DDP over gloo), local or SLURM
    threads: Optional[int] = None           # intra-op threads of each run process (None: torch's default)


@dataclass
class StageConfig:
    name: str = ""
    set: dict = field(default_factory=dict)
    sweep: Optional[dict] = None            # replaces the top-level sweep for this stage


SECTIONS = {"tome": ToMeConfig, "train": TrainConfig, "eval": EvalConfig, "slurm": SlurmConfig,
            "launch": LaunchConfig}
TOP_LEVEL = ("task", "name", "paper", "data", "model", "sweep", "stages", *SECTIONS)
CLUSTERS = ("auto", "slurm", "local", "debug")
AMP = ("none", "bf16", "fp16")
LR_SCHEDULES = ("half_cosine", "timm_epoch_cosine")
INTERIM_VIEWS = ("single", "full")


# ---------------------------------------------------------------- loading and merging

def _deep_merge(base: dict, top: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("sweep",):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_yaml(path: str, _seen=()) -> dict:
    """A YAML file with its ``_base_`` files merged underneath."""
    path = os.path.abspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    if path in _seen:
        raise ConfigError(f"config inheritance loops back to {path}")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config must be a mapping, got {type(raw).__name__}")
    bases = raw.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, load_yaml(os.path.join(os.path.dirname(path), base),
                                               _seen + (path,)))
    return _deep_merge(merged, raw)


def parse_override(text: str) -> tuple[str, Any]:
    """``train.epochs=3`` -> ("train.epochs", 3); values are YAML scalars or lists."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. tome.r=16")
    key, value = text.split("=", 1)
    try:
        return key.strip(), yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        return key.strip(), value


def set_dotted(raw: dict, key: str, value) -> None:
    if key.startswith("sweep.") and len(key) > 6:  # sweep keys are themselves dotted: sweep.tome.r
        raw.setdefault("sweep", {})
        if not isinstance(raw["sweep"], dict):
            raise ConfigError(f"cannot set {key!r}: sweep is not a mapping")
        raw["sweep"][key[6:]] = value
        return
    parts = key.split(".")
    if parts[0] not in TOP_LEVEL:
        raise ConfigError(f"unknown config key {key!r} (top-level keys: {', '.join(TOP_LEVEL)})")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {key!r}: {part!r} is not a section")
    node[parts[-1]] = value


def get_dotted(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part] if isinstance(node, dict) else getattr(node, part)
    return node


# ---------------------------------------------------------------- type checking

def _type_name(tp) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _check_value(value, tp, where: str):
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin is Union:
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _check_value(value, option, where)
            except ConfigError:
                continue
        names = " or ".join(_type_name(o) for o in options if o is not type(None))
        raise ConfigError(f"{where} must be {names}{' or null' if type(None) in options else ''}, "
                          f"got {value!r}")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if tp is list or origin is list:
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_check_value(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, where)
    raise ConfigError(f"{where}: unsupported type {tp}")


def build_section(cls, raw, where: str):
    """Instantiate dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(f"unknown config key {where}.{key} (valid: {', '.join(names)})")
        kwargs[key] = _check_value(value, hints[key], f"{where}.{key}")
    return cls(**kwargs)


@dataclass
class Config:
    task: str
    name: str
    data: Any
    model: Any
    tome: ToMeConfig
    train: TrainConfig
    eval: EvalConfig
    slurm: SlurmConfig
    launch: LaunchConfig
    sweep: dict = field(default_factory=dict)
    stages: list = field(default_factory=list)
    paper: Optional[str] = None             # published row or table panel this config reproduces (paper.py)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_config(raw: dict) -> Config:
    """Validate a merged raw mapping into a :class:`Config` (task schemas from the task registry)."""
    from .tasks import get_task  # the task owns the schema of its data and model sections

    for key in raw:
        if key not in TOP_LEVEL:
            raise ConfigError(f"unknown config key {key!r} (top-level keys: {', '.join(TOP_LEVEL)})")
    task_name = raw.get("task")
    task = get_task(task_name)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"name must be a non-empty string naming the experiment, got {name!r}")
    sections = {key: build_section(cls, raw.get(key), key) for key, cls in SECTIONS.items()}
    cfg = Config(task=task_name, name=name,
                 data=build_section(task.data_schema, raw.get("data"), "data"),
                 model=build_section(task.model_schema, raw.get("model"), "model"),
                 sweep=_check_value(raw.get("sweep") or {}, dict, "sweep"),
                 paper=_check_paper(raw.get("paper")),
                 stages=[build_section(StageConfig, s, f"stages[{i}]")
                         for i, s in enumerate(raw.get("stages") or [])],
                 **sections)
    check_values(cfg)
    return cfg


def _check_paper(paper_id):
    from .paper import known_ids
    if paper_id is not None and paper_id not in known_ids():
        raise ConfigError(f"paper must be one of {', '.join(known_ids())}, got {paper_id!r}")
    return paper_id


def check_values(cfg: Config) -> None:
    """Impossible values, caught before submission."""
    import tome
    from tome.state import ToMeInfo

    t = cfg.train
    checks = [
        (t.epochs >= 0, f"train.epochs must be >= 0, got {t.epochs}"),
        (t.batch_size > 0, f"train.batch_size must be positive, got {t.batch_size}"),
        (t.accum_steps > 0, f"train.accum_steps must be positive, got {t.accum_steps}"),
        (t.amp in AMP, f"train.amp must be none, bf16 or fp16, got {t.amp!r}"),
        (cfg.eval.amp in AMP, f"eval.amp must be none, bf16 or fp16, got {cfg.eval.amp!r}"),
        (t.lr_schedule in LR_SCHEDULES,
         f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {t.lr_schedule!r}"),
        (t.warmup_lr >= 0, f"train.warmup_lr must be >= 0, got {t.warmup_lr}"),
        (cfg.eval.interim_views in INTERIM_VIEWS,
         f"eval.interim_views must be one of {', '.join(INTERIM_VIEWS)}, got {cfg.eval.interim_views!r}"),
        (0 < t.layer_decay <= 1, f"train.layer_decay must be in (0, 1], got {t.layer_decay}"),
        (0 <= t.label_smoothing < 1, f"train.label_smoothing must be in [0, 1), got {t.label_smoothing}"),
        (t.mixup >= 0 and t.cutmix >= 0, f"train.mixup/cutmix must be >= 0, got {t.mixup}/{t.cutmix}"),
        (0 <= t.mixup_prob <= 1, f"train.mixup_prob must be in [0, 1], got {t.mixup_prob}"),
        (0 < t.ema_decay < 1, f"train.ema_decay must be in (0, 1), got {t.ema_decay}"),
        (cfg.eval.batch_size > 0, f"eval.batch_size must be positive, got {cfg.eval.batch_size}"),
        (cfg.eval.throughput_batch == "search" or (isinstance(cfg.eval.throughput_batch, int)
                                                   and cfg.eval.throughput_batch > 0),
         f"eval.throughput_batch must be a positive integer or 'search', got {cfg.eval.throughput_batch!r}"),
        (cfg.eval.throughput_dtype in ("fp32", "fp16", "bf16"),
         f"eval.throughput_dtype must be fp32, fp16 or bf16, got {cfg.eval.throughput_dtype!r}"),
        (cfg.eval.throughput_threads is None or cfg.eval.throughput_threads >= 1,
         f"eval.throughput_threads must be >= 1 or null, got {cfg.eval.throughput_threads}"),
        (cfg.eval.throughput_clock == "wall" or (cfg.eval.throughput_clock == "cpu" and cfg.eval.throughput_threads == 1
                                                 and cfg.launch.device == "cpu"),
         f"eval.throughput_clock must be wall, or cpu with eval.throughput_threads=1 and launch.device=cpu, got "
         f"{cfg.eval.throughput_clock!r} with threads={cfg.eval.throughput_threads} on {cfg.launch.device}"),
        (isinstance(cfg.eval.payoff_max_batch, int) and cfg.eval.payoff_max_batch >= 0,
         f"eval.payoff_max_batch must be an integer >= 0 (0: no search), got {cfg.eval.payoff_max_batch!r}"),
        (cfg.eval.throughput_iters > 0 and cfg.eval.throughput_warmup >= 0,
         f"eval.throughput_iters must be >= 1 and throughput_warmup >= 0, got "
         f"{cfg.eval.throughput_iters}/{cfg.eval.throughput_warmup}"),
        (cfg.launch.cluster in CLUSTERS,
         f"launch.cluster must be one of {', '.join(CLUSTERS)}, got {cfg.launch.cluster!r}"),
        (cfg.launch.device in ("auto", "cpu", "cuda"),
         f"launch.device must be auto, cpu or cuda, got {cfg.launch.device!r}"),
        (cfg.launch.num_workers >= 0, f"launch.num_workers must be >= 0, got {cfg.launch.num_workers}"),
        (cfg.launch.threads is None or cfg.launch.threads >= 1,
         f"launch.threads must be >= 1 or null, got {cfg.launch.threads}"),
        (cfg.slurm.nodes > 0 and cfg.slurm.gpus_per_node >= 0,
         f"slurm.nodes must be >= 1 and gpus_per_node >= 0, got {cfg.slurm.nodes}/{cfg.slurm.gpus_per_node}"),
        (cfg.slurm.cpus_per_task >= 1 and cfg.launch.tasks_per_node >= 1,
         f"slurm.cpus_per_task and launch.tasks_per_node must be >= 1, got "
         f"{cfg.slurm.cpus_per_task}/{cfg.launch.tasks_per_node}"),
        (cfg.slurm.max_timeouts >= 0, f"slurm.max_timeouts must be >= 0, got {cfg.slurm.max_timeouts}"),
        (cfg.slurm.timeout_min >= 1 and 0 < cfg.slurm.signal_delay_s < cfg.slurm.timeout_min * 60,
         f"slurm.signal_delay_s must be between 1 and slurm.timeout_min x 60 - 1 "
         f"({cfg.slurm.timeout_min * 60 - 1}), got {cfg.slurm.signal_delay_s}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    try:
        ToMeInfo(metric=cfg.tome.metric, mode=cfg.tome.mode, matching=cfg.tome.matching,
                 distance=cfg.tome.distance, attn=cfg.tome.attn, prop_attn=cfg.tome.prop_attn,
                 heads=cfg.tome.heads, partition=cfg.tome.partition,
                 kmeans_iters=cfg.tome.kmeans_iters)
        for r in [cfg.tome.r] + list(cfg.tome.eval_r):
            tome.parse_r(model_r(cfg.tome, r), 10_000)
    except ValueError as err:
        raise ConfigError(f"tome: {err}") from None
    for key, values in cfg.sweep.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key} must be a non-empty list of values, got {values!r}")


def model_r(tome_cfg: ToMeConfig, r):
    """What ``model.r`` is set to for the config's ``r``: an int, a per-layer list, or
    (r, inflection) when the config names an inflection (``tome.schedule`` parses all three)."""
    if tome_cfg.inflection is not None:
        if isinstance(r, list):
            raise ValueError(f"inflection needs an integer r, got the list {r!r}")
        return (r, tome_cfg.inflection)
    return r


def load_raw(path: str, overrides=()) -> dict:
    """Load ``path`` (with its ``defaults``) and apply ``key=value`` overrides, unvalidated: what
    sweeps and stages expand (``launch/runs/plan.py``) before each run is validated."""
    raw = load_yaml(path)
    for text in overrides:
        key, value = parse_override(text)
        set_dotted(raw, key, value)
    return raw


def resolve(path: str, overrides=()) -> Config:
    """Load ``path``, apply ``key=value`` overrides, validate."""
    return build_config(load_raw(path, overrides))


def from_dict(raw: dict) -> Config:
    return build_config(copy.deepcopy(raw))


def save(cfg: Config, path: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)
    os.replace(tmp, path)
