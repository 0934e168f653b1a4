"""Recipe arithmetic and the official values: lr schedules on hand-worked numbers, effective batch,
accumulation windows, repeated augmentation, DeiT init, --print, docs/recipes.md, compare labels,
and the paper numbers against a transcription of the official README."""
import io
import json
import math
import os
import re
from contextlib import redirect_stdout
from types import SimpleNamespace

import pytest
import torch
import yaml

from launch import submit
from launch.runs import recipes_table, report
from launch.engine.config import resolve
from launch.engine.lr_schedule import half_cosine, lr_at_step, timm_epoch_cosine
from launch.engine.official import ROWS
from launch.engine.paper import README_ROWS as PAPER
from launch.engine.ra_sampler import RepeatedAugSampler
from launch.engine.steps import accum_window, effective_batch, peak_lr

from tests.repo import REPO  # noqa: E402


# ------------------------------------------------------------------ lr schedules

DEIT = dict(peak_lr=1e-3, min_lr=1e-5, warmup=5, warmup_lr=1e-6, epochs=300)


@pytest.mark.parametrize("epoch, expected", [
    (0, 1e-6),                      # set at construction, before any step
    (1, 1e-6),                      # step(0) after epoch 0: t=0 of the warm-up
    (2, 1e-6 + 1 * (1e-3 - 1e-6) / 5),   # t=1: 2.008e-4
    (5, 1e-6 + 4 * (1e-3 - 1e-6) / 5),   # t=4: 8.002e-4, last warm-up value
    (6, 0.000999321617),            # t=5: 1e-5 + 0.5 * 9.9e-4 * (1 + cos(3 deg)), cos(3 deg)=0.9986295
    (151, 0.000505),                # t=150 = half of t_initial: 1e-5 + 0.5 * 9.9e-4
    (300, 1e-5 + 0.5 * 9.9e-4 * (1 - 0.9999451694)),  # t=299: cos(179.4 deg) = -0.9999451694
])
def test_deit_schedule_matches_timm_032_stepped_after_each_epoch(epoch, expected):
    assert timm_epoch_cosine(epoch, **DEIT) == pytest.approx(expected, rel=1e-6)


def test_deit_schedule_is_constant_within_an_epoch_and_mae_schedule_is_not():
    deit = SimpleNamespace(lr_schedule="timm_epoch_cosine", min_lr=1e-5, warmup_epochs=5,
                           warmup_lr=1e-6, epochs=300)
    mae = SimpleNamespace(lr_schedule="half_cosine", min_lr=1e-6, warmup_epochs=5, warmup_lr=0.0,
                          epochs=50)
    assert lr_at_step(deit, 2, 0, 100, 1e-3) == lr_at_step(deit, 2, 99, 100, 1e-3)
    assert lr_at_step(mae, 2, 0, 100, 1e-3) < lr_at_step(mae, 2, 99, 100, 1e-3)


@pytest.mark.parametrize("epoch, expected", [
    (0.0, 0.0), (2.5, 5e-4),                      # linear warm-up from 0
    (27.5, 1e-6 + 0.5 * (1e-3 - 1e-6)),           # half-way through the cosine: 5.005e-4
    (50.0, 1e-6),
])
def test_mae_half_cosine_matches_lr_sched(epoch, expected):
    assert half_cosine(epoch, 1e-3, 1e-6, 5, 50) == pytest.approx(expected, rel=1e-9, abs=1e-15)


# ------------------------------------------------------------------ batch arithmetic

def test_last_partial_accumulation_window_divides_by_its_real_size():
    # 10 micro-batches, accumulation 4: windows of 4, 4 and a last one of 2
    assert [accum_window(i, 10, 4) for i in range(10)] == [4] * 8 + [2] * 2
    assert [accum_window(i, 6, 3) for i in range(6)] == [3] * 6
    assert [accum_window(i, 5, 1) for i in range(5)] == [1] * 5


