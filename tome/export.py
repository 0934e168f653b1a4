"""Export a merged model at a fixed r: ``torch.export`` and ONNX (the dynamo exporter).

    model.r = 16
    program = tome.export.export(model, x)            # torch.export.ExportedProgram
    onnx_program = tome.export.to_onnx(model, x, "vit_b_r16.onnx")

What export fixes: the schedule (``model.r`` when exported), the input size (hence the token count
of every layer) and the merge options. The batch stays free (``dynamic_batch``). Token merging
exports as ordinary tensor ops: with a fixed schedule and input size every shape is known, and the
matching (argsort, gathers, scatters) is part of the graph.

Four options cannot export; they fail with a one-line error
here and inside a plain ``torch.export.export`` of the model (see :func:`export_problem`):
source tracing (its maps are read through ``tome.trace``, which an exported graph cannot feed),
k-means matching (a data-dependent loop repairs empty clusters), random pruning (a boolean mask of
data-dependent size) and merge groups (audio bands / windows: the merges per layer depend on the
data).
"""
from __future__ import annotations

import json
from typing import Optional

import torch

from .state import ToMeInfo, tome_info


# Matchings whose shapes or control flow depend on the data (greedy and random export fine).
_MATCHING_PROBLEMS = {
    "kmeans": "its repair of empty clusters is a Python loop over the data, which a graph cannot hold",
    "random_prune": "it keeps tokens through a boolean mask whose size torch.export cannot know",
}


def export_problem(info: ToMeInfo) -> Optional[str]:
    """Why a model with these options cannot export (one line), or None if it can."""
    if info.trace_source:
        return ("ToMe trace_source=True cannot export: source maps are read through tome.trace(), "
                "which records nothing in an exported graph; patch with trace_source=False")
    if info.matching in _MATCHING_PROBLEMS:
        return (f"ToMe matching={info.matching!r} cannot export: {_MATCHING_PROBLEMS[info.matching]}; "
                f"use 'bipartite', 'random' or 'greedy'")
    if info.groups is not None:
        return ("ToMe merge groups (audio band/window) cannot export: the number of merges per "
                "layer depends on the data; patch without band/window")
    return None


def check_exportable(model: torch.nn.Module) -> ToMeInfo:
    """Raise a one-line ValueError if ``model``'s merge options cannot export; returns its options."""
    info = tome_info(model)
    problem = export_problem(info)
    if problem is not None:
        raise ValueError(problem)
    return info


def _dynamic_shapes(example: torch.Tensor, dynamic_batch: bool):
    if not isinstance(example, torch.Tensor):
        raise ValueError(f"export example must be one input tensor (a batch), got {type(example).__name__}")
    if not dynamic_batch:
        return None
    if example.shape[0] < 2:
        raise ValueError(f"a dynamic batch needs an example batch of 2 or more (torch.export fixes a "
                         f"batch of 1), got {example.shape[0]}; or pass dynamic_batch=False")
    return ({0: torch.export.Dim("batch")},)


def export(model: torch.nn.Module, example: torch.Tensor,
           dynamic_batch: bool = True) -> torch.export.ExportedProgram:
    """``torch.export`` of a patched model in eval mode at its current ``model.r`` and the size of
    ``example`` (one input batch); the batch stays dynamic unless ``dynamic_batch=False``."""
    check_exportable(model)
    shapes = _dynamic_shapes(example, dynamic_batch)
    was_training = model.training
    model.eval()
    try:
        return torch.export.export(model, (example,), dynamic_shapes=shapes)
    finally:
        model.train(was_training)


def to_onnx(model: torch.nn.Module, example: torch.Tensor, path: Optional[str] = None,
            dynamic_batch: bool = True, optimize: bool = True):
    """ONNX (dynamo exporter) of a patched model at its current ``model.r``: returns the
    ``torch.onnx.ONNXProgram`` and writes it to ``path`` when given. The schedule and input shape
    it was exported at are stored in the model's metadata (``tome.r``, ``tome.input_shape``)."""
    info = check_exportable(model)
    program = export(model, example, dynamic_batch)
    onnx_program = torch.onnx.export(program, (example,), dynamo=True, optimize=optimize,
                                     verbose=False)
    onnx_program.model.metadata_props["tome.r"] = json.dumps(info.r)
    onnx_program.model.metadata_props["tome.input_shape"] = json.dumps(list(example.shape[1:]))
    if path is not None:
        onnx_program.save(path)
    return onnx_program
