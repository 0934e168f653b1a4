"""Published transformers classifiers through the engine's video and audio tasks.

The checkpoints are tiny random models written with ``save_pretrained`` (config.json plus
model.safetensors, the layout of the MCG-NJU/videomae-* and MIT/ast-* hub repositories): loaded
from a local directory, and served as ``hf-hub:<org>/<name>`` repositories from 127.0.0.1
(``tests/weights_server.py``) through the real ``huggingface_hub`` and ``launch.engine.weights``.
"""
import os
import socket

import pytest
import torch

transformers = pytest.importorskip("transformers")

import tome  # noqa: E402
from launch.engine.config import from_dict  # noqa: E402
from launch.engine.errors import ConfigError  # noqa: E402
from launch.engine.tasks import get_task  # noqa: E402
from tome.flops import model_gflops  # noqa: E402

SMALL = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, intermediate_size=96)


def _save(model, path):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "token" in name or "position" in name:
                p.normal_(0, 0.5)
    model.save_pretrained(path)
    return path


@pytest.fixture
def videomae_dir(tmp_path):
    config = transformers.VideoMAEConfig(image_size=32, patch_size=8, num_frames=4, tubelet_size=2,
                                         num_labels=5, **SMALL)
    return str(_save(transformers.VideoMAEForVideoClassification(config), tmp_path / "videomae"))


@pytest.fixture
def ast_dir(tmp_path):
    config = transformers.ASTConfig(patch_size=16, frequency_stride=10, time_stride=10, max_length=96,
                                    num_mel_bins=56, num_labels=6, **SMALL)
    return str(_save(transformers.ASTForAudioClassification(config), tmp_path / "ast"))


def _cfg(task, checkpoint, num_classes, **data):
    return from_dict({"task": task, "name": "t", "data": data,
                      "model": {"checkpoint": checkpoint, "num_classes": num_classes}})


def test_videomae_logits_equal_the_publishers_model(videomae_dir):
    cfg = _cfg("video", videomae_dir, 5, num_frames=4, crop_size=32)
    task = get_task("video")
    model = task.build_model(cfg).eval()
    publisher = transformers.VideoMAEForVideoClassification.from_pretrained(videomae_dir).eval()
    x = torch.randn(2, *task.input_shape(cfg))  # engine layout (B, C, T, H, W)
    with torch.no_grad():
        ref = publisher(pixel_values=x.transpose(1, 2)).logits
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
        task.patch(model, cfg)
        model.r = 0
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
        model.r = 4
        with tome.trace() as t:
            merged = model(x)
    assert merged.shape == (2, 5)
    assert t.tokens == [28, 24]
    assert model_gflops(model, 32, t.tokens) < model_gflops(model, 32, [32, 32])


def test_ast_logits_equal_the_publishers_model(ast_dir):
    cfg = _cfg("audio", ast_dir, 6, target_length=96, mel_bins=56)
    task = get_task("audio")
    model = task.build_model(cfg).eval()
    publisher = transformers.ASTForAudioClassification.from_pretrained(ast_dir).eval()
    x = torch.randn(2, *task.input_shape(cfg))  # engine layout (B, 1, frames, mel)
    with torch.no_grad():
        ref = publisher(input_values=x[:, 0]).logits
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
        task.patch(model, cfg)
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)


def test_ast_band_option_reaches_the_patch(ast_dir):
    cfg = from_dict({"task": "audio", "name": "t", "data": {"target_length": 96, "mel_bins": 56},
                     "model": {"checkpoint": ast_dir, "num_classes": 6}, "tome": {"band": 2}})
    task = get_task("audio")
    model = task.patch(task.build_model(cfg), cfg)
    assert model._tome.protected == 2
    assert model._tome.groups.shape == (2 + 5 * 9,)


def test_wrong_class_count_is_a_clear_error(videomae_dir):
    with pytest.raises(ConfigError, match="has 5 classes but model.num_classes=400"):
        get_task("video").build_model(_cfg("video", videomae_dir, 400, num_frames=4, crop_size=32))


def test_directory_without_config_is_not_a_transformers_source(tmp_path):
    from launch.engine.hf_models import is_transformers_source
    assert not is_transformers_source(str(tmp_path))
    assert is_transformers_source("hf-hub:MCG-NJU/videomae-base-finetuned-kinetics")
    assert not is_transformers_source(None)


