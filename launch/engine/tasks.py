"""What a modality plugs into the engine: a dataset, a model builder, a loss and a metric.

Each modality package defines one :class:`Task` subclass in its ``task.py``; the engine, the
launcher and the comparison tools know nothing else about images, video or audio. Every
modality's dataset returns :class:`Sample` dicts (build them with :func:`make_sample`).
"""
from __future__ import annotations

import importlib
from typing import Optional, TypedDict, Union

import torch

from .errors import ConfigError
from .skips import skip_fields

TASKS = {"image": "image.task:ImageTask", "video": "video.task:VideoTask",
         "audio": "audio.task:AudioTask"}


class Sample(TypedDict):
    """One dataset item, the same for every modality; the engine reads exactly these keys.

    - ``input``: the model's input for this item (a tensor; video with ``repeat_aug=k`` stacks
      k views, which the training step flattens).
    - ``target``: a class id (int), or a float vector for multi-label tasks (multi-hot, or mixed
      when the dataset mixes two items).
    - ``index``: which dataset item this is: the position asked of ``__getitem__``, in
      ``0..len(dataset)-1``. A stand-in for an unreadable file does not change it.
    - ``group``: the record of the data list (image file, audio clip, video) that ``input`` and
      ``target`` were read from; the evaluation hands it to :meth:`Task.metrics`, which groups
      scores by it (video averages the views of one video). After a stand-in it is the
      stand-in's record, whose target the sample carries, so every sample of one group has that
      group's target.
    - ``skipped``, ``unreadable``: the files passed over to build it
      (:func:`launch.engine.skips.skip_fields`).
    """
    input: torch.Tensor
    target: Union[int, torch.Tensor]
    index: int
    group: int
    skipped: int
    unreadable: str


SAMPLE_KEYS = frozenset(Sample.__annotations__)


def make_sample(input: torch.Tensor, target, index: int, group: int, failures: list) -> Sample:
    """A :class:`Sample`; ``failures`` are ``load_with_standins``' ``(index, path, reason)``."""
    return Sample(input=input, target=target, index=int(index), group=int(group),
                  **skip_fields(failures))


class Task:
    name: str = ""
    data_schema: type = None       # dataclass for the `data:` section
    model_schema: type = None      # dataclass for the `model:` section
    primary_metric: str = "acc1"   # what compare.py and "best" checkpoints rank by
    multilabel: bool = False       # targets are multi-hot (BCE) rather than class ids
    fp32_scores: bool = False      # evaluation scores computed without autocast, whatever eval.amp
    positive_data_fields: tuple = ()  # data sizes checked at submission (launch/runs/precheck.py)

    def prepare(self, cfg, dry_run: bool = False) -> None:
        """Before submission: generate demo data if asked, check every path (ConfigError).
        With ``dry_run`` nothing is written: checks that need data still to be generated are
        skipped."""

    def build_dataset(self, cfg, train: bool) -> torch.utils.data.Dataset:
        raise NotImplementedError

    def build_model(self, cfg) -> torch.nn.Module:
        raise NotImplementedError

    def patch(self, model: torch.nn.Module, cfg) -> torch.nn.Module:
        """Apply the ToMe patch that fits this modality's models."""
        raise NotImplementedError

    def load_checkpoint(self, model: torch.nn.Module, source, check_only: bool = False):
        """Load a checkpoint source into a model built by build_model (``check_only``: keys and
        shapes only, on a meta model) and return the loader's report; None: no loader."""
        return None

    def num_classes(self, cfg) -> int:
        return cfg.model.num_classes

    def input_shape(self, cfg) -> tuple:
        """Shape of one input sample (without batch), used for throughput and FLOPs."""
        raise NotImplementedError

    def repeated_views(self, cfg) -> int:
        """Augmented views of one sample inside one training item (MAE-ST ``repeat_aug``): the
        effective batch, and so the lr, counts each of them."""
        return 1

    def sampler_repeats(self, cfg) -> int:
        """DeiT repeated augmentation: copies of each sample the training sampler deals out."""
        return 1

    def interim_eval_config(self, cfg):
        """The config of the evaluations between epochs (``eval.interim_views``): the task may
        return a cheaper one (video: a single view per video); the final evaluation uses ``cfg``."""
        return cfg

    def train_sampling(self, dataset, cfg) -> tuple:
        """(per-sample weights or None, samples per epoch or None): weights switch the engine's
        sampler to weighted sampling with replacement (e.g. class balancing)."""
        return None, None

    def paint(self, x: torch.Tensor, source: torch.Tensor, model, path: str) -> str:
        """Draw one sample's merged groups (``source`` [T_out, T_in]) to ``path``; returns it."""
        raise NotImplementedError

    def metrics(self, scores: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor) -> dict:
        """Scores/targets of the whole evaluation set (all processes gathered); ``groups`` holds
        each sample's :class:`Sample` ``group``."""
        raise NotImplementedError


def get_task(name) -> Task:
    if name not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {name!r}")
    module, cls = TASKS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def required_lists(cfg, what: str) -> list:
    """(key, path) of the data lists a run reads: the training list only when it trains."""
    d = cfg.data
    lists = ([("train_list", d.train_list)] if cfg.train.epochs > 0 else []) + [("val_list", d.val_list)]
    for key, path in lists:
        if not path:
            raise ConfigError(f"data.{key} is empty; set it to {what}")
    return lists


def tome_options(cfg) -> dict:
    """The ``tome:`` options every patch takes (the audio patch adds ``band``/``window``)."""
    t = cfg.tome
    return dict(prop_attn=t.prop_attn, metric=t.metric, mode=t.mode, matching=t.matching,
                distance=t.distance, attn=t.attn, heads=t.heads, partition=t.partition,
                kmeans_iters=t.kmeans_iters)


def check_checkpoint(path: Optional[str], cfg, task: Optional["Task"] = None) -> None:
    """A checkpoint must exist (or be a remote source), unless an earlier stage of this experiment
    will write it; where it is at hand, its keys and shapes must fit the model (shapes only)."""
    from .state_dict import check_fits
    check_fits(path, cfg, task)


def topk_accuracy(scores: torch.Tensor, targets: torch.Tensor, ks=(1, 5)) -> dict:
    """Top-k accuracy in percent for class-id targets, with its binomial standard error
    (``acc<k>_se``, percentage points) over the ``n`` samples."""
    from .stats import binomial_se
    out = {}
    top = scores.topk(min(max(ks), scores.shape[1]), dim=1).indices
    for k in ks:
        hit = (top[:, :k] == targets[:, None]).any(dim=1).float().mean().item()
        out[f"acc{k}"] = 100.0 * hit
        out[f"acc{k}_se"] = binomial_se(100.0 * hit, len(targets))
    out["n"] = len(targets)
    return out