def test_effective_batch_counts_repeated_views_like_mae_st():
    cfg = resolve(os.path.join(REPO, "video/configs/vitl_k400.yaml"))
    # mae_st: 2 per GPU x 1 accumulation x 64 GPUs x 2 repeated views = 256, lr = 2.4e-3 x 256 / 256
    assert effective_batch(cfg.train, 64, 2) == 256
    assert peak_lr(cfg.train, 256) == pytest.approx(2.4e-3)


def _print(path, *overrides):
    out = io.StringIO()
    with redirect_stdout(out):
        assert submit.main([path, "--print", *overrides]) == 0
    return list(yaml.safe_load_all(out.getvalue()))


def test_print_shows_resolved_config_and_derived_values():
    (doc,) = _print(os.path.join(REPO, "video/configs/vitl_k400.yaml"))
    assert doc["train"]["clip_grad"] == 5.0 and doc["model"]["head_drop"] == 0.3
    assert doc["derived"]["world_size"] == 64 and doc["derived"]["effective_batch"] == 256
    assert doc["derived"]["lr"] == pytest.approx(2.4e-3)
    (doc,) = _print(os.path.join(REPO, "audio/configs/audiomae_as20k.yaml"))
    assert (doc["derived"]["effective_batch"], doc["derived"]["lr"]) == (32, pytest.approx(1.25e-4))


def test_print_touches_no_data(tmp_path):
    root = tmp_path / "never_written"
    docs = _print(os.path.join(REPO, "image/configs/demo.yaml"), f"data.root={root}")
    assert len(docs) == 2 and all("derived" in d for d in docs)  # one document per stage
    assert not root.exists()


@pytest.mark.parametrize("path, expected", [
    ("image/configs/mae_vit_l16_offshelf.yaml", False), ("video/configs/vitl_k400_offshelf.yaml", False),
    ("audio/configs/audiomae_offshelf.yaml", False), ("image/configs/ablation_base.yaml", False),
    ("image/configs/augreg_vit_b16.yaml", True), ("image/configs/swag_vit_l16_512.yaml", True)])
def test_print_shows_prop_attn_of_every_off_the_shelf_family(path, expected):
    # ToMe: off for off-the-shelf MAE-family models (tome/patch/mae.py, README.md:115), on by
    # default for timm and SWAG models (tome/patch/timm.py:117, swag.py:138)
    raw = yaml.safe_load(open(os.path.join(REPO, path)))
    overrides = [] if "name" in raw else ["name=x"]
    for doc in _print(os.path.join(REPO, path), *overrides):
        assert doc["tome"]["prop_attn"] is expected


# ------------------------------------------------------------------ official values

def test_every_config_holds_its_documented_official_value():
    cache = {}
    bad = [(r.config, r.key, r.value) for r in ROWS if recipes_table.check_row(r, cache)[1].startswith("MISMATCH")]
    assert not bad


def test_a_changed_config_value_is_reported_as_mismatch(tmp_path):
    row = next(r for r in ROWS if r.key == "model.head_drop" and "vitl_k400" in r.config)
    cfg = resolve(os.path.join(REPO, row.config), ["model.head_drop=0.5"])
    assert not recipes_table.same(recipes_table.config_value(cfg, row.key), row.value)
    assert not recipes_table.same(1, True) and not recipes_table.same(0.0, None) and recipes_table.same(5, 5.0)


def test_docs_recipes_md_is_generated_from_the_configs():
    text, bad = recipes_table.render()
    assert not bad
    with open(recipes_table.DOC) as f:
        assert f.read() == text, "docs/recipes.md is stale: run python -m launch.recipes"


def test_every_official_row_names_a_source_and_an_existing_config():
    for r in ROWS:
        assert r.source and os.path.isfile(os.path.join(REPO, r.config)), r


# ------------------------------------------------------------------ repeated augmentation, init

def test_repeated_aug_sampler_deals_three_copies_to_different_processes():
    ranks = [list(RepeatedAugSampler(4, rank, 2, seed=0, repeats=3)) for rank in range(2)]
    idx = [[i for i, _ in r] for r in ranks]
    # 4 images x 3 copies = 12 positions, dealt round-robin: 6 per process
    assert sorted(idx[0] + idx[1]) == sorted([0, 1, 2, 3] * 3)
    assert idx[0][0] == idx[1][0]                    # the first image's copies sit on both processes
    assert len({s for r in ranks for _, s in r}) == 12  # every copy gets its own augmentation seed
    # DeiT keeps floor(N // 256 * 256 / world) per process: 1000 images on 8 processes -> 96
    assert len(RepeatedAugSampler(1000, 0, 8, repeats=3)) == 96


