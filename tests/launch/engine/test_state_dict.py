"""The one checkpoint loader, on checkpoints built from the official key layouts
(tests/fixtures/official_keys.yaml) and served from 127.0.0.1: every tensor lands where the
official code puts it, heads are kept or initialised as the official fine-tuning does, only
allow-listed objects are unpickled, and the submission-time check reads shapes only."""
import argparse
import os
import re

import numpy as np
import pytest
import torch
import yaml

from audio.model import build_audio_vit, load_audiomae_checkpoint
from image.checkpoint import load_image_checkpoint
from image.model import build_image_model
from launch.engine.errors import ConfigError
from video.model import build_video_vit, load_mae_st_checkpoint


from tests.repo import FIXTURES  # noqa: E402

FIXTURE = os.path.join(FIXTURES, "official_keys.yaml")
with open(FIXTURE) as _f:
    FAMILIES = yaml.safe_load(_f)["families"]

IMAGE = dict(D=32, M=128, N=4, p=16, F=16)
VIDEO = dict(D=64, M=256, S=4, T=2, t=2, p=16, F=16)
AUDIO = dict(D=64, M=256, N=512, p=16, F=16)
DEPTH = 2


def _model(family, classes):
    if family.startswith("mae_st"):
        return build_video_vit("micro", classes, num_frames=4, img_size=32), load_mae_st_checkpoint, VIDEO
    if family.startswith("audiomae"):
        return build_audio_vit("micro", num_classes=classes), load_audiomae_checkpoint, AUDIO
    name = "deit_small_patch16_224" if family == "deit_timm" else "mae_vit_base_patch16"
    model = build_image_model(name, img_size=32, depth=DEPTH, embed_dim=32, num_heads=2, num_classes=classes)
    return model, load_image_checkpoint, IMAGE


def _official_state(family, sizes, classes, seed=0):
    """Random tensors under the official names and shapes of the fixture."""
    gen = torch.Generator().manual_seed(seed)
    env = dict(sizes, C=classes)
    state = {}
    for pattern, shape in FAMILIES[family]["keys"].items():
        dims = [int(eval(str(d), {}, env)) for d in shape]
        for i in range(DEPTH if "{i}" in pattern else 1):
            for j in range(1 if "{j}" in pattern else 1):
                key = pattern.format(i=i, j=j)
                state[key] = torch.randn(dims, generator=gen)
    return state


def _save(family, state, path):
    spec = FAMILIES[family]
    obj = {spec["wrapper"]: state}
    for key, value in (spec.get("extras") or {}).items():
        obj[key] = argparse.Namespace(lr=1e-3, model="vit") if value == "namespace" else value
    torch.save(obj, path)


def _where(family, key):
    """Where the official code puts a checkpoint key in this project's model (None: unused)."""
    if key.startswith(("decoder_", "mask_token")):
        return None
    if family.startswith("mae_st"):
        if key.startswith("norm."):
            return key.replace("norm.", "fc_norm.")  # models_vit.py applies norm after the pool
        m = re.match(r"blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)", key)
        if m:
            return (f"blocks.{m[1]}.attn.qkv.{m[3]}", "qkv".index(m[2]))
        return key
    if key.startswith("norm.") and family in ("mae_pretrained", "audiomae_pretrained"):
        return None  # the fine-tuning model pools first and starts fc_norm fresh
    return key


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_official_layout_served_by_url_lands_where_the_official_code_puts_it(family, server, cache, tmp_path):
    model, load, sizes = _model(family, 5)
    state = _official_state(family, sizes, 5)
    _save(family, state, tmp_path / "ckpt.pth")
    server.files[f"/{family}/ckpt.pth"] = (tmp_path / "ckpt.pth").read_bytes()
    report = load(model, f"{server.url}/{family}/ckpt.pth")
    own = model.state_dict()
    used = set()
    for key, value in state.items():
        place = _where(family, key)
        if place is None:
            assert key in report["dropped"]
            continue
        if isinstance(place, tuple):  # one third of a fused qkv projection
            name, part = place
            torch.testing.assert_close(own[name].chunk(3, dim=0)[part], value, rtol=0, atol=0)
            used.add(name)
        else:
            torch.testing.assert_close(own[place], value, rtol=0, atol=0)
            used.add(place)
    assert report["wrapper"] == FAMILIES[family]["wrapper"] and report["unexpected"] == []
    # what the checkpoint does not fill: nothing for fine-tuned ones; head (+ fc_norm) otherwise
    expected_missing = sorted(set(own) - used)
    assert sorted(report["missing"]) == expected_missing
    if "pretrained" in family:
        assert {k.split(".")[0] for k in expected_missing} <= {"head", "fc_norm"} and report["head"] == "absent"
    else:
        assert expected_missing == [] and report["head"] == "loaded"


@pytest.mark.parametrize("family", ["mae_pretrained", "audiomae_pretrained", "mae_st_pretrained"])
def test_headless_checkpoint_gets_the_official_head_init_std_2e5(family, tmp_path, cache):
    # main_finetune.py (MAE, mae_st) and main_finetune_as.py (Audio-MAE):
    #   trunc_normal_(model.head.weight, std=2e-5). 527 classes give >30k samples.
    model, load, sizes = _model(family, 527)
    default_std = model.head.weight.std().item()
    _save(family, _official_state(family, sizes, 527), tmp_path / "pre.pth")
    report = load(model, str(tmp_path / "pre.pth"))
    weight = model.head.weight.detach().double()
    n = weight.numel()
    # sample std of n normal draws: relative standard error 1/sqrt(2n) (< 0.4% here); allow 5 of them
    assert abs(weight.std().item() / 2e-5 - 1) < 5 / np.sqrt(2 * n)
    assert abs(weight.mean().item()) < 5 * 2e-5 / np.sqrt(n)
    assert default_std > 100 * 2e-5 and report["head_init"] == 2e-5


