"""Published numbers our configs reproduce, each with its source, in the paper's own units.

Two kinds of rows:

* ``README_ROWS``: the official ToMe README's image rows (ImageNet-1k val top-1, V100 fp32 im/s;
  facebookresearch/ToMe README.md, line numbers below), which repeat the paper's, plus other
  published off-the-shelf numbers (VideoMAE, Audio-MAE AS-20K). ``launch/compare.py`` puts them
  beside a run whose config names them (``paper: <id>``).
* ``TABLE_ROWS`` and ``PANELS``: every row of the paper's Tables 1-7 and the points of Fig. 5, as
  transcribed from the arXiv v1 version of the paper's tables ("ToMe paper (arXiv v1)
  Table N"). A row says how a run must have been made to stand beside it: the r evaluated, the
  schedule, whether the model was trained with merging, the test views (video) and the config
  settings that tell the table's rows apart (``match``, dotted keys of the resolved config).
  ``launch/tables.py`` lays each table out as the paper does, ours beside theirs. A config names a
  row id or a panel id; every run of a panel-id config (a sweep) is matched to a row by the settings.

Throughputs were measured on another machine (one V100, fp32), so compare speed-ups (ToMe speed over
the model without merging), not raw speeds. Fig. 5 is a plot without printed values: what was read
off it is kept apart (``approx``) and is never shown as a published number.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

README = "facebookresearch/ToMe README.md"
SOURCE_POLLARD = ("Pollard & Wray, Video, How Do Your Tokens Merge? (CVPRW 2025), "
                  "sjpollard/video-how-do-your-tokens-merge assets/table.png (K400 column, 'merge' row)")

# id: (description, metric, base value, base throughput, r, ToMe value, ToMe throughput, source)
# A row with ToMe value None is a baseline: the paper's model trained without merging.
README_ROWS = {
    "augreg_vit_s16": ("AugReg ViT-S/16 off-the-shelf", "acc1", 81.41, 953, 13, 79.30, 1564, f"{README}:63"),
    "augreg_vit_b16": ("AugReg ViT-B/16 off-the-shelf", "acc1", 84.57, 309, 13, 82.60, 511, f"{README}:64"),
    "augreg_vit_l16": ("AugReg ViT-L/16 off-the-shelf", "acc1", 85.82, 95, 7, 84.26, 167, f"{README}:65"),
    "augreg_vit_l16_384": ("AugReg ViT-L/16@384 off-the-shelf", "acc1", 86.92, 28, 23, 86.14, 56,
                           f"{README}:66"),
    "swag_vit_b16_384": ("SWAG ViT-B/16@384 off-the-shelf", "acc1", 85.30, 85.7, 45, 84.59, 167.7,
                         f"{README}:96"),
    "swag_vit_l16_512": ("SWAG ViT-L/16@512 off-the-shelf", "acc1", 88.06, 12.8, 40, 87.80, 26.3,
                         f"{README}:97"),
    "swag_vit_h14_518": ("SWAG ViT-H/14@518 off-the-shelf", "acc1", 88.55, 4.7, 40, 88.25, 9.8,
                         f"{README}:98"),
    "mae_vit_l16_offshelf": ("MAE ViT-L/16 off-the-shelf (paper Table 1 setting)", "acc1", 85.96, 93, 8,
                             84.22, 183, f"{README}:121"),
    "mae_vit_b16_tome": ("MAE ViT-B/16 trained with ToMe", "acc1", 83.62, 309, 16, 81.91, 603,
                         f"{README}:111"),
    "mae_vit_l16_tome": ("MAE ViT-L/16 trained with ToMe", "acc1", 85.66, 93, 8, 85.09, 183, f"{README}:112"),
    "mae_vit_h14_tome": ("MAE ViT-H/14 trained with ToMe", "acc1", 86.88, 35, 7, 86.46, 63, f"{README}:113"),
    "mae_vit_l16_baseline": ("MAE ViT-L/16 fine-tuned without merging (the paper's baseline)", "acc1",
                             85.66, 93, 0, None, None, f"{README}:112 (original acc / im/s)"),
    "mae_vit_h14_baseline": ("MAE ViT-H/14 fine-tuned without merging (the paper's baseline)", "acc1",
                             86.88, 35, 0, None, None, f"{README}:113 (original acc / im/s)"),
    "deit_s16_tome": ("DeiT-S/16 trained with ToMe", "acc1", 79.8, 930, 13, 79.36, 1550, f"{README}:74"),
    "deit_ti16_tome": ("DeiT-Ti/16 trained with ToMe", "acc1", 71.8, 2558, 13, 71.27, 3980, f"{README}:75"),
    "audiomae_vit_b_as20k": ("Audio-MAE ViT-B AS-20K fine-tuned without merging", "map", 37.0, 1.0, None,
                             None, None, "facebookresearch/AudioMAE README.md:71"),
    # Training-free merging on VideoMAE-B fine-tuned on K400, r=150 per layer. Their protocol differs
    # from ours: 16 frames at sampling rate 1, one view (configs/videomae/kinetics/
    # tome_VideoMAE_B_16_224_K400.yaml), proportional attention off (experiments.sh
    # TOME.PROP_ATTN False), so compare the speed-up and the drop, not the top-1 itself.
    "videomae_vitb_k400_offshelf": ("VideoMAE ViT-B K400 off-the-shelf (16x1, 1 view, no prop. attn)",
                                    "acc1", 62.09, 186.72, 150, 56.10, 476.28, SOURCE_POLLARD),
    # FastAST (arXiv 2406.07676) adds ToMe to AST and reports ESC-50, Speech Commands V2 and
    # balanced AudioSet; its tables were not checked line by line, so it has no row (no number is
    # entered unverified). AST's own 45.93 mAP is in the checkpoint's name.
}

# Fig. 5 read off the plot (about +-0.2 top-1): (total clips, r) -> (what is shown, its centre)
_FIG5_READ = {(1, 0): ("~80.1", 80.1), (1, 65): ("~78.9", 78.9), (4, 0): ("~84.5", 84.5),
              (4, 45): ("~84.5", 84.5), (4, 55): ("~84.5", 84.5), (4, 65): ("~84.0", 84.0),
              **{(c, r): ("~84.4-84.8", None) for c in (8, 16) for r in (0, 45, 55, 65)}}


def paper_table(n) -> str:
    return f"ToMe paper (arXiv v1) Table {n}"


FIG5 = "ToMe paper (arXiv v1) Fig. 5, read off the plot (about +-0.2)"
CONSTANT, DECREASING = "constant", "decreasing"
# How the model behind a row was made: evaluated off-the-shelf (no training in the run), fine-tuned
# with merging at the row's r and schedule, fine-tuned without merging, or either of the last two
# without merging (a baseline the paper does not say it retrained).
TRAININGS = ("none", "merge", "plain", "either")


@dataclass(frozen=True)
class Panel:
    id: str
    table: str                        # "Table 1" ... "Fig. 5"
    title: str
    metric: Optional[str]             # acc1 | map | None (Table 6 has no accuracy)
    speed_unit: str = "im/s"
    uses: tuple = ()                  # other panels whose runs also fill this panel's rows
    train_kind: Optional[str] = None  # speed: baseline time / ours (Table 4); time: ours / baseline (Table 6)
    note: str = ""
    digits: int = 1                   # decimals the paper prints: metric, speed, GFLOPs
    speed_digits: int = 0
    gflops_digits: int = 1


@dataclass(frozen=True)
class Row:
    id: str
    panel: str
    label: str                        # the row as the paper names it
    value: Optional[float]            # top-1 / mAP as printed (None: not printed)
    r: int = 0                        # tokens merged per layer at evaluation (0: no merging)
    schedule: str = CONSTANT          # constant | decreasing (tome.inflection -1)
    training: str = "none"            # one of TRAININGS
    match: tuple = ()                 # ((dotted config key, value), ...) the run's config must hold
    views: Optional[tuple] = None     # video test views: (spatial crops, temporal clips)
    gflops: Optional[float] = None
    speed: Optional[float] = None     # in the panel's speed unit
    base_speed: Optional[float] = None  # the speed without merging the paper's speed-up is over
    speedup: Optional[float] = None   # a speed-up the paper prints itself (Table 6)
    train: Optional[float] = None     # Table 4: training speed (1x, 1.5x); Table 6: fine-tuning hours
    train_ratio: Optional[float] = None  # Table 6: the printed time ratio (0.5x)
    approx: Optional[str] = None      # Fig. 5: what was read off the plot, shown as such
    approx_value: Optional[float] = None  # ... and its centre, where it is one number
    default: bool = False             # the paper's default setting (marked *)
    source: str = ""

    @property
    def paper_speedup(self) -> Optional[float]:
        if self.speedup is not None:
            return self.speedup
        if self.speed is not None and self.base_speed:
            return self.speed / self.base_speed
        return None


T12_BASE = "without merging the model has 85.96 top-1 at 93.3 im/s, the paper speed-up's base"
PANELS = {p.id: p for p in (
    Panel("t1a", "Table 1", "(a) feature used for similarity; MAE ViT-L/16 off-the-shelf, r=8", "acc1",
          digits=2, speed_digits=1, note=T12_BASE),
    Panel("t1b", "Table 1", "(b) distance function", "acc1", digits=2, speed_digits=1),
    Panel("t1c", "Table 1", "(c) how heads are combined", "acc1", digits=2, speed_digits=1),
    Panel("t1d", "Table 1", "(d) how merged tokens are combined", "acc1", digits=2, speed_digits=1),
    Panel("t1e", "Table 1", "(e) partition of the tokens into A and B", "acc1", digits=2, speed_digits=1),
    Panel("t1f", "Table 1", "(f) proportional attention (MAE and AugReg ViT-L/16, r=8)", "acc1",
          digits=2, speed_digits=1),
    Panel("t2", "Table 2", "matching algorithm; MAE ViT-L/16 off-the-shelf, r=8", "acc1",
          digits=2, speed_digits=1, note=T12_BASE),
    Panel("t3", "Table 3", "MAE models fine-tuned with merging (ImageNet-1k)", "acc1"),
    Panel("t4", "Table 4", "ViT-S: DeiT-S trained with merging, AugReg ViT-S off-the-shelf", "acc1",
          train_kind="speed"),
    Panel("t5", "Table 5", "video: Spatiotemporal MAE ViT-L, Kinetics-400, 16x224^2", "acc1",
          speed_unit="clips/s", gflops_digits=0),
    Panel("t6", "Table 6", "video: throughput and fine-tuning time (8 GPUs, one node)", None,
          speed_unit="clips/s", uses=("t5",), train_kind="time", speed_digits=1,
          note="fine-tuning time: total wall-clock for the same number of epochs (ToMe issue #35)"),
    Panel("f5", "Fig. 5", "video off-the-shelf: top-1 against total clips (1 crop)", "acc1",
          speed_unit="clips/s", uses=("t5",),
          note="a plot without printed values: paper cells are read off it (~), not published numbers"),
    Panel("t7", "Table 7", "audio: Audio-MAE ViT-B fine-tuned on AudioSet-2M", "map", speed_unit="samples/s"),
)}


def _rows(panel: str, source: str, common: dict, specs) -> list:
    """Rows of one panel: ``specs`` are (id, label, value, fields) with ``common`` fields underneath;
    ``match`` dicts merge (the row's keys on top) and become sorted tuples."""
    out = []
    for rid, label, value, fields in specs:
        kw = {**common, **fields}
        kw["match"] = tuple(sorted({**dict(common.get("match", ())), **dict(fields.get("match", ()))}.items()))
        out.append(Row(rid, panel, label, value, source=source, **kw))
    return out


# Table 1 and 2: MAE ViT-L/16 fine-tuned by MAE, evaluated off-the-shelf at r=8; without merging
# 85.96 top-1 at 93.3 im/s. Every other option sits at the paper's default.
MAE_ABLATION = {"data.family": "mae", "model.name": "mae_vit_large_patch16", "tome.metric": "k",
                "tome.distance": "cosine", "tome.heads": "mean", "tome.mode": "wavg",
                "tome.partition": "alternating", "tome.prop_attn": False, "tome.matching": "bipartite"}
T1 = dict(r=8, training="none", base_speed=93.3, match=MAE_ABLATION)
# Tables 3-7: the paper's merging (keys averaged over heads, cosine, bipartite, size-weighted average).
DEFAULTS = {"tome.metric": "k", "tome.distance": "cosine", "tome.mode": "wavg", "tome.matching": "bipartite"}
VIT_L, VIT_H = "mae_vit_large_patch16", "mae_vit_huge_patch14"
VIDEO_L = {**DEFAULTS, "model.variant": "l"}


def _t1(panel, key, specs):
    return _rows(panel, paper_table(1), T1, [
        (rid, label, value, dict(speed=speed, default=default, match={key: option}))
        for rid, label, option, value, speed, default in specs])


TABLE_ROWS_LIST = [
    *_t1("t1a", "tome.metric", [
        ("t1a_xpre", "X_pre", "x_pre", 83.02, 186.8, False), ("t1a_x", "X", "x", 83.70, 182.8, False),
        ("t1a_k", "K", "k", 84.25, 182.9, True), ("t1a_q", "Q", "q", 84.04, 182.8, False),
        ("t1a_v", "V", "v", 83.80, 182.9, False)]),
    *_t1("t1b", "tome.distance", [
        ("t1b_euclidean", "euclidean", "euclidean", 84.26, 182.5, False),
        ("t1b_cosine", "cosine", "cosine", 84.25, 182.9, True),
        ("t1b_dot", "dot product", "dot", 82.78, 183.0, False),
        ("t1b_softmax", "softmax", "softmax", 82.00, 183.0, False)]),
    *_t1("t1c", "tome.heads", [
        ("t1c_concat", "concat", "concat", 84.32, 180.3, False), ("t1c_mean", "mean", "mean", 84.25, 182.9, True)]),
    *_t1("t1d", "tome.mode", [
        ("t1d_keep", "keep one", "keep", 81.01, 185.4, False), ("t1d_max", "max pool", "max", 83.50, 184.6, False),
        ("t1d_avg", "avg pool", "mean", 83.57, 183.8, False),
        ("t1d_wavg", "weighted avg", "wavg", 84.25, 182.9, True)]),
    *_t1("t1e", "tome.partition", [
        ("t1e_sequential", "sequential", "sequential", 81.07, 183.0, False),
        ("t1e_alternating", "alternating", "alternating", 84.25, 182.9, True),
        ("t1e_random", "random", "random", 83.80, 181.7, False)]),
    *_rows("t1f", paper_table(1), T1, [
        ("t1f_mae_off", "MAE, off", 84.25, dict(speed=182.9, default=True, match={"tome.prop_attn": False})),
        ("t1f_mae_on", "MAE, on", 83.84, dict(speed=180.9, match={"tome.prop_attn": True})),
        # AugReg ViT-L/16: Table 1 prints no AugReg speed without merging, so no paper speed-up
        ("t1f_augreg_off", "AugReg, off", 82.15, dict(
            speed=182.8, base_speed=None, match={"tome.prop_attn": False, "data.family": "augreg",
                                                 "model.name": "vit_large_patch16_224.augreg_in21k_ft_in1k"})),
        ("t1f_augreg_on", "AugReg, on", 83.51, dict(
            speed=180.8, base_speed=None, default=True, match={
                "tome.prop_attn": True, "data.family": "augreg",
                "model.name": "vit_large_patch16_224.augreg_in21k_ft_in1k"})),
    ]),
    *_rows("t2", paper_table(2), T1, [
        ("t2_prune_random", "pruning, random", 79.22, dict(speed=184.4, match={"tome.matching": "random_prune"})),
        ("t2_prune_attn", "pruning, attn-based", 79.48, dict(speed=183.8, match={"tome.matching": "attn_prune"})),
        ("t2_kmeans2", "k-means (2 iter)", 80.19, dict(speed=169.7, match={"tome.matching": "kmeans",
                                                                            "tome.kmeans_iters": 2})),
        ("t2_kmeans5", "k-means (5 iter)", 80.29, dict(speed=147.5, match={"tome.matching": "kmeans",
                                                                            "tome.kmeans_iters": 5})),
        ("t2_greedy", "greedy matching", 84.36, dict(speed=179.4, match={"tome.matching": "greedy"})),
        ("t2_bipartite", "bipartite matching", 84.25, dict(speed=182.9, default=True,
                                                             match={"tome.matching": "bipartite"})),
    ]),
    # Table 3: fine-tuned with merging from the MAE pre-trained weights; baselines fine-tuned by the
    # authors without merging. Decreasing = tome.inflection -1.
    *_rows("t3", paper_table(3), dict(match={**DEFAULTS, "model.name": VIT_L}, base_speed=93), [
        ("t3_vit_l_r8_dec", "ViT-L, r=8 decreasing", 84.2, dict(r=8, schedule=DECREASING, training="merge",
                                                                  gflops=22.3, speed=241)),
        ("t3_vit_l_r8", "ViT-L, r=8 constant", 85.1, dict(r=8, training="merge", gflops=31.0, speed=183)),
        ("t3_vit_l_base", "ViT-L baseline", 85.7, dict(training="plain", gflops=61.6, speed=93)),
    ]),
    *_rows("t3", paper_table(3), dict(match={**DEFAULTS, "model.name": VIT_H}, base_speed=35), [
        ("t3_vit_h_r7_dec", "ViT-H, r=7 decreasing", 86.1, dict(r=7, schedule=DECREASING, training="merge",
                                                                  gflops=72.6, speed=81)),
        ("t3_vit_h_r7", "ViT-H, r=7 constant", 86.5, dict(r=7, training="merge", gflops=92.9, speed=63)),
        ("t3_vit_h_base", "ViT-H baseline", 86.9, dict(training="plain", gflops=167.4, speed=35)),
    ]),
    # Table 4: the ToMe rows against the DeiT-S baseline's 930 im/s.
    *_rows("t4", paper_table(4), dict(base_speed=930, match=DEFAULTS), [
        ("t4_deit_s_base", "DeiT-S baseline", 79.8, dict(training="plain", gflops=4.6, speed=930, train=1.0,
                                                         match={"model.name": "deit_small_patch16_224"})),
        ("t4_deit_s_r13", "ToMe DeiT-S, r=13, trained", 79.4, dict(
            r=13, training="merge", gflops=2.7, speed=1552, train=1.5, match={"model.name": "deit_small_patch16_224"})),
        ("t4_augreg_s_r13", "ToMe AugReg ViT-S, r=13, off-the-shelf", 79.3, dict(
            r=13, gflops=2.7, speed=1550, match={"model.name": "vit_small_patch16_224.augreg_in21k_ft_in1k"})),
    ]),
    # Table 5: 1 spatial crop x 10 temporal clips (4 for the r=55 row); GFLOPs per view.
    *_rows("t5", paper_table(5), dict(match=VIDEO_L, views=(1, 10)), [
        ("t5_vit_l_base", "ViT-L baseline", 84.7, dict(training="either", gflops=598)),
        ("t5_r65_dec_offshelf", "ToMe r=65 decreasing, off-the-shelf", 82.5,
         dict(r=65, schedule=DECREASING, gflops=184)),
        ("t5_r65_dec_trained", "ToMe r=65 decreasing, trained", 83.2,
         dict(r=65, schedule=DECREASING, training="merge", gflops=184)),
        ("t5_r55_offshelf", "ToMe r=55 constant, off-the-shelf", 84.5, dict(r=55, gflops=325, views=(1, 4))),
        ("t5_r65_offshelf", "ToMe r=65 constant, off-the-shelf", 84.5, dict(r=65, gflops=281)),
        ("t5_r65_trained", "ToMe r=65 constant, trained", 84.4, dict(r=65, training="merge", gflops=281)),
    ]),
    *_rows("t5", paper_table(5), dict(match=DEFAULTS), [
        ("t5_vit_b_mae", "ViT-B (MAE), for comparison", 81.3,
         dict(training="either", gflops=180, views=(3, 7), match={"model.variant": "b"})),
    ]),
    # Table 6: clips/s against the baseline's 7.3; fine-tuning hours for the same epochs (the
    # baseline's 263 h estimated by the authors from 5 days).
    *_rows("t6", paper_table(6), dict(match=VIDEO_L, base_speed=7.3), [
        ("t6_base", "baseline", None, dict(training="plain", speed=7.3, train=263)),
        ("t6_r65_trained", "ToMe r=65 constant, trained", None,
         dict(r=65, training="merge", speed=16.3, speedup=2.2, train=136, train_ratio=0.5)),
        ("t6_r65_dec_offshelf", "ToMe r=65 decreasing, off-the-shelf", None,
         dict(r=65, schedule=DECREASING, speed=24.9, speedup=3.4)),
    ]),
    # Fig. 5: off-the-shelf ViT-L, 1 spatial crop x 1-16 temporal clips, baseline and r = 45, 55, 65.
    *[row for clips in (1, 2, 4, 8, 16) for row in _rows("f5", FIG5, dict(match=VIDEO_L), [
        (f"f5_c{clips}_r{r}", f"{clips} clip{'s' if clips > 1 else ''}, {'baseline' if r == 0 else f'r={r}'}",
         None, dict(r=r, training="either" if r == 0 else "none", views=(1, clips),
                    approx=_FIG5_READ.get((clips, r), ("not readable", None))[0],
                    approx_value=_FIG5_READ.get((clips, r), (None, None))[1]))
        for r in (0, 45, 55, 65)])],
    # Table 7: mAP; samples/s against the baseline's 103; merging over the whole spectrogram (no
    # frequency bands or time windows).
    *_rows("t7", paper_table(7), dict(base_speed=103, match={**DEFAULTS, "tome.band": None,
                                                             "tome.window": None}), [
        ("t7_base", "original baseline (Audio-MAE release)", 47.3, dict(gflops=48.6, speed=103)),
        ("t7_r20_offshelf", "ToMe r=20 constant, off-the-shelf", 46.2, dict(r=20, gflops=36.3, speed=136)),
        ("t7_r40_offshelf", "ToMe r=40 constant, off-the-shelf", 43.1, dict(r=40, gflops=24.7, speed=200)),
        ("t7_base_authors", "baseline trained by the authors", 46.4, dict(training="plain", gflops=48.6, speed=103)),
        ("t7_r20_trained", "ToMe r=20 constant, trained", 46.3, dict(r=20, training="merge", gflops=36.3, speed=136)),
        ("t7_r40_trained", "ToMe r=40 constant, trained", 46.0, dict(r=40, training="merge", gflops=24.7, speed=200)),
    ]),
]

TABLE_ROWS = {row.id: row for row in TABLE_ROWS_LIST}
assert len(TABLE_ROWS) == len(TABLE_ROWS_LIST), "duplicate paper row id"
assert all(r.panel in PANELS and r.training in TRAININGS and r.schedule in (CONSTANT, DECREASING)
           for r in TABLE_ROWS_LIST)
assert not set(TABLE_ROWS) & set(README_ROWS) and not set(PANELS) & (set(TABLE_ROWS) | set(README_ROWS))


def known_ids() -> list:
    """Every id a config's ``paper:`` may name: README rows, table rows and panels."""
    return [*README_ROWS, *PANELS, *TABLE_ROWS]


def panel_of(paper_id) -> Optional[str]:
    """The panel a config's ``paper:`` id belongs to (None for README rows and no id)."""
    if paper_id in PANELS:
        return paper_id
    row_ = TABLE_ROWS.get(paper_id)
    return row_.panel if row_ else None


def panel_rows(panel_id: str) -> list:
    return [r for r in TABLE_ROWS_LIST if r.panel == panel_id]


def row(paper_id: str) -> dict:
    """A row as ``launch/compare.py`` shows it: the model's number without merging (``base``), the
    merged number at ``r`` (``tome``) and the paper's speed-up. A table row is one of the two."""
    if paper_id in README_ROWS:
        desc, metric, base, base_speed, r, value, speed, source = README_ROWS[paper_id]
        return {"id": paper_id, "description": desc, "metric": metric, "base": base, "r": r,
                "tome": value, "speedup": speed / base_speed if speed is not None else None,
                "source": source}
    t = TABLE_ROWS[paper_id]
    merged = t.r != 0
    return {"id": paper_id, "description": f"{PANELS[t.panel].table}: {t.label}",
            "metric": PANELS[t.panel].metric, "base": None if merged else t.value,
            "r": t.r, "tome": t.value if merged else None, "speedup": t.paper_speedup if merged else None,
            "source": t.source}