def test_deit_init_draws_cls_token_and_pos_embed_with_std_002():
    import timm
    from image.init import apply_init
    torch.manual_seed(0)
    model = timm.create_model("deit_tiny_patch16_224", num_classes=10)
    assert model.cls_token.std().item() < 1e-4               # timm 1.0: normal(std=1e-6)
    apply_init(model, "deit", None)
    # trunc_normal_ cuts at +-2 (absolute), 100 std away: the std stays 0.02
    assert model.pos_embed.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.cls_token.abs().max().item() > 1e-3
    kept = model.pos_embed.clone()
    apply_init(model, "deit", "some/checkpoint.pth")           # a checkpoint replaces any init
    assert torch.equal(model.pos_embed, kept)


# ------------------------------------------------------------------ compare labels

def _run(tmp_path, name, cfg, results):
    d = tmp_path / name
    d.mkdir()
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return str(d)


def test_compare_attaches_paper_numbers_only_where_they_belong(tmp_path):
    rows = [{"r": 0, "acc1": 84.0, "throughput": 100.0}, {"r": 13, "acc1": 82.0, "throughput": 160.0}]
    const = _run(tmp_path, "const", {"task": "image", "paper": "augreg_vit_b16",
                                     "tome": {"r": 0, "inflection": None}, "train": {"epochs": 0}}, rows)
    decr = _run(tmp_path, "decr", {"task": "image", "paper": "augreg_vit_b16",
                                   "tome": {"r": 0, "inflection": -1.0}, "train": {"epochs": 0}}, rows)
    audio = _run(tmp_path, "audio", {"task": "audio", "paper": "t7_r40_trained",
                                     "tome": {"r": 40, "inflection": None}, "train": {"epochs": 100}},
                 [{"r": 0, "map": 47.0, "throughput": 10.0}, {"r": 40, "map": 46.8, "throughput": 20.0}])
    out = {(os.path.basename(r["run"]), r["r"]): r for r in report.collect([const, decr, audio])}
    assert out[("const", 13)]["paper_tome"] == 82.60
    assert out[("decr", 13)]["paper_tome"] is None             # constant-r number, decreasing run
    # Table 7, r40 trained: 46.0 mAP at 200 samples/s against 103 without merging
    assert out[("audio", 40)]["paper_tome"] == 46.0
    assert out[("audio", 40)]["paper_speedup"] == pytest.approx(200 / 103)
    assert out[("audio", 0)]["note"] == report.NOTE_MERGE_OFF  # merge-trained, merging off
    assert out[("const", 0)]["note"] == ""


def _config_run(tmp_path, name, config, results, overrides=()):
    """A run directory holding the resolved repository config, as the engine saves it."""
    return _run(tmp_path, name, resolve(os.path.join(REPO, config), overrides).to_dict(), results)