@pytest.mark.parametrize("name", ["videomae_b", "ast"])
def test_bench_limit_model_keeps_the_merged_token_counts(name, monkeypatch):
    """bench --model hf:<name>: the limit drops as many tokens per layer as merging removes."""
    import argparse

    from launch.engine import hf_bench
    tiny = {"videomae_b": (transformers.VideoMAEForVideoClassification(transformers.VideoMAEConfig(
                image_size=32, patch_size=8, num_frames=4, num_labels=5, **SMALL)), "video"),
            "ast": (transformers.ASTForAudioClassification(transformers.ASTConfig(
                max_length=96, num_mel_bins=56, num_labels=6, **SMALL)), "spectrogram")}
    monkeypatch.setattr(hf_bench, "_network", lambda n: tiny[n])
    args = argparse.Namespace(model=f"hf:{name}", r=4, inflection=None)
    models, merged, rs = hf_bench.build(args, torch.device("cpu"))
    layers = (models["limit"].net.videomae.encoder.layer if name == "videomae_b"
              else models["limit"].net.audio_spectrogram_transformer.layers)
    counts = []
    hooks = [layer.register_forward_hook(lambda m, i, o: counts.append(o.shape[1])) for layer in layers]
    x = torch.randn(2, *args.input_shape)
    with torch.no_grad(), tome.trace() as t:
        merged(x)
    with torch.no_grad():
        out = models["limit"](x)
    for h in hooks:
        h.remove()
    assert counts == t.tokens
    assert out.shape[0] == 2 and args.tokens_in == (32 if name == "videomae_b" else 47)


# -- the published repositories, served from 127.0.0.1 -----------------------------------------

@pytest.fixture
def hub(server, cache, monkeypatch):
    """A local hub: huggingface_hub's endpoint pointed at the 127.0.0.1 server (what HF_ENDPOINT
    sets at import), and a fresh TOME_CACHE."""
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "ENDPOINT", server.url)
    monkeypatch.setattr(hub_constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        server.url + "/{repo_id}/resolve/{revision}/{filename}")
    return server


FAMILIES = {  # task -> (hub repository, its files' directory fixture, class, engine data keys, labels)
    "video": ("MCG-NJU/videomae-tiny-finetuned-test", "videomae_dir", "VideoMAEForVideoClassification",
              dict(num_frames=4, crop_size=32), 5),
    "audio": ("MIT/ast-tiny-finetuned-test", "ast_dir", "ASTForAudioClassification",
              dict(target_length=96, mel_bins=56), 6),
}


@pytest.mark.parametrize("task_name", sorted(FAMILIES))
def test_hub_repository_loads_through_the_engine_with_the_publishers_logits_then_offline(
        task_name, hub, tmp_path, request):
    from launch.engine import weights

    repo, fixture, cls_name, data, labels = FAMILIES[task_name]
    files_dir = request.getfixturevalue(fixture)
    names = sorted(os.listdir(files_dir))
    assert names == ["config.json", "model.safetensors"]  # the published layout
    for name in names:
        with open(os.path.join(files_dir, name), "rb") as f:
            hub.hub[(repo, name)] = f.read()
    source = f"hf-hub:{repo}"
    cfg = _cfg(task_name, source, labels, **data)
    task = get_task(task_name)
    publisher = getattr(transformers, cls_name).from_pretrained(files_dir).eval()
    x = torch.randn(2, *task.input_shape(cfg))
    with torch.no_grad():
        ref = publisher(x.transpose(1, 2) if task_name == "video" else x[:, 0]).logits
        model = task.build_model(cfg).eval()
        torch.testing.assert_close(model(x), ref, atol=1e-6, rtol=1e-6)
    for name in names:  # each file downloaded once, into TOME_CACHE
        assert hub.gets[f"/{repo}/resolve/{hub.commit}/{name}"] == 1
    snapshot = weights.cached(source)
    assert snapshot and snapshot.startswith(str(tmp_path / "cache" / "hf"))
    assert sorted(os.listdir(snapshot)) == names
    with open(os.path.join(snapshot, "model.safetensors"), "rb") as f:
        assert f.read() == hub.hub[(repo, "model.safetensors")]

    hub.stop()
    with pytest.raises(OSError):  # nothing answers at the hub's address any more
        socket.create_connection(("127.0.0.1", int(hub.url.rsplit(":", 1)[1])), timeout=1).close()
    with torch.no_grad():
        again = task.build_model(cfg).eval()
        torch.testing.assert_close(again(x), ref, atol=1e-6, rtol=1e-6)


def test_hub_weights_corrupted_in_transit_are_refused_then_a_retry_downloads_them_afresh(
        hub, videomae_dir):
    repo = "MCG-NJU/videomae-tiny-finetuned-test"
    for name in os.listdir(videomae_dir):
        with open(os.path.join(videomae_dir, name), "rb") as f:
            hub.hub[(repo, name)] = f.read()
    hub.corrupt.add((repo, "model.safetensors"))  # one flipped bit: the length is unchanged
    cfg = _cfg("video", f"hf-hub:{repo}", 5, num_frames=4, crop_size=32)
    task = get_task("video")
    with pytest.raises(ConfigError) as err:
        task.build_model(cfg)
    message = str(err.value)
    assert "\n" not in message and f"hf-hub:{repo}/model.safetensors" in message and "sha256" in message
    hub.corrupt.clear()
    publisher = transformers.VideoMAEForVideoClassification.from_pretrained(videomae_dir).eval()
    x = torch.randn(1, *task.input_shape(cfg))
    with torch.no_grad():
        torch.testing.assert_close(task.build_model(cfg).eval()(x), publisher(x.transpose(1, 2)).logits,
                                   atol=1e-6, rtol=1e-6)
    assert hub.gets[f"/{repo}/resolve/{hub.commit}/model.safetensors"] == 2
