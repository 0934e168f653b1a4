"""The video demo's claim: one frame carries no label information, only the motion does.

A classifier (logistic regression on quadratic terms) sees hand-made features of the rendered frames (brightness histogram, the bright
actor's area and centroid). From one frame it must stay at chance; from the first and the last
frame together (a positive control: the same features can see the motion) it must not.
"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from video.demo import _render

FRAMES, H, W = 6, 32, 40
ACTOR = 185  # the actor's brightest channel is >= 190; background and distractor stay below


def _frame_features(frame: np.ndarray) -> np.ndarray:
    bright = frame.max(axis=-1)
    hist = np.histogram(bright, bins=8, range=(0, 256))[0] / bright.size
    mask = bright >= ACTOR
    ys, xs = np.nonzero(mask)
    # centroid on the torus (the actor wraps around the edges): circular means
    cy = np.angle(np.exp(2j * np.pi * ys / H).mean()) if len(ys) else 0.0
    cx = np.angle(np.exp(2j * np.pi * xs / W).mean()) if len(xs) else 0.0
    return np.r_[hist, mask.mean(), cy, cx, frame.reshape(-1, 3).mean(0)]


def _dataset(num_classes: int, per_class: int, seed: int, frames=(None,)):
    """Features of the given frame indices (None: one random frame) of rendered videos."""
    rng = np.random.default_rng(seed)
    pick = np.random.default_rng(seed + 1)
    features, labels = [], []
    for i in range(per_class):
        for label in range(num_classes):
            video = _render(rng, label, FRAMES, H, W)
            idx = [int(pick.integers(FRAMES)) if f is None else f for f in frames]
            feats = [_frame_features(video[j]) for j in idx]
            if len(feats) == 2:  # the change between the two frames, wrapped for positions
                delta = feats[1] - feats[0]
                delta[-5:-3] = np.angle(np.exp(1j * delta[-5:-3]))
                feats.append(delta)
            features.append(np.concatenate(feats))
            labels.append(label)
    return np.array(features), np.array(labels)


def _accuracy(num_classes: int, frames) -> tuple:
    x, y = _dataset(num_classes, 120, seed=0, frames=frames)
    xt, yt = _dataset(num_classes, 120, seed=100, frames=frames)
    # quadratic terms: a class may differ only in the middle of a range (e.g. of the actor's area)
    clf = make_pipeline(StandardScaler(), PolynomialFeatures(2), StandardScaler(),
                        LogisticRegression(C=0.1, max_iter=2000)).fit(x, y)
    return float((clf.predict(xt) == yt).mean()), len(yt)


def test_a_single_frame_classifier_stays_at_chance():
    # (The generator before this test drew a moving actor's radius from a narrower range than a
    # growing one's; this classifier read 34% from one frame then.)
    num_classes = 4
    acc, n = _accuracy(num_classes, frames=(None,))
    chance = 1.0 / num_classes
    se = np.sqrt(chance * (1 - chance) / n)
    assert acc < chance + 4 * se, f"one frame predicts the class: {acc:.3f} vs chance {chance:.3f}"


def test_first_and_last_frame_together_reveal_the_motion():
    acc, _ = _accuracy(4, frames=(0, FRAMES - 1))
    assert acc > 0.6  # chance 0.25
