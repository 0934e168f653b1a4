"""Published numbers our configs reproduce, each with its source.

Images: ImageNet-1k val top-1 and V100 fp32 images/s, from the official ToMe README / paper
(Bolya et al., ICLR 2023), as collected in shared/reference/facts.md section 2. Throughputs were
measured on another machine, so compare speed-ups (ToMe im/s / base im/s), not raw im/s.
Video and audio: only the paper's abstract-level claims are verified; rows say so.
"""
from __future__ import annotations

SOURCE_IMAGES = "ToMe paper / official README (ImageNet-1k val, V100 fp32)"
SOURCE_ABSTRACT = "ToMe paper abstract (approximate)"
SOURCE_POLLARD = ("Pollard & Wray, Video, How Do Your Tokens Merge? (CVPRW 2025), "
                  "sjpollard/video-how-do-your-tokens-merge assets/table.png (K400 column, 'merge' row)")

# id: (description, metric, base value, base throughput, r, ToMe value, ToMe throughput, source)
ROWS = {
    "augreg_vit_s16": ("AugReg ViT-S/16 off-the-shelf", "acc1", 81.41, 953, 13, 79.30, 1564, SOURCE_IMAGES),
    "augreg_vit_b16": ("AugReg ViT-B/16 off-the-shelf", "acc1", 84.57, 309, 13, 82.60, 511, SOURCE_IMAGES),
    "augreg_vit_l16": ("AugReg ViT-L/16 off-the-shelf", "acc1", 85.82, 95, 7, 84.26, 167, SOURCE_IMAGES),
    "augreg_vit_l16_384": ("AugReg ViT-L/16@384 off-the-shelf", "acc1", 86.92, 28, 23, 86.14, 56, SOURCE_IMAGES),
    "swag_vit_b16_384": ("SWAG ViT-B/16@384 off-the-shelf", "acc1", 85.30, 85.7, 45, 84.59, 167.7, SOURCE_IMAGES),
    "swag_vit_l16_512": ("SWAG ViT-L/16@512 off-the-shelf", "acc1", 88.06, 12.8, 40, 87.80, 26.3, SOURCE_IMAGES),
    "swag_vit_h14_518": ("SWAG ViT-H/14@518 off-the-shelf", "acc1", 88.55, 4.7, 40, 88.25, 9.8, SOURCE_IMAGES),
    "mae_vit_l16_offshelf": ("MAE ViT-L/16 off-the-shelf", "acc1", 85.96, 93, 8, 84.22, 183, SOURCE_IMAGES),
    "mae_vit_b16_tome": ("MAE ViT-B/16 trained with ToMe", "acc1", 83.62, 309, 16, 81.91, 603, SOURCE_IMAGES),
    "mae_vit_l16_tome": ("MAE ViT-L/16 trained with ToMe", "acc1", 85.66, 93, 8, 85.09, 183, SOURCE_IMAGES),
    "mae_vit_h14_tome": ("MAE ViT-H/14 trained with ToMe", "acc1", 86.88, 35, 7, 86.46, 63, SOURCE_IMAGES),
    "deit_s16_tome": ("DeiT-S/16 trained with ToMe", "acc1", 79.8, 930, 13, 79.36, 1550, SOURCE_IMAGES),
    "deit_ti16_tome": ("DeiT-Ti/16 trained with ToMe", "acc1", 71.8, 2558, 13, 71.27, 3980, SOURCE_IMAGES),
    # Video: about 2.2x throughput for ViT-L MAE-ST on K400 at a small drop; base top-1 from the
    # MAE-ST recipe (84.4-84.8, 16x4). The ToMe accuracy is not verified here: left empty.
    "maest_vit_l_k400": ("Spatiotemporal MAE ViT-L K400 (ToMe, video)", "acc1", 84.4, 1.0, 65, None, 2.2,
                         SOURCE_ABSTRACT),
    # Audio: Audio-MAE ViT-B AS-2M 47.3 mAP; trained with ToMe about 2x throughput at -0.4 mAP.
    "audiomae_vit_b_as2m": ("Audio-MAE ViT-B AS-2M (ToMe, audio)", "map", 47.3, 1.0, None, 46.9, 2.0,
                            SOURCE_ABSTRACT),
    # Training-free merging on VideoMAE-B fine-tuned on K400, r=150 per layer. Their protocol differs
    # from ours: 16 frames at sampling rate 1, one view (configs/videomae/kinetics/
    # tome_VideoMAE_B_16_224_K400.yaml), proportional attention off (experiments.sh
    # TOME.PROP_ATTN False), so compare the speed-up and the drop, not the top-1 itself.
    "videomae_vitb_k400_offshelf": ("VideoMAE ViT-B K400 off-the-shelf (16x1, 1 view, no prop. attn)",
                                    "acc1", 62.09, 186.72, 150, 56.10, 476.28, SOURCE_POLLARD),
    # FastAST (arXiv 2406.07676) adds ToMe to AST and reports ESC-50, Speech Commands V2 and
    # balanced AudioSet; its tables could not be read and checked here, so it has no row (no
    # number is entered unverified). AST's own 45.93 mAP is in the checkpoint's name.
}


def row(paper_id: str) -> dict:
    desc, metric, base, base_speed, r, value, speed, source = ROWS[paper_id]
    return {"id": paper_id, "description": desc, "metric": metric, "base": base, "r": r,
            "tome": value, "speedup": speed / base_speed, "source": source}