def test_compare_puts_video_and_audio_paper_numbers_beside_the_right_run_and_r(tmp_path):
    # Expected values are written out by hand from their sources: Pollard & Wray's K400 'merge' row
    # (62.09 -> 56.10 top-1, 186.72 -> 476.28 clips/s at r=150, so a 476.28 / 186.72 = 2.5508x
    # speed-up); ToMe paper (arXiv v1) Table 5 (r65 constant, trained: 84.4; no speeds) and Table 7
    # (r40 trained: 46.0 mAP at 200 samples/s, 103 without merging).
    video = [{"r": r, "acc1": 80.0 - r / 100, "throughput": 100.0 + r} for r in (0, 65)]
    audio = [{"r": r, "map": 47.0 - r / 100, "throughput": 10.0 + r} for r in (0, 20, 40)]
    runs = [
        _config_run(tmp_path, "videomae_b", "video/configs/videomae_vitb_k400_offshelf.yaml",
                    [{"r": r, "acc1": 60.0, "throughput": 100.0} for r in (0, 25, 50, 75, 100, 150)]),
        _config_run(tmp_path, "vitl_tome", "video/configs/vitl_k400.yaml", video),
        _config_run(tmp_path, "as2m_tome", "audio/configs/audiomae_as2m.yaml", audio),
        _config_run(tmp_path, "as2m_r20", "audio/configs/audiomae_as2m.yaml", audio, ["tome.r=20"]),
        _config_run(tmp_path, "as2m_offshelf", "audio/configs/audiomae_offshelf.yaml", audio),
    ]
    out = {(os.path.basename(r["run"]), r["r"]): r for r in report.collect(runs)}

    def paper(run, r):
        row = out[(run, r)]
        return row["paper_base"], row["paper_tome"], row["paper_speedup"]

    # video, off-the-shelf VideoMAE-B: the published number at r=150 only
    assert paper("videomae_b", 150)[:2] == (62.09, 56.10)
    assert paper("videomae_b", 150)[2] == pytest.approx(2.5508, abs=1e-4)
    assert all(paper("videomae_b", r) == (62.09, None, None) for r in (0, 25, 50, 75, 100))
    # video, MAE-ST ViT-L trained with merging at r=65: Table 5's 84.4 at r=65, no speed in Table 5
    assert paper("vitl_tome", 65) == (None, 84.4, None)
    assert paper("vitl_tome", 0) == (None, None, None)
    assert out[("vitl_tome", 0)]["note"] == report.NOTE_MERGE_OFF
    # audio, trained with merging at r=40: Table 7's 46.0 at 200 / 103 samples/s
    assert paper("as2m_tome", 40)[1:] == (46.0, pytest.approx(200 / 103))
    assert paper("as2m_tome", 20) == (None, None, None)
    # the same config trained at r=20 is not the r=40 row's model
    assert paper("as2m_r20", 40) == (None, None, None)
    # audio off-the-shelf names the Table 7 panel, laid out by launch/tables.py, not by compare
    assert all(paper("as2m_offshelf", r) == (None, None, None) for r in (0, 20, 40))


# ------------------------------------------------------------------ paper numbers

# facebookresearch/ToMe README.md (commit af95e4b), lines 63-66, 74-75, 96-98, 111-113, 121,
# transcribed by hand: model, original acc, original im/s, r, ToMe acc, ToMe im/s.
README_TABLE = """
augreg_vit_s16 81.41 953 13 79.30 1564
augreg_vit_b16 84.57 309 13 82.60 511
augreg_vit_l16 85.82 95 7 84.26 167
augreg_vit_l16_384 86.92 28 23 86.14 56
deit_s16_tome 79.8 930 13 79.36 1550
deit_ti16_tome 71.8 2558 13 71.27 3980
swag_vit_b16_384 85.30 85.7 45 84.59 167.7
swag_vit_l16_512 88.06 12.8 40 87.80 26.3
swag_vit_h14_518 88.55 4.7 40 88.25 9.8
mae_vit_b16_tome 83.62 309 16 81.91 603
mae_vit_l16_tome 85.66 93 8 85.09 183
mae_vit_h14_tome 86.88 35 7 86.46 63
mae_vit_l16_offshelf 85.96 93 8 84.22 183
"""


def test_paper_image_rows_match_the_official_readme():
    for line in README_TABLE.strip().splitlines():
        pid, *nums = line.split()
        base, base_speed, r, value, speed = map(float, nums)
        _, _, b, bs, rr, v, s, source = PAPER[pid]
        assert (b, bs, rr, v, s) == (base, base_speed, int(r), value, speed), pid
        assert re.search(r"README\.md:\d+", source), pid


def test_video_evaluates_one_view_between_epochs_and_all_views_at_the_end():
    from launch.engine.tasks import get_task
    cfg = resolve(os.path.join(REPO, "video/configs/vitl_k400.yaml"))
    interim = get_task("video").interim_eval_config(cfg)
    assert (interim.data.num_temporal_clips, interim.data.num_spatial_crops) == (1, 1)
    assert (cfg.data.num_temporal_clips, cfg.data.num_spatial_crops) == (10, 1)  # untouched: the paper's 1 x 10
    assert get_task("video").repeated_views(cfg) == 2 and get_task("image").repeated_views(cfg) == 1


