"""The image configs cover the paper's Tables 1-4 row for row: each panel's sweep configs give one
run per row of the panel, and each Table 3 / 4 row is named by one config."""
import collections
import glob
import os

import pytest

from launch.engine.config import ConfigError, load_yaml, resolve
from launch.engine.paper import PANELS, TABLE_ROWS_LIST, known_ids
from launch.runs.plan import expand

from tests.repo import REPO

IMAGE_CONFIGS = sorted(glob.glob(os.path.join(REPO, "image", "configs", "*.yaml")))


IMAGE_PANELS = ("t1a", "t1b", "t1c", "t1d", "t1e", "t1f", "t2", "t3", "t4")
ROWS = {panel: tuple(r.id for r in TABLE_ROWS_LIST if r.panel == panel) for panel in IMAGE_PANELS}
ROW_IDS = tuple(row for rows in ROWS.values() for row in rows)
IDS = set(known_ids())


def _named():
    """paper id -> the runs of every image config naming it."""
    runs = collections.defaultdict(list)
    for path in IMAGE_CONFIGS:
        raw = load_yaml(path)
        if "name" in raw and raw.get("paper") in IDS:
            runs[raw["paper"]] += [run for stage in expand(raw) for run in stage]
    return runs


def test_row_ids_are_unique_and_each_belongs_to_one_panel():
    assert len(ROW_IDS) == len(set(ROW_IDS)) == 37  # 5+4+2+4+3+4 (Table 1), 6, 6, 3
    assert all(row.startswith(panel + "_") for panel, rows in ROWS.items() for row in rows)
    assert set(IMAGE_PANELS) <= set(PANELS)


def test_each_table_1_and_2_panel_has_one_run_per_row():
    runs = _named()
    for panel in ("t1a", "t1b", "t1c", "t1d", "t1e", "t1f", "t2"):
        assert len(runs[panel]) == len(ROWS[panel]), panel
    # Table 2's runs differ in (matching, kmeans_iters): six distinct settings
    t2 = {(r.cfg.tome.matching, r.cfg.tome.kmeans_iters if r.cfg.tome.matching == "kmeans" else None)
          for r in runs["t2"]}
    assert t2 == {("random_prune", None), ("attn_prune", None), ("kmeans", 2), ("kmeans", 5),
                  ("greedy", None), ("bipartite", None)}
    # Table 1f: off and on for each of the two models
    assert collections.Counter((r.cfg.model.name, r.cfg.tome.prop_attn) for r in runs["t1f"]) == {
        ("mae_vit_large_patch16", False): 1, ("mae_vit_large_patch16", True): 1,
        ("vit_large_patch16_224.augreg_in21k_ft_in1k", False): 1,
        ("vit_large_patch16_224.augreg_in21k_ft_in1k", True): 1}
    assert all(r.cfg.tome.eval_r == [8] for panel in ("t1a", "t1f", "t2") for r in runs[panel])


def test_each_table_3_and_4_row_is_one_config():
    runs = _named()
    for row in ROWS["t3"] + ROWS["t4"]:
        assert len(runs[row]) == 1, row
    dec = runs["t3_vit_l_r8_dec"][0].cfg.tome
    assert (dec.r, dec.inflection) == (8, -1.0)
    assert runs["t3_vit_l_r8"][0].cfg.tome.inflection is None


def test_an_unknown_paper_id_is_refused_naming_it():
    with pytest.raises(ConfigError, match="got 't9z'"):
        resolve(os.path.join(REPO, "image/configs/ablation_base.yaml"), ["paper=t9z"])
