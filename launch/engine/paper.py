"""Published numbers our configs reproduce, each with its source.

Images: ImageNet-1k val top-1 and V100 fp32 images/s from the official ToMe README
(facebookresearch/ToMe README.md, line numbers below), which repeats the paper's rows. Throughputs
were measured on another machine, so compare speed-ups (ToMe im/s / base im/s), not raw im/s.

Video and audio: the paper's video and audio table values are not entered, since no number goes
in without a source checked line by line. These rows hold what is sourced: the baseline accuracy
of the official recipe the config follows, and the abstract's claims (2.2x off-the-shelf on video
at a 0.2-0.3% drop; 2x on audio, trained with ToMe, for a 0.4 mAP drop). Their ``r`` is None: the
abstract does not give it. compare.py attaches
a merge-trained row's ToMe numbers to the run's own training r (and says so in the row's note); an
off-the-shelf row whose r is unknown is attached to no r, since no evaluated r can be its own.
"""
from __future__ import annotations

README = "facebookresearch/ToMe README.md"
ABSTRACT = "ToMe paper abstract (ICLR 2023, arXiv 2210.09461)"
SOURCE_POLLARD = ("Pollard & Wray, Video, How Do Your Tokens Merge? (CVPRW 2025), "
                  "sjpollard/video-how-do-your-tokens-merge assets/table.png (K400 column, 'merge' row)")

# id: (description, metric, base value, base throughput, r, ToMe value, ToMe throughput, source)
# A row with ToMe value None is a baseline: the paper's model trained without merging.
ROWS = {
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
    # Video: base = the MAE-ST fine-tuning recipe's result (mae_st FINETUNE.md:77, Acc@1 84.35,
    # the recipe of vitl_k400.yaml). The abstract's 2.2x is off-the-shelf (the row below); for
    # merging during fine-tuning it states only the training speed-up ("up to 2x"), not a throughput
    # or an accuracy, so the merge-trained row carries the base alone.
    "maest_vit_l_k400": ("Spatiotemporal MAE ViT-L/16x4 K400 (ToMe during fine-tuning, video)", "acc1",
                         84.35, 1.0, None, None, None,
                         f"facebookresearch/mae_st FINETUNE.md:77 (base); {ABSTRACT} (training up to 2x)"),
    "maest_vit_l_k400_offshelf": ("Spatiotemporal MAE ViT-L/16x4 K400 (ToMe off-the-shelf, video)", "acc1",
                                  84.35, 1.0, None, None, 2.2,
                                  f"facebookresearch/mae_st FINETUNE.md:77 (base); {ABSTRACT} (2.2x, off-the-shelf)"),
    # Audio: base = AudioMAE README.md:42 (47.3 mAP); ToMe = 47.3 - 0.4 at 2x (abstract).
    "audiomae_vit_b_as2m": ("Audio-MAE ViT-B AS-2M (ToMe trained, audio)", "map", 47.3, 1.0, None, 46.9,
                            2.0, f"facebookresearch/AudioMAE README.md:42 (base); {ABSTRACT} (-0.4 mAP, 2x)"),
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


def row(paper_id: str) -> dict:
    desc, metric, base, base_speed, r, value, speed, source = ROWS[paper_id]
    return {"id": paper_id, "description": desc, "metric": metric, "base": base, "r": r,
            "tome": value, "speedup": speed / base_speed if speed is not None else None,
            "source": source}