def test_compare_gives_a_merge_trained_paper_number_only_to_the_run_trained_at_its_r(tmp_path):
    rows = [{"r": 0, "acc1": 80.0, "throughput": 900.0}, {"r": 13, "acc1": 79.0, "throughput": 1500.0}]
    runs = [_run(tmp_path, f"r{r}", {"task": "image", "paper": "deit_s16_tome",
                                     "tome": {"r": r, "inflection": None}, "train": {"epochs": 300}}, rows)
            for r in (8, 13)]
    out = {(os.path.basename(r["run"]), r["r"]): r for r in report.collect(runs)}
    assert out[("r13", 13)]["paper_tome"] == 79.36
    assert out[("r8", 13)]["paper_tome"] is None


@pytest.mark.parametrize("fp32_scores, expected", [(True, torch.float32), (False, torch.bfloat16)])
def test_evaluation_autocast_follows_eval_amp_unless_the_task_needs_fp32_scores(fp32_scores, expected):
    from launch.engine.loop import evaluate

    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"input": torch.full((3,), float(i)), "target": torch.tensor(i % 2),
                    "index": torch.tensor(i), "group": torch.tensor(i), "skipped": torch.tensor(0)}

    seen = []

    class Model(torch.nn.Linear):
        def forward(self, x):
            out = super().forward(x)
            seen.append(out.dtype)
            return out

    task = SimpleNamespace(fp32_scores=fp32_scores, metrics=lambda s, t, i: {"n": len(s)})
    cfg = SimpleNamespace(eval=SimpleNamespace(amp="bf16", batch_size=2),
                          launch=SimpleNamespace(num_workers=0))
    env = SimpleNamespace(rank=0, world_size=1, device=torch.device("cpu"))
    assert evaluate(Model(3, 2), task, cfg, Data(), env)["n"] == 4
    assert set(seen) == {expected}


def test_engine_runs_the_deit_options_end_to_end(tmp_path):
    """Repeated augmentation x3, accumulation over 3 micro-batches, the per-epoch timm schedule and a
    bf16 evaluation run through the engine; the logged lr of each epoch is the hand-worked one."""
    import textwrap
    from launch.engine.loop import run
    from launch.engine.tasks import get_task
    path = tmp_path / "deit.yaml"
    path.write_text(textwrap.dedent(f"""\
        _base_: {REPO}/image/configs/demo.yaml
        name: deit_tiny
        data: {{root: {tmp_path}/data, demo_classes: 2, demo_train_per_class: 8, demo_val_per_class: 2,
               demo_size: 16, img_size: 16, repeated_aug: 3}}
        model: {{kwargs: {{patch_size: 8, embed_dim: 32, depth: 2, num_heads: 2}}, num_classes: 2}}
        tome: {{r: 1, eval_r: [0]}}
        train: {{epochs: 3, batch_size: 4, accum_steps: 3, lr: 1.0e-3, min_lr: 1.0e-4, warmup_epochs: 1,
                warmup_lr: 1.0e-5, lr_schedule: timm_epoch_cosine, eval_every: 1}}
        eval: {{amp: bf16, throughput: false}}
        launch: {{out_dir: {tmp_path}/runs, num_workers: 0}}
        stages: []
        """))
    cfg = resolve(str(path))
    get_task("image").prepare(cfg)
    run(cfg, str(tmp_path / "run"))
    epochs = [json.loads(l) for l in open(tmp_path / "run" / "log.jsonl")]
    # epoch 0: warmup_lr; epoch 1: t=0 -> warmup_lr; epoch 2: t=1 -> 1e-4 + 0.5 * 9e-4 * (1 + cos(pi/3))
    assert [e["lr"] for e in epochs] == pytest.approx([1e-5, 1e-5, 7.75e-4])
    assert all(math.isfinite(e["train_loss"]) for e in epochs)
