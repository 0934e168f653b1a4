"""Merged models at a fixed r export with torch.export and to ONNX, and the exported graphs give the
eager model's outputs; options that cannot export say so in one line.

Oracle: the eager patched model (its merging is checked against the paper elsewhere); ONNX runs in
onnxruntime on the CPU, a runtime that shares no code with torch. Tolerances (fp32): the exported
program within 1e-5 of eager, onnxruntime within 1e-4 absolute plus 1e-4 relative (docs/deploy.md).
"""
import json

import numpy as np
import onnxruntime as ort
import pytest
import timm
import torch
import transformers

import tome
import tome.threads
from audio.model import build_audio_vit
from video.model import build_video_vit

EXPORT_ATOL = 1e-5
ONNX_ATOL = ONNX_RTOL = 1e-4


def _logits(out):
    return out.logits if hasattr(out, "logits") else out


def _onnxruntime(onnx_program, x: torch.Tensor) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # fast to load
    runtime = ort.InferenceSession(onnx_program.model_proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    return runtime.run(None, {runtime.get_inputs()[0].name: x.numpy()})[0]


def check_exports_match_eager(model, example: torch.Tensor, other_batch: torch.Tensor, r,
                              optimize: bool = True):
    """Export at ``r`` with a dynamic batch; compare the exported program and onnxruntime with
    eager on a batch of another size, and make sure merging is in the graph."""
    model.eval()
    model.r = 0
    with torch.no_grad():
        unmerged = _logits(model(other_batch))
    model.r = r
    with torch.no_grad(), tome.trace() as t:
        eager = _logits(model(other_batch))
    assert t.tokens[-1] < t.tokens_in  # the exported model merges
    assert (eager - unmerged).abs().max() > 10 * ONNX_ATOL  # the tolerance tells merged from not
    onnx_program = tome.export.to_onnx(model, example, optimize=optimize)
    with torch.no_grad():
        exported = _logits(onnx_program.exported_program.module()(other_batch))
    torch.testing.assert_close(exported, eager, atol=EXPORT_ATOL, rtol=0)
    np.testing.assert_allclose(_onnxruntime(onnx_program, other_batch), eager.numpy(),
                               atol=ONNX_ATOL, rtol=ONNX_RTOL)
    assert json.loads(onnx_program.model.metadata_props["tome.r"]) == (list(r) if isinstance(r, tuple) else r)


def test_vit_b16_at_r16_exports_and_onnxruntime_gives_eager_outputs():
    # the ONNX graph optimizer (onnxscript) takes longer than the export itself; the transformers
    # model below runs it
    model = tome.patch.timm(timm.create_model("vit_base_patch16_224", pretrained=False))
    check_exports_match_eager(model, torch.randn(2, 3, 224, 224), torch.randn(3, 3, 224, 224), 16,
                              optimize=False)


def test_video_vit_exports_and_onnxruntime_gives_eager_outputs():
    # MAE-ST micro at its 16 x 224 clip geometry: 1568 space-time tokens, r = 100 per layer
    model = tome.patch.video(build_video_vit("micro", num_classes=5))
    check_exports_match_eager(model, torch.randn(2, 3, 16, 224, 224), torch.randn(3, 3, 16, 224, 224), 100,
                              optimize=False)


def test_audio_vit_exports_and_onnxruntime_gives_eager_outputs():
    # Audio-MAE micro over 1024 x 128 fbanks (512 tokens), decreasing schedule
    model = tome.patch.audio(build_audio_vit("micro", num_classes=5))
    check_exports_match_eager(model, torch.randn(2, 1, 1024, 128), torch.randn(3, 1, 1024, 128), (64, -1.0),
                              optimize=False)


def test_transformers_vit_exports_optimized_and_onnxruntime_gives_eager_outputs():
    config = transformers.ViTConfig(image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=3,
                                    num_attention_heads=3, intermediate_size=96, num_labels=7)
    model = tome.patch.transformers(transformers.ViTForImageClassification(config))
    check_exports_match_eager(model, torch.randn(2, 3, 32, 32), torch.randn(3, 3, 32, 32), 4)


def _tiny(**options):
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, img_size=32, patch_size=8)
    model = tome.patch.timm(model, **options).eval()
    model.r = 2
    return model


@pytest.mark.parametrize("options, named", [
    (dict(trace_source=True), "trace_source=True"),
    (dict(matching="kmeans"), "matching='kmeans'"),
    (dict(matching="random_prune"), "matching='random_prune'"),
])
def test_options_that_cannot_export_fail_in_one_line_naming_the_option(options, named):
    model, x = _tiny(**options), torch.randn(2, 3, 32, 32)
    for attempt in (lambda: tome.export.to_onnx(model, x), lambda: tome.export.export(model, x),
                    lambda: torch.export.export(model, (x,))):  # a plain export too
        with pytest.raises(ValueError) as err:
            attempt()
        message = str(err.value)
        assert named in message and "cannot export" in message and "\n" not in message


def test_audio_merge_groups_cannot_export_and_say_so_in_one_line():
    model = tome.patch.audio(build_audio_vit("micro", num_classes=5, target_length=64, mel_bins=32),
                             band=2).eval()
    model.r = 4
    with pytest.raises(ValueError, match=r"^ToMe merge groups \(audio band/window\) cannot export[^\n]*$"):
        torch.export.export(model, (torch.randn(2, 1, 64, 32),))


def test_dynamic_batch_needs_an_example_batch_of_two():
    with pytest.raises(ValueError, match="example batch of 2 or more.*got 1"):
        tome.export.export(_tiny(), torch.randn(1, 3, 32, 32))
    program = tome.export.export(_tiny(), torch.randn(1, 3, 32, 32), dynamic_batch=False)
    assert program.module()(torch.randn(1, 3, 32, 32)).shape == (1, 1000)


def test_export_leaves_openmp_thread_counts_alone(monkeypatch):
    """tome/threads.py changes OpenMP thread counts inside forward; while exporting it must not
    (a trace-time side effect that the graph would not carry)."""
    def no_libs():
        raise AssertionError("tome.threads touched OpenMP while exporting")
    saved = torch.get_num_threads()
    torch.set_num_threads(2)  # calling_thread acts only with more than one thread
    try:
        tome.threads._LIBS = None
        monkeypatch.setattr(tome.threads, "_libs", no_libs)
        model, x = _tiny(), torch.randn(2, 3, 32, 32)
        program = tome.export.export(model, x)
        monkeypatch.undo()
        with torch.no_grad():
            torch.testing.assert_close(program.module()(x), model(x), atol=EXPORT_ATOL, rtol=0)
    finally:
        torch.set_num_threads(saved)
