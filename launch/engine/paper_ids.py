"""The ids of the rows of the paper's image tables (ToMe paper (arXiv v1) Tables 1-4) and of their
panels, as configs name them with ``paper:``.

A config that reproduces one row names the row id (``t3_vit_l_r8_dec``). A config that sweeps one
design axis names its panel id (``t1a``): each of its runs is one row of that panel, told apart by
the swept setting (the resolved ``tome.*`` keys). The published numbers of each row belong in
``launch/engine/paper.py``; this module only fixes the names, so that configs, the report and the
tables agree on them.
"""
from __future__ import annotations

# panel id -> (what it varies, its row ids in the paper's order)
PANELS = {
    "t1a": ("feature the similarity uses (tome.metric)", ("t1a_xpre", "t1a_x", "t1a_k", "t1a_q", "t1a_v")),
    "t1b": ("distance function (tome.distance)", ("t1b_euclidean", "t1b_cosine", "t1b_dot", "t1b_softmax")),
    "t1c": ("head aggregation (tome.heads)", ("t1c_concat", "t1c_mean")),
    "t1d": ("combining method (tome.mode)", ("t1d_keep", "t1d_max", "t1d_avg", "t1d_wavg")),
    "t1e": ("partition style (tome.partition)", ("t1e_sequential", "t1e_alternating", "t1e_random")),
    "t1f": ("proportional attention (tome.prop_attn), MAE and AugReg ViT-L/16",
            ("t1f_mae_off", "t1f_mae_on", "t1f_augreg_off", "t1f_augreg_on")),
    "t2": ("matching algorithm (tome.matching, tome.kmeans_iters)",
           ("t2_prune_random", "t2_prune_attn", "t2_kmeans2", "t2_kmeans5", "t2_greedy", "t2_bipartite")),
    "t3": ("MAE trained with merging: decreasing and constant schedules, baselines",
           ("t3_vit_l_r8_dec", "t3_vit_l_r8", "t3_vit_l_base", "t3_vit_h_r7_dec", "t3_vit_h_r7",
            "t3_vit_h_base")),
    "t4": ("ViT-S: DeiT-S trained with merging, AugReg ViT-S off-the-shelf",
           ("t4_deit_s_base", "t4_deit_s_r13", "t4_augreg_s_r13")),
}
ROW_IDS = tuple(row for _, rows in PANELS.values() for row in rows)
IDS = (*PANELS, *ROW_IDS)
