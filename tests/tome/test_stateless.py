"""A patched model keeps no per-call state: threads, replicas, timm's feature API, tome.trace,
and exact fp32 sizes in half-precision models."""
import asyncio
import copy
import threading

import pytest
import torch

import tome
from tests.models import input_for, timm_model, torchvision_model


def _avg_model(r=3):
    model = tome.patch.timm(timm_model("mae_avgpool").eval(), trace_source=True)
    model.r = r
    return model


def _reference(model, x):
    """Single-thread, one-sample-at-a-time reference: logits and sizes of each sample."""
    logits, sizes = [], []
    with torch.no_grad():
        for i in range(x.shape[0]):
            with tome.trace() as t:
                logits.append(model(x[i:i + 1]))
            sizes.append(t.size)
    return torch.cat(logits), torch.cat(sizes)


def test_four_threads_with_different_batches_each_get_their_own_results():
    model = _avg_model()
    batches = [1, 3, 2, 5]
    inputs = [input_for("mae_avgpool", b) for b in batches]
    expected = [_reference(model, x) for x in inputs]
    results, errors = {}, []
    start = threading.Barrier(len(batches))

    def work(i):
        try:
            start.wait()
            for _ in range(5):
                with torch.no_grad(), tome.trace() as t:
                    out = model(inputs[i])
                results.setdefault(i, []).append((out, t.size, t.source, len(t.calls)))
        except Exception as err:  # reported below, with the thread's batch size
            errors.append((batches[i], repr(err)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for i, b in enumerate(batches):
        ref_logits, ref_sizes = expected[i]
        for out, size, source, calls in results[i]:
            assert calls == 1  # each thread's trace saw only its own call
            torch.testing.assert_close(out, ref_logits, atol=1e-5, rtol=1e-4)
            assert torch.equal(size, ref_sizes) and source.shape[0] == b
            assert torch.equal(size, source.sum(-1, keepdim=True))


def test_traces_in_concurrent_asyncio_tasks_stay_apart():
    model = _avg_model()

    async def call(batch):
        with tome.trace() as t:
            await asyncio.sleep(0)
            with torch.no_grad():
                model(input_for("mae_avgpool", batch))
            await asyncio.sleep(0)
        return [c.size.shape[0] for c in t.calls]

    async def main():
        return await asyncio.gather(call(1), call(3), call(2))

    assert asyncio.run(main()) == [[1], [3], [2]]


def _cpu_replicate(model, copies):
    """torch.nn.parallel.replicate's structure on the CPU (replicate itself needs CUDA devices):
    every module replicated with ``_replicate_for_data_parallel`` (so replicas share ``_tome`` and
    every other attribute), parameters cloned as the broadcast would."""
    modules = list(model.modules())
    index = {id(m): i for i, m in enumerate(modules)}
    replicas = [[m._replicate_for_data_parallel() for m in modules] for _ in range(copies)]
    for rep in replicas:
        for i, module in enumerate(modules):
            for name, child in module._modules.items():
                rep[i]._modules[name] = None if child is None else rep[index[id(child)]]
            for name, param in module._parameters.items():
                if param is not None:
                    setattr(rep[i], name, param.detach().clone())
    return [rep[0] for rep in replicas]


def test_replicas_sharing_tome_options_run_concurrently_and_correctly():
    model = _avg_model()
    replicas = _cpu_replicate(model, 2) + [copy.copy(model)]
    assert all(rep._tome is model._tome for rep in replicas)
    inputs = [input_for("mae_avgpool", b) for b in (2, 5, 3)]
    expected = [_reference(model, x)[0] for x in inputs]
    outputs = [None] * len(replicas)

    def work(i):  # as DataParallel's parallel_apply: one thread per replica
        with torch.no_grad():
            outputs[i] = replicas[i](inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(replicas))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for out, ref in zip(outputs, expected):
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)


def test_forward_with_info_through_dataparallel_gives_the_models_outputs_and_tokens():
    model = _avg_model()
    x = input_for("mae_avgpool", 3)
    with torch.no_grad():
        ref = model(x)
        out, info = tome.forward_with_info(torch.nn.DataParallel(model), x)
    torch.testing.assert_close(out, ref)
    assert info.tokens == [14, 11, 8] and info.tokens_in == 17  # class token + 16, r=3 per layer
    assert info.size.shape == (3, info.tokens[-1], 1) and info.size.dtype == torch.float32


@pytest.mark.parametrize("variant", ["augreg", "mae_avgpool", "deit_distilled", "registers",
                                     "no_class_token", "dynamic_size"])
def test_forward_intermediates_then_forward_head_equals_model(variant):
    model = tome.patch.timm(timm_model(variant).eval(), trace_source=True)
    model.r = 3
    x = input_for(variant)
    with torch.no_grad(), tome.trace() as t:
        ref = model(x)
        final, inter = model.forward_intermediates(x, output_fmt="NLC")
        logits = model.forward_head(final)
    torch.testing.assert_close(logits, ref)
    prefix = model.num_prefix_tokens
    # one NLC intermediate per block with that block's merged token count, prefix split off
    assert [y.shape[1] + prefix for y in inter] == t.tokens
    assert t.calls[0].tokens == t.calls[1].tokens
    pairs = model.forward_intermediates(x, output_fmt="NLC", intermediates_only=True,
                                        return_prefix_tokens=True)
    normed = model.forward_intermediates(x, indices=[0, 2], output_fmt="NLC", intermediates_only=True,
                                         norm=True, return_prefix_tokens=True)
    assert len(pairs) == 3 and len(normed) == 2
    for j, i in enumerate([0, 2]):
        spatial, pre = pairs[i] if prefix else (pairs[i], pairs[i][:, :0])
        got = normed[j][0] if prefix else normed[j]
        torch.testing.assert_close(got, model.norm(torch.cat([pre, spatial], 1))[:, prefix:])
    early = model.forward_intermediates(x, indices=[1], output_fmt="NLC", stop_early=True)
    assert early[0].shape[1] == t.tokens[1] and early[1][0].shape == inter[1].shape


def test_forward_intermediates_refuses_nchw_after_merging_and_returns_a_dict_on_request():
    model = tome.patch.timm(timm_model("mae_avgpool").eval())
    x = input_for("mae_avgpool")
    with torch.no_grad():
        grid = model.forward_intermediates(x)  # r=0: timm's NCHW still works
        assert grid[1][0].shape == (2, 48, 4, 4)
        model.r = 2
        with pytest.raises(ValueError, match="output_fmt='NCHW'.*use output_fmt='NLC'"):
            model.forward_intermediates(x)
        out = model.forward_intermediates(x, output_fmt="NLC", output_dict=True,
                                          return_prefix_tokens=True)
        assert set(out) == {"image_intermediates", "image_intermediates_prefix", "image_features"}
        torch.testing.assert_close(model.forward_head(out["image_features"]), model(x))


def test_forward_intermediates_of_video_and_audio_models_match_their_forward():
    from audio.model import build_audio_vit
    from video.model import build_video_vit
    video = tome.patch.video(build_video_vit("micro", 4, num_frames=4, img_size=32).eval())
    audio = tome.patch.audio(build_audio_vit("micro", num_classes=5, target_length=64, mel_bins=32,
                                             patch=8).eval(), band=2)
    for model, x in ((video, torch.randn(2, 3, 4, 32, 32)), (audio, torch.randn(2, 1, 64, 32))):
        model.r = 2
        with torch.no_grad(), tome.trace() as t:
            ref = model(x)
            final, inter = model.forward_intermediates(x, output_fmt="NLC")
            torch.testing.assert_close(model.forward_head(final), ref)
        assert [y.shape[1] + 1 for y in inter] == t.tokens and t.tokens[-1] < t.tokens_in


def test_torchvision_calls_are_traced_as_values():
    model = tome.patch.torchvision(torchvision_model().eval())
    model.r = 4
    with torch.no_grad(), tome.trace(source=True) as t:
        model(torch.randn(3, 3, 32, 32))
        model.encoder(torch.randn(1, 17, 48))  # the encoder called alone records its call too
    assert [c.tokens for c in t.calls] == [[13, 9, 5], [13, 9, 5]]
    assert torch.equal(t.calls[0].size, t.calls[0].source.sum(-1, keepdim=True))
    assert not model._tome.trace_source  # tracing sources was asked of the trace, not the model


def test_patched_model_keeps_only_its_options_after_a_call():
    model = _avg_model()
    with torch.no_grad():
        model(input_for("mae_avgpool"))
    fields = set(vars(model._tome))
    assert fields == {"r", "protected", "prop_attn", "trace_source", "metric", "mode", "matching", "distance", "attn",
                      "groups", "heads", "partition", "kmeans_iters"}
    assert tome.tome_info(model) is model._tome


def test_nested_traces_both_record_keep_limits_the_calls_and_misuse_raises():
    model = _avg_model()
    x = input_for("mae_avgpool")
    with torch.no_grad(), tome.trace() as outer:
        model(x)
        with tome.trace(keep=1) as inner:
            model(x[:1])
            model(x)
    assert len(outer.calls) == 3 and len(inner.calls) == 1 and inner.size.shape[0] == 2
    with tome.trace() as empty:
        pass
    with pytest.raises(RuntimeError, match="recorded no call"):
        empty.size
    with pytest.raises(ValueError, match="keep must be a positive integer"):
        with tome.trace(keep=0):
            pass


def _all_identical_tokens_model(dtype):
    """A 1-block ViT over 625 patches whose patch tokens are all identical: every A token's best
    match is the first B token, so one merge of r=300 puts 301 patches into one token."""
    model = timm_model("mae_avgpool", img_size=100, patch_size=4, depth=1, class_token=True)
    with torch.no_grad():
        model.pos_embed.zero_()
    model = tome.patch.timm(model.eval().to(dtype), trace_source=True)
    model.r = 300
    return model, torch.ones(1, 3, 100, 100, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sizes_are_exact_counts_in_half_precision_models(dtype):
    model, x = _all_identical_tokens_model(dtype)
    with torch.no_grad(), tome.trace() as t:
        model(x)
    assert t.size.dtype == torch.float32
    counts = t.source.to(torch.int64).sum(-1)  # integer oracle: patches held by each token
    assert counts.max() == 301  # the case the test is about: more than bf16's 256 exact integers
    assert torch.equal(t.size[..., 0], counts.float())
    assert t.size.sum() == 626


def test_sizes_stay_fp32_under_autocast():
    model = _avg_model()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), tome.trace() as t:
        model(input_for("mae_avgpool"))
    assert t.size.dtype == torch.float32
    assert torch.equal(t.size, t.source.float().sum(-1, keepdim=True))
