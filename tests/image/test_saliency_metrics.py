"""The two agreement measures of image/saliency.py on hand-worked maps."""
from __future__ import annotations

import torch

from image.saliency import correlation, top_overlap


def test_correlation_is_pearsons_per_image():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 0.0, 1.0]])
    b = torch.tensor([[2.0, 4.0, 6.0, 8.0], [0.0, 1.0, 1.0, 0.0]])
    assert torch.allclose(correlation(a, b), torch.tensor([1.0, -1.0], dtype=torch.float64))
    # x = (-1, 0, 1), y = (0, 1, 0) after centring y = (-1/3, 2/3, -1/3): covariance 0
    assert abs(float(correlation(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0.0, 1.0, 0.0]])))) < 1e-12


def test_top_overlap_is_the_iou_of_the_most_salient_pixels():
    a = torch.tensor([[9.0, 8.0, 7.0, 6.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    b = torch.tensor([[9.0, 0.0, 7.0, 0.0, 8.0, 6.0, 0.0, 0.0, 0.0, 0.0]])
    # top 40%: a -> {0, 1, 2, 3}, b -> {0, 2, 4, 5}: 2 shared of 6
    assert float(top_overlap(a, b, fraction=0.4)) == 2 / 6
    assert float(top_overlap(a, a, fraction=0.4)) == 1.0