@pytest.mark.parametrize("family", ["mae_finetuned", "audiomae_finetuned", "mae_st_finetuned", "deit_timm"])
def test_checkpoint_with_a_head_keeps_it(family, tmp_path, cache):
    model, load, sizes = _model(family, 5)
    state = _official_state(family, sizes, 5, seed=3)
    _save(family, state, tmp_path / "ft.pth")
    report = load(model, str(tmp_path / "ft.pth"))
    assert torch.equal(model.head.weight, state["head.weight"]) and torch.equal(model.head.bias, state["head.bias"])
    assert report["head"] == "loaded" and report["head_init"] is None


def test_timm_models_other_than_mae_keep_timms_head_init(tmp_path, cache):
    model, load, sizes = _model("deit_timm", 1000)
    state = {k: v for k, v in _official_state("deit_timm", sizes, 1000).items() if not k.startswith("head.")}
    _save("deit_timm", state, tmp_path / "nohead.pth")
    before = model.head.weight.detach().clone()
    load(model, str(tmp_path / "nohead.pth"))
    assert torch.equal(model.head.weight, before)


class _Payload:
    """Unpickling this would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_payload_outside_the_allow_list_is_refused(tmp_path, cache):
    model, load, sizes = _model("mae_finetuned", 5)
    marker = tmp_path / "pwned"
    torch.save({"model": _official_state("mae_finetuned", sizes, 5), "args": _Payload(marker)},
               tmp_path / "evil.pth")
    with pytest.raises(ConfigError) as err:
        load(model, str(tmp_path / "evil.pth"))
    message = str(err.value)
    assert "\n" not in message and "not unpickled in full" in message and "system" in message
    assert not marker.exists()


def test_allow_listed_namespace_and_numpy_scalars_load(tmp_path, cache):
    model, load, sizes = _model("mae_finetuned", 5)
    torch.save({"model": _official_state("mae_finetuned", sizes, 5), "epoch": 99,
                "args": argparse.Namespace(lr=np.float64(1e-3), input_size=224), "best_acc": np.float32(83.6)},
               tmp_path / "ok.pth")
    assert load(model, str(tmp_path / "ok.pth"))["head"] == "loaded"


def test_check_only_reads_shapes_into_a_meta_model_and_loads_nothing(tmp_path, cache):
    with torch.device("meta"):
        model, load, sizes = _model("mae_st_finetuned", 5)
    _save("mae_st_finetuned", _official_state("mae_st_finetuned", sizes, 5), tmp_path / "ft.pth")
    report = load(model, str(tmp_path / "ft.pth"), check_only=True)
    assert report["missing"] == [] and report["fused_qkv"] == DEPTH
    assert all(p.is_meta for p in model.parameters())
    with torch.device("meta"):
        wide = build_video_vit("tiny", 5, num_frames=4, img_size=32)
    with pytest.raises(ConfigError, match=r"has shape \(64, 3, 2, 16, 16\) but the model needs \(192"):
        load_mae_st_checkpoint(wide, str(tmp_path / "ft.pth"), check_only=True)


# -- the submission-time check --------------------------------------------------------------------

def _config(tmp_path, checkpoint):
    from image.demo import write_demo_images
    root = write_demo_images(tmp_path / "imgs", num_classes=2, train_per_class=1, val_per_class=1, size=16)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({
        "task": "image", "name": "check", "launch": {"out_dir": str(tmp_path / "runs"), "cluster": "local"},
        "data": {"root": str(root), "family": "demo", "img_size": 64, "rand_augment": None},
        "model": {"name": "demo_vit_tiny", "num_classes": 8, "checkpoint": checkpoint,
                  "kwargs": {"depth": 2}},
        "train": {"epochs": 1, "batch_size": 2}}))
    return str(path)


def _tiny_checkpoint(path, **kwargs):
    src = build_image_model("demo_vit_tiny", num_classes=8, depth=2, **kwargs)
    torch.save({"model": src.state_dict(), "args": argparse.Namespace(lr=1e-3)}, path)
    return str(path)


def test_dry_run_rejects_a_checkpoint_that_does_not_fit_before_submitting(tmp_path, cache, capsys):
    from launch.submit import main
    wrong = _tiny_checkpoint(tmp_path / "wide.pth", embed_dim=96, num_heads=3)
    assert main([_config(tmp_path, wrong), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cls_token has shape (1, 1, 96) but the model needs (1, 1, 192)" in err
    good = _tiny_checkpoint(tmp_path / "good.pth")
    assert main([_config(tmp_path, good), "--dry-run"]) == 0
    capsys.readouterr()
    assert main([_config(tmp_path, str(tmp_path / "typo.pth")), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "model.checkpoint" in err and "typo.pth' does not exist" in err


def test_dry_run_checks_a_cached_url_and_downloads_nothing_new(tmp_path, cache, server, capsys):
    from launch.submit import main
    from launch.engine.weights import fetch
    wrong = _tiny_checkpoint(tmp_path / "wide.pth", embed_dim=96, num_heads=3)
    server.files["/check/wide.pth"] = open(wrong, "rb").read()
    server.files["/check/later.pth"] = open(wrong, "rb").read()
    url = f"{server.url}/check/wide.pth"
    assert main([_config(tmp_path, f"{server.url}/check/later.pth"), "--dry-run"]) == 0
    assert "not in the cache yet" in capsys.readouterr().err and server.gets["/check/later.pth"] == 0
    fetch(url)  # the login-node prefetch
    assert main([_config(tmp_path, url), "--dry-run"]) == 2
    assert "cls_token has shape (1, 1, 96)" in capsys.readouterr().err
