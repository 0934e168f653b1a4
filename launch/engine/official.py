"""The official recipe values our paper-row configs must match, each with its source.

One row per (config, recipe item). ``key`` is where the value lives in the resolved config: a
dotted config path, ``derived.<name>`` (what ``submit.py --print`` derives: ``world_size``,
``repeated_views``, ``effective_batch``, ``lr``), or ``sweep:<dotted key>`` for a sweep's value
list. Rows whose value lives in code rather than in a config (``key`` None) name where it is
implemented and tested.

Sources are repositories read at these commits (file:line): facebookresearch/mae efb2a80,
mae_st c5dec1b, AudioMAE bd60e29, deit 7e160fe, ToMe af95e4b, SlowFast (PySlowFast) HEAD of the
stored mirror, huggingface/pytorch-image-models at v0.3.2 (6504a42, the version DeiT pins).
``docs/recipes.md`` is generated from these rows and the configs: ``python -m launch.recipes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Official:
    config: str                    # path under the repository root
    item: str                      # what the row checks, in words
    key: Optional[str]             # where the value lives (None: in code, see ``source``/``note``)
    value: Any                     # the official value
    source: str                    # file:line or table
    issue: str = "9"               # the issue that asked for it
    note: str = ""


MAE_ST = "mae_st FINETUNE.md:73"
K400 = "video/configs/vitl_k400.yaml"
AS2M = "audio/configs/audiomae_as2m.yaml"
AS20K = "audio/configs/audiomae_as20k.yaml"
DEIT_S, DEIT_T = "image/configs/deit_s16_tome.yaml", "image/configs/deit_ti16_tome.yaml"
MAE_B, MAE_L, MAE_H = ("image/configs/mae_vit_b16_tome.yaml", "image/configs/mae_vit_l16_tome.yaml",
                       "image/configs/mae_vit_h14_tome.yaml")
OFFSHELF_PROP = "ToMe tome/patch/mae.py:71,79 (prop_attn=False); README.md:115 (leave False off-the-shelf)"

PAPER = "ToMe paper (arXiv v1)"  # tables transcribed from its images, see launch/engine/paper.py
ABL = "image/configs/ablation_{}.yaml"
MAE_L_DEC, MAE_H_DEC = "image/configs/mae_vit_l16_tome_dec.yaml", "image/configs/mae_vit_h14_tome_dec.yaml"
DEIT_S_BASE = "image/configs/deit_s16_baseline.yaml"
DECREASING = "ToMe tome/utils.py:87-90 ((r, -1) is the paper's \"decreasing schedule\")"
TABLE_TESTS = "tests/tome/test_ablation_options.py; tests/tome/test_matching.py"

ROWS: list[Official] = [
    # ---- video: MAE-ST ViT-L fine-tuning on Kinetics-400 (#9, #14)
    Official(K400, "repeated views counted in the effective batch", "derived.repeated_views", 2,
             "mae_st main_finetune.py:457-458 (batch x accum x world x repeat_aug)"),
    Official(K400, "peak lr = blr x effective batch / 256", "derived.lr", 0.0024,
             "mae_st main_finetune.py:461-462, FINETUNE.md:73 (--blr 0.0024, 64 GPUs x 2 x 2 views)"),
    Official(K400, "per-GPU batch", "train.batch_size", 2, MAE_ST),
    Official(K400, "repeated augmentation", "data.repeat_aug", 2, MAE_ST),
    Official(K400, "epochs", "train.epochs", 50, MAE_ST),
    Official(K400, "base lr", "train.blr", 0.0024, MAE_ST),
    Official(K400, "warm-up epochs", "train.warmup_epochs", 5.0, MAE_ST),
    Official(K400, "layer decay", "train.layer_decay", 0.75, MAE_ST),
    Official(K400, "drop path", "model.drop_path", 0.2, MAE_ST),
    Official(K400, "head dropout (B and L)", "model.head_drop", 0.3,
             f"{MAE_ST} --dropout 0.3; PySlowFast k400_VIT_L_16x4_FT.yaml:76"),
    Official(K400, "RandAugment (2 ops)", "data.rand_augment", "rand-m7-mstd0.5-inc1", MAE_ST),
    Official(K400, "gradient clipping", "train.clip_grad", 5.0, MAE_ST),
    Official(K400, "mixup alpha", "train.mixup", 0.8, MAE_ST),
    Official(K400, "cutmix alpha", "train.cutmix", 1.0, MAE_ST),
    Official(K400, "label smoothing", "train.label_smoothing", 0.1, MAE_ST),
    Official(K400, "weight decay", "train.weight_decay", 0.05, "mae_st main_finetune.py:96"),
    Official(K400, "frames per clip", "data.num_frames", 16, MAE_ST),
    Official(K400, "sampling rate", "data.sampling_rate", 4, MAE_ST),
    Official(K400, "training precision fp32", "train.amp", "none",
             f"{MAE_ST} --fp32; main_finetune.py:290-293"),
    Official(K400, "evaluation precision fp32", "eval.amp", "none", f"{MAE_ST} --fp32"),
    Official(K400, "random erasing probability", "data.random_erase", 0.25,
             "mae_st main_finetune.py:155-160 (--reprob 0.25)"),
    Official(K400, "random erasing mode", "data.random_erase_mode", "pixel",
             "mae_st main_finetune.py:162-165 (--remode pixel)"),
    Official(K400, "test views: temporal clips (the paper's ViT-L rows)", "data.num_temporal_clips", 10,
             "ToMe paper (arXiv v1) Table 5 ('281 x 1 x 10'; the ToMe rows and their baseline)", issue="24"),
    Official(K400, "test views: spatial crops (the paper's ViT-L rows)", "data.num_spatial_crops", 1,
             "ToMe paper (arXiv v1) Table 5", issue="24"),
    Official("video/configs/vitl_k400_offshelf.yaml", "test views: 1 crop x 10 clips (the paper's ViT-L rows)",
             "data.num_temporal_clips", 10, "ToMe paper (arXiv v1) Table 5 ('598 x 1 x 10')", issue="24"),
    Official("video/configs/vitl_k400_offshelf_r55.yaml", "test views: 4 clips for the r=55 row",
             "data.num_temporal_clips", 4, "ToMe paper (arXiv v1) Table 5 ('325 x 1 x 4')", issue="24"),
    Official("video/configs/vitl_k400_clips.yaml", "Fig. 5: total clips", "sweep:data.num_temporal_clips",
             [1, 2, 4, 8, 16], "ToMe paper (arXiv v1) Fig. 5", issue="24"),
    Official("video/configs/vitl_k400_clips.yaml", "Fig. 5: baseline and r = 45, 55, 65", "tome.eval_r",
             [0, 45, 55, 65], "ToMe paper (arXiv v1) Fig. 5", issue="24"),
    Official("video/configs/vitb_k400.yaml", "test views: temporal clips (MAE-ST protocol, the paper's ViT-B "
             "row)", "data.num_temporal_clips", 7,
             "PySlowFast projects/mae/README.md:19 ('598 x 3 x 7', ViT-L 84.8); ToMe paper (arXiv v1) Table 5 "
             "(ViT-B '180 x 3 x 7'); mae_st main_test.py:188-189 uses 10 x 3", issue="14, 24"),
    Official("video/configs/vitb_k400.yaml", "test views: spatial crops (MAE-ST protocol)", "data.num_spatial_crops",
             3, "PySlowFast projects/mae/README.md:18-20; mae_st util/kinetics.py:45", issue="14"),
    Official("video/configs/vitb_k400_baseline.yaml", "Table 5's ViT-B comparison row: without merging, 3 x 7 views",
             "paper", "t5_vit_b_mae", "ToMe paper (arXiv v1) Table 5 ('180 x 3 x 7')", issue="24"),
    Official(K400, "test clip: 64-frame span, floored start, linspace indices", None, None,
             "mae_st util/decoder/decoder.py, util/kinetics.py",
             note="video/transforms.py clip_indices; tests/video/test_video_data.py"),
    Official(K400, "test crop offset: ceiling of half the margin", None, None,
             "mae_st util/decoder/transform.py",
             note="video/transforms.py; tests/video/test_video_data.py"),
    Official(K400, "test frame size: short side to the view's scale, long side rounded half up", None, None,
             "mae_st util/decoder/decoder.py (video_min_dimension); torchvision csrc/io/decoder/util.cpp "
             "setFormatDimensions", issue="24",
             note="video/transforms.py decoded_short_side_shape; tests/video/test_video_data.py"),
    Official(K400, "cheap single view between epochs, all test views at the end", "eval.interim_views", "single",
             "#9 (eval_every 1 evaluated all 7 x 3 views every epoch)",
             note="engine: Task.interim_eval_config; tests/launch/engine/test_recipes.py"),
    Official(K400, "paper row: r65 constant, trained", "paper", "t5_r65_trained", "ToMe paper (arXiv v1) Table 5",
             issue="24", note="launch/engine/paper.py; launch/tables.py"),
    Official(K400, "trained and evaluated at r=65", "tome.r", 65, "ToMe paper (arXiv v1) Table 5", issue="24"),
    Official("video/configs/vitl_k400_dec.yaml", "decreasing schedule (r65 decreasing, trained)",
             "tome.inflection", -1.0, "ToMe paper (arXiv v1) Table 5", issue="24"),
    Official("video/configs/vitl_k400_offshelf_dec.yaml", "decreasing schedule (r65 decreasing, off-the-shelf)",
             "tome.inflection", -1.0, "ToMe paper (arXiv v1) Tables 5, 6", issue="24"),
    Official("video/configs/vitl_k400_offshelf.yaml", "paper rows: the baseline and r65 constant, off-the-shelf",
             "tome.eval_r", [0, 65], "ToMe paper (arXiv v1) Table 5", issue="24"),
    Official("video/configs/vitl_k400_offshelf.yaml", "proportional attention off (off-the-shelf MAE-ST)",
             "tome.prop_attn", False, OFFSHELF_PROP, issue="14"),
    Official("video/configs/vitl_k400_offshelf.yaml", "evaluation precision fp32", "eval.amp", "none",
             f"{MAE_ST} --fp32"),
    Official("video/configs/vith_k400.yaml", "head dropout (H)", "model.head_drop", 0.5,
             "PySlowFast configs/masked_ssl/k400_VIT_H_16x4_FT.yaml:75"),
    Official("video/configs/vitb_k400.yaml", "head dropout (B)", "model.head_drop", 0.3,
             "PySlowFast configs/masked_ssl/k400_VIT_B_16x4_FT.yaml:77"),

    # ---- audio: Audio-MAE ViT-B on AudioSet (#9, #14)
    Official(AS2M, "effective batch (8 nodes x 8 GPUs x 4)", "derived.effective_batch", 256,
             "AudioMAE submit_ft_mask_bal.sh:40,50; submitit_finetune.py:23 (8 GPUs a node)"),
    Official(AS2M, "peak lr", "derived.lr", 2e-4, "AudioMAE README.md:40 (blr 2e-4 x 256 / 256)"),
    Official(AS2M, "epochs", "train.epochs", 100, "AudioMAE submit_ft_mask_bal.sh:55"),
    Official(AS2M, "warm-up epochs", "train.warmup_epochs", 10.0, "AudioMAE submit_ft_mask_bal.sh:56"),
    Official(AS2M, "class-balanced weighted sampler", "data.weighted_sampler", True,
             "AudioMAE submit_ft_mask_bal.sh:57"),
    Official(AS2M, "samples per epoch", "data.epoch_samples", 200000, "AudioMAE main_finetune_as.py:184"),
    Official(AS2M, "weighted sampler draws with replacement (the script's --replacement False is "
             "argparse type=bool, so True)", None, None,
             "AudioMAE main_finetune_as.py:186,303; submit_ft_mask_bal.sh:58",
             note="launch/engine/data.py EpochSampler; tests/audio/test_audio_data.py"),
    Official(AS2M, "time token masking", "model.mask_t_prob", 0.2, "AudioMAE README.md:40"),
    Official(AS2M, "frequency token masking", "model.mask_f_prob", 0.2, "AudioMAE README.md:40"),
    Official(AS2M, "weight decay", "train.weight_decay", 5e-4, "AudioMAE main_finetune_as.py:68"),
    Official(AS2M, "layer decay", "train.layer_decay", 0.75, "AudioMAE main_finetune_as.py:75"),
    Official(AS2M, "SpecAugment frequency mask", "data.freq_mask", 48, "AudioMAE main_finetune_as.py:256"),
    Official(AS2M, "SpecAugment time mask", "data.time_mask", 192, "AudioMAE main_finetune_as.py:257"),
    Official(AS2M, "batch mixup off (Audio-MAE mixes waveforms)", "train.mixup", 0.0,
             "AudioMAE main_finetune_as.py:258 (mixup goes to the dataset, dataset.py)"),
    Official(AS2M, "waveform mixup probability, lambda ~ Beta(10, 10)", "data.wave_mixup", 0.5,
             "AudioMAE main_finetune_as.py:103,258; dataset.py"),
    Official(AS2M, "roll augmentation on (gain only: the shift is always 0)", "data.roll", True,
             "AudioMAE submit_ft_mask_bal.sh:51, ft_as.sh:47; dataset.py randint(len(waveform))",
             issue="9, 14", note="gain-only behaviour: audio/data.py; tests/audio/test_audio_data.py"),
    Official(AS2M, "training precision fp16 + gradient scaler", "train.amp", "fp16",
             "AudioMAE engine_finetune_as.py:54 (autocast), main_finetune_as.py NativeScaler", issue="14"),
    Official(AS2M, "evaluation scores in fp32", "eval.amp", "none",
             "#14 (AudioMAE engine_finetune_as.py:118 evaluates under fp16 autocast)", issue="14"),
    Official(AS2M, "mAP/AUC/d' ranked on fp32 logits", None, None, "#14", issue="14",
             note="audio/metrics.py; tests/audio/test_audio_metrics.py"),
    Official(AS2M, "head initialised trunc_normal std 2e-5 (no head in the pretrained checkpoint)", None, None,
             "AudioMAE main_finetune_as.py:406", issue="14",
             note="launch/engine/state_dict.py (Family.head_init_std); tests/launch/engine/test_state_dict.py"),
    Official(AS2M, "paper row: r40 constant, trained (the paper's claim: 46.0 against the authors' 46.4)", "paper",
             "t7_r40_trained", "ToMe paper (arXiv v1) Table 7", issue="24", note="launch/engine/paper.py"),
    Official(AS2M, "trained and evaluated at r=40", "tome.r", 40, "ToMe paper (arXiv v1) Table 7", issue="24"),
    Official("audio/configs/audiomae_as2m_r20.yaml", "trained and evaluated at r=20", "tome.r", 20,
             "ToMe paper (arXiv v1) Table 7", issue="24"),
    Official("audio/configs/audiomae_as2m_baseline.yaml", "the authors' baseline: fine-tuned without merging",
             "tome.r", 0, "ToMe paper (arXiv v1) Table 7 (46.4 mAP)", issue="24"),
    Official("audio/configs/audiomae_offshelf.yaml", "off-the-shelf rows: the release and r = 20, 40", "tome.eval_r",
             [0, 20, 40], "ToMe paper (arXiv v1) Table 7", issue="24"),
    Official(AS2M, "audio scores computed in fp32 whatever the autocast", None, None, "#14", issue="14",
             note="Task.fp32_scores (audio) in launch/engine/loop.py evaluate; tests/launch/engine/test_recipes.py"),
    Official(AS20K, "effective batch (4 GPUs x 8)", "derived.effective_batch", 32, "AudioMAE ft_as.sh:38,50"),
    Official(AS20K, "peak lr", "derived.lr", 1.25e-4, "AudioMAE README.md:62 (blr 1e-3 x 32 / 256)"),
    Official(AS20K, "epochs", "train.epochs", 60, "AudioMAE ft_as.sh:48"),
    Official(AS20K, "warm-up epochs", "train.warmup_epochs", 4.0, "AudioMAE ft_as.sh:51"),
    Official(AS20K, "weight decay", "train.weight_decay", 5e-4, "AudioMAE main_finetune_as.py:68"),
    Official(AS20K, "time / frequency token masking", "model.mask_t_prob", 0.2, "AudioMAE ft_as.sh:55"),
    Official(AS20K, "roll augmentation on (gain only)", "data.roll", True, "AudioMAE ft_as.sh:47"),
    Official(AS20K, "training precision fp16 + gradient scaler", "train.amp", "fp16",
             "AudioMAE engine_finetune_as.py:54", issue="14"),
    Official("audio/configs/audiomae_offshelf.yaml", "proportional attention off (off-the-shelf Audio-MAE)",
             "tome.prop_attn", False, OFFSHELF_PROP, issue="14"),
    Official("audio/configs/audiomae_offshelf.yaml", "evaluation scores in fp32", "eval.amp", "none", "#14",
             issue="14"),

    # ---- image: off-the-shelf (#9, #14)
    Official("image/configs/mae_vit_l16_offshelf.yaml", "proportional attention off (off-the-shelf MAE)",
             "tome.prop_attn", False, OFFSHELF_PROP, issue="9, 14"),
    Official("image/configs/ablation_base.yaml", "Table 1 base: proportional attention off", "tome.prop_attn",
             False, OFFSHELF_PROP),
    Official("image/configs/mae_vit_l16_offshelf.yaml", "accuracy and throughput in fp32", "eval.amp", "none",
             "ToMe README.md:59 (V100), paper: fp32 throughput except Fig. 2"),
    *[Official(f"image/configs/augreg_vit_{m}.yaml", "AugReg eval crop 0.875 (Resize int(256/224 x size))",
               "data.crop_pct", 0.875, "ToMe examples/0_validation_timm.ipynb (transforms.Resize(int((256 / "
               "224) * input_size)), CenterCrop)", issue="9, 14")
      for m in ("s16", "b16", "l16", "l16_384")],
    *[Official(f"image/configs/augreg_vit_{m}.yaml", "proportional attention on (off-the-shelf supervised)",
               "tome.prop_attn", True, "ToMe tome/patch/timm.py:117 (default True)", issue="14")
      for m in ("s16", "b16", "l16", "l16_384")],
    *[Official(f"image/configs/swag_vit_{m}.yaml", "proportional attention on (off-the-shelf SWAG)",
               "tome.prop_attn", True, "ToMe tome/patch/swag.py:138 (default True)", issue="14")
      for m in ("b16_384", "l16_512", "h14_518")],
    *[Official(f"image/configs/augreg_vit_{m}.yaml", "accuracy and throughput in fp32", "eval.amp", "none",
               "ToMe README.md:59 (V100), paper: fp32 throughput except Fig. 2")
      for m in ("s16", "b16", "l16", "l16_384")],

    # ---- image: DeiT trained from scratch with merging (#9, #14)
    *[row for cfg in (DEIT_S, DEIT_T, DEIT_S_BASE) for row in (
        Official(cfg, "repeated augmentation, 3 repeats (RASampler)", "data.repeated_aug", 3,
                 "deit main.py:106-107, :215-216; samplers.py:16"),
        Official(cfg, "per-epoch timm cosine schedule", "train.lr_schedule", "timm_epoch_cosine",
                 "deit main.py:355 (create_scheduler), :432 (step after each epoch)", issue="14"),
        Official(cfg, "cosine length t_initial = epochs", "train.epochs", 300,
                 "deit main.py:35; timm v0.3.2 scheduler_factory.py:28", issue="14"),
        Official(cfg, "warm-up epochs", "train.warmup_epochs", 5.0, "deit main.py:86", issue="14"),
        Official(cfg, "warm-up from warmup_lr", "train.warmup_lr", 1e-6, "deit main.py:79", issue="14"),
        Official(cfg, "min lr", "train.min_lr", 1e-5, "deit main.py:81", issue="14"),
        Official(cfg, "peak lr = 5e-4 x 1024 / 512", "derived.lr", 1e-3,
                 "deit main.py:71, :350; README_deit.md:216 (4 GPUs x 256)"),
        Official(cfg, "effective batch", "derived.effective_batch", 1024, "deit README_deit.md:216"),
        Official(cfg, "from-scratch init: cls_token / pos_embed trunc_normal std .02", "model.init", "deit",
                 "deit requirements.txt (timm==0.3.2); timm v0.3.2 vision_transformer.py:241-242", issue="14"),
        Official(cfg, "fp16 autocast + gradient scaler", "train.amp", "fp16",
                 "deit engine.py:46, main.py:353 (NativeScaler)", issue="14"),
        Official(cfg, "random erasing", "data.re_prob", 0.25, "deit main.py:118"),
        Official(cfg, "drop path", "model.drop_path", 0.1, "deit main.py:46"),
        Official(cfg, "weight decay", "train.weight_decay", 0.05, "deit main.py:66"),
        Official(cfg, "mixup", "train.mixup", 0.8, "deit main.py:128"),
        Official(cfg, "cutmix", "train.cutmix", 1.0, "deit main.py:130"),
        Official(cfg, "label smoothing", "train.label_smoothing", 0.1, "deit main.py:101"),
        Official(cfg, "RandAugment", "data.rand_augment", "rand-m9-mstd0.5-inc1", "deit main.py:98"),
        Official(cfg, "evaluation crop 0.875", "data.family", "deit", "deit main.py:174 (--eval-crop-ratio)",
                 note="image/transforms.py family deit: 0.875"),
        Official(cfg, "proportional attention on (merge-trained DeiT)", "tome.prop_attn", True,
                 "ToMe README.md:70"),
        Official(cfg, "reported accuracy of the model itself, not its EMA", "eval.use_ema", False,
                 "deit main.py:447 (evaluate(data_loader_val, model)); the EMA (main.py:49-52) is only saved"),
    )],

    # ---- image: MAE fine-tuning with merging (#14)
    *[row for cfg, epochs, blr, ld, dp, src in (
        (MAE_B, 100, 5e-4, 0.65, 0.1, "mae FINETUNE.md:67-73"),
        (MAE_L, 50, 1e-3, 0.75, 0.2, "mae FINETUNE.md:86-92"),
        (MAE_H, 50, 1e-3, 0.75, 0.3, "mae FINETUNE.md:102-108"),
        (MAE_L_DEC, 50, 1e-3, 0.75, 0.2, "mae FINETUNE.md:86-92"),
        (MAE_H_DEC, 50, 1e-3, 0.75, 0.3, "mae FINETUNE.md:102-108")) for row in (
        Official(cfg, "effective batch", "derived.effective_batch", 1024, f"{src}; FINETUNE.md:77"),
        Official(cfg, "epochs", "train.epochs", epochs, src),
        Official(cfg, "base lr", "train.blr", blr, src),
        Official(cfg, "layer decay", "train.layer_decay", ld, src),
        Official(cfg, "drop path", "model.drop_path", dp, src),
        Official(cfg, "random erasing", "data.re_prob", 0.25, src),
        Official(cfg, "mixup", "train.mixup", 0.8, src),
        Official(cfg, "cutmix", "train.cutmix", 1.0, src),
        Official(cfg, "per-iteration half-cosine schedule", "train.lr_schedule", "half_cosine",
                 "mae util/lr_sched.py:9-15; engine_finetune.py (per iteration)", issue="14"),
        Official(cfg, "fp16 autocast + gradient scaler", "train.amp", "fp16",
                 "mae engine_finetune.py:55, main_finetune.py:288", issue="14"),
        Official(cfg, "no gradient clipping", "train.clip_grad", None, "mae main_finetune.py:61"),
        Official(cfg, "proportional attention on (merge-trained)", "tome.prop_attn", True, "ToMe README.md:115"),
        Official(cfg, "head initialised trunc_normal std 2e-5", None, None, "mae main_finetune.py:257",
                 issue="14", note="launch/engine/state_dict.py (Family.head_init_std); tests/launch/engine/test_state_dict.py"),
    )],

    # ---- engine and launcher (#9)
    Official(K400, "last partial accumulation window divides by its real size", None, None, "#9",
             note="launch/engine/steps.py accum_window; tests/launch/engine/test_recipes.py"),
    Official(K400, "gradient clipping value from the config", None, None, "#9",
             note="launch/engine/loop.py (train.clip_grad)"),
    Official("image/configs/augreg_vit_b16_sweep.yaml", "no constant-r paper number on the decreasing run",
             None, None, "#9", note="launch/runs/report.py _paper_matches; tests/launch/engine/test_recipes.py"),
    Official(AS2M, "audio rows show their paper numbers", None, None, "#9, #24",
             note="launch/tables.py (Table 7, ours beside the paper's)"),
    Official("image/configs/mae_vit_b16_tome_sweep.yaml", "r=0 row of merge-trained runs labelled", None, None,
             "#9", note="launch/compare.py NOTE_MERGE_OFF"),

    # ---- missing paper rows (#9)
    Official("image/configs/deit_s16_tome_sweep.yaml", "Table 4 DeiT-S at several r", "sweep:tome.r",
             [0, 8, 13, 16], "ToMe paper Table 4 (r=8, 13, 16: 79.7 / 79.4 / 79.1 top-1, as indexed "
             "by Papers with Code); README.md:74 (r=13: 79.36)"),
    Official("image/configs/deit_ti16_tome_sweep.yaml", "Table 4 DeiT-Ti at several r", "sweep:tome.r",
             [0, 8, 12, 13, 16], "ToMe paper Table 4 (r=8, 12, 16: 71.7 / 71.4 / 70.7 top-1, as "
             "indexed by Papers with Code); README.md:75 (r=13: 71.27)"),
    Official("image/configs/mae_vit_l16_baseline.yaml", "MAE ViT-L baseline trained without merging", "tome.r",
             0, "ToMe README.md:112, :115"),
    Official("image/configs/mae_vit_h14_baseline.yaml", "MAE ViT-H baseline trained without merging", "tome.r",
             0, "ToMe README.md:113, :115"),

    # ---- the paper's image tables, row for row (#24)
    Official(ABL.format("base"), "Table 1 and 2 setting: r = 8", "tome.eval_r", [8],
             f"{PAPER} Table 1 caption (\"using r = 8\")", issue="24"),
    Official(ABL.format("base"), "Table 1 and 2 model: MAE ViT-L/16 fine-tuned, off-the-shelf",
             "model.name", "mae_vit_large_patch16", f"{PAPER} Table 1 caption", issue="24"),
    *[row for name, panel, key, values, table in (
        ("metric", "t1a", "tome.metric", ["x_pre", "x", "k", "q", "v"], "Table 1a"),
        ("distance", "t1b", "tome.distance", ["euclidean", "cosine", "dot", "softmax"], "Table 1b"),
        ("heads", "t1c", "tome.heads", ["concat", "mean"], "Table 1c"),
        ("mode", "t1d", "tome.mode", ["keep", "max", "mean", "wavg"], "Table 1d"),
        ("partition", "t1e", "tome.partition", ["sequential", "alternating", "random"], "Table 1e"),
        ("prop_attn", "t1f", "tome.prop_attn", [False, True], "Table 1f (mae rows)"),
        ("prop_attn_augreg", "t1f", "tome.prop_attn", [False, True], "Table 1f (augreg rows)"),
        ("matching", "t2", "tome.matching", ["random_prune", "attn_prune", "greedy", "bipartite"],
         "Table 2 (prune random, prune attn-based, greedy, bipartite)"),
        ("kmeans", "t2", "tome.kmeans_iters", [2, 5], "Table 2 (kmeans 2 iter, 5 iter)"))
      for row in (
        Official(ABL.format(name), f"{table}: the panel's settings", f"sweep:{key}", values,
                 f"{PAPER} {table}", issue="24", note=f"docs/api_options.md; {TABLE_TESTS}"),
        Official(ABL.format(name), f"{table}: panel id", "paper", panel, f"{PAPER} {table}", issue="24",
                 note="launch/engine/paper.py"),
    )],
    Official(ABL.format("kmeans"), "Table 2 k-means rows: matching kmeans", "tome.matching", "kmeans",
             f"{PAPER} Table 2", issue="24"),
    Official(ABL.format("prop_attn_augreg"), "Table 1f AugReg rows: AugReg ViT-L/16", "model.name",
             "vit_large_patch16_224.augreg_in21k_ft_in1k", f"{PAPER} Table 1f; ToMe README.md:65", issue="24"),
    Official(ABL.format("prop_attn_augreg"), "Table 1 setting: r = 8", "tome.eval_r", [8],
             f"{PAPER} Table 1 caption (\"using r = 8\")", issue="24"),
    Official(ABL.format("prop_attn_augreg"), "AugReg eval crop 0.875 (Resize int(256/224 x size))",
             "data.crop_pct", 0.875, "ToMe examples/0_validation_timm.ipynb (transforms.Resize(int((256 / "
             "224) * input_size)), CenterCrop)", issue="24"),
    Official(ABL.format("prop_attn_augreg"), "accuracy and throughput in fp32", "eval.amp", "none",
             f"{PAPER} Table 1 caption (fp32 throughput on a V100)", issue="24"),
    *[row for cfg, r, panel_row in ((MAE_L_DEC, 8, "t3_vit_l_r8_dec"), (MAE_H_DEC, 7, "t3_vit_h_r7_dec"))
      for row in (
        Official(cfg, "Table 3: trained at r", "tome.r", r, f"{PAPER} Table 3", issue="24"),
        Official(cfg, "Table 3: decreasing schedule (r, -1)", "tome.inflection", -1.0,
                 f"{PAPER} Table 3; {DECREASING}", issue="24", note="tome/schedule.py; tests/tome/test_schedule.py"),
        Official(cfg, "Table 3: row id", "paper", panel_row, f"{PAPER} Table 3", issue="24",
                 note="launch/engine/paper.py"),
    )],
    *[Official(cfg, f"{table}: row id", "paper", panel_row, f"{PAPER} {table}", issue="24",
               note="launch/engine/paper.py")
      for cfg, panel_row, table in (
        (MAE_L, "t3_vit_l_r8", "Table 3"), ("image/configs/mae_vit_l16_baseline.yaml", "t3_vit_l_base", "Table 3"),
        (MAE_H, "t3_vit_h_r7", "Table 3"), ("image/configs/mae_vit_h14_baseline.yaml", "t3_vit_h_base", "Table 3"),
        (DEIT_S_BASE, "t4_deit_s_base", "Table 4"), (DEIT_S, "t4_deit_s_r13", "Table 4"),
        ("image/configs/augreg_vit_s16.yaml", "t4_augreg_s_r13", "Table 4"))],
    Official(MAE_L, "Table 3: constant r = 8", "tome.r", 8, f"{PAPER} Table 3; ToMe README.md:112", issue="24"),
    Official(MAE_H, "Table 3: constant r = 7", "tome.r", 7, f"{PAPER} Table 3; ToMe README.md:113", issue="24"),
    Official(DEIT_S, "Table 4: trained at r = 13", "tome.r", 13, f"{PAPER} Table 4; ToMe README.md:74", issue="24"),
    Official(DEIT_S_BASE, "Table 4 baseline: trained without merging", "tome.r", 0, f"{PAPER} Table 4",
             issue="24", note="training speed-up: launch/runs/report.py _training_speedups"),
    Official("image/configs/augreg_vit_s16.yaml", "Table 4: AugReg ViT-S/16 off-the-shelf",
             "model.name", "vit_small_patch16_224.augreg_in21k_ft_in1k", f"{PAPER} Table 4; ToMe README.md:63",
             issue="24"),
]
