"""A small synthetic multi-label sound-event set, written as real 16 kHz WAV files.

Each clip mixes 1-3 sound events drawn from up to ten classes (tones, chirps, noise bursts,
clicks, modulated tones, ...) at random times and levels over faint background noise. The
classes differ in pitch, sweep direction, temporal texture and bandwidth, so a tiny audio ViT on
log-mel features learns them far above chance and mAP is a meaningful number. The files, the
Audio-MAE style JSON lists and the AudioSet-style label csv go through exactly the same loader
as real AudioSet data.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import soundfile

from launch.engine.errors import ConfigError
from launch.engine.generated import regenerate

from .features import SAMPLE_RATE
from .lists import LABEL_CSV_NAME


def _envelope(n: int) -> np.ndarray:
    # 10 ms raised-cosine fades keep onsets from smearing energy across all bands.
    ramp = min(n // 2, SAMPLE_RATE // 100)
    env = np.ones(n)
    if ramp > 0:
        fade = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        env[:ramp], env[n - ramp:] = fade, fade[::-1]
    return env


def _tone(rng, n, lo, hi):
    t = np.arange(n) / SAMPLE_RATE
    return np.sin(2 * np.pi * rng.uniform(lo, hi) * t + rng.uniform(0, 2 * np.pi))


def _sweep(rng, n, f0, f1):
    # Exponential sweep: equal time per octave, a straight line on the mel axis.
    t = np.arange(n) / SAMPLE_RATE
    duration = n / SAMPLE_RATE
    k = np.log(f1 / f0) / duration
    return np.sin(2 * np.pi * f0 * (np.exp(k * t) - 1) / k)


def _low_tone(rng, n):
    return _tone(rng, n, 150, 350)


def _high_tone(rng, n):
    return _tone(rng, n, 2500, 4500)


def _up_chirp(rng, n):
    return _sweep(rng, n, rng.uniform(250, 500), rng.uniform(3000, 5000))


def _down_chirp(rng, n):
    return _sweep(rng, n, rng.uniform(3000, 5000), rng.uniform(250, 500))


def _noise_burst(rng, n):
    out = np.zeros(n)
    for _ in range(rng.integers(1, 4)):
        length = int(rng.uniform(0.08, 0.25) * SAMPLE_RATE)
        start = rng.integers(0, max(1, n - length))
        seg = out[start:start + length]
        seg += rng.standard_normal(len(seg)) * _envelope(len(seg))
    return out


def _click_train(rng, n):
    out = np.zeros(n)
    period = int(SAMPLE_RATE / rng.uniform(12, 30))
    out[rng.integers(0, period)::period] = 1.0
    # A short decaying click reads as a broadband stripe in each frame it hits.
    click = np.exp(-np.arange(32) / 6.0) * rng.choice([-1.0, 1.0], size=32)
    return np.convolve(out, click)[:n]


def _am_tone(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    return _tone(rng, n, 1000, 1500) * 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(4, 8) * t))


def _harmonic_buzz(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    f0 = rng.uniform(100, 180)
    return sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11)) / 2


def _warble(rng, n):
    t = np.arange(n) / SAMPLE_RATE
    rate, depth, centre = rng.uniform(3, 6), rng.uniform(100, 180), rng.uniform(600, 800)
    phase = 2 * np.pi * centre * t - depth / rate * np.cos(2 * np.pi * rate * t)
    return np.sin(phase)


def _rumble(rng, n):
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < 30) | (freqs > 250)] = 0
    out = np.fft.irfft(spectrum, n)
    return out / (np.abs(out).max() + 1e-9)


GENERATOR_VERSION = 1  # bumped whenever the clips change, so old demo folders are rewritten

CLASSES = (
    ("low_tone", "Low tone", _low_tone),
    ("high_tone", "High tone", _high_tone),
    ("up_chirp", "Upward chirp", _up_chirp),
    ("down_chirp", "Downward chirp", _down_chirp),
    ("noise_burst", "Noise burst", _noise_burst),
    ("click_train", "Click train", _click_train),
    ("am_tone", "Amplitude-modulated tone", _am_tone),
    ("harmonic_buzz", "Harmonic buzz", _harmonic_buzz),
    ("warble", "Warble", _warble),
    ("rumble", "Low rumble", _rumble),
)


def _clip(rng, num_classes: int, n: int) -> tuple[np.ndarray, list[int]]:
    labels = sorted(rng.choice(num_classes, size=rng.integers(1, 4), replace=False).tolist())
    mix = rng.standard_normal(n) * rng.uniform(0.003, 0.015)
    for k in labels:
        length = int(min(n, rng.uniform(0.4, 0.6) * n))
        start = rng.integers(0, n - length + 1)
        event = CLASSES[k][2](rng, length)
        event = event / (np.abs(event).max() + 1e-9) * rng.uniform(0.1, 0.35)
        mix[start:start + length] += event * _envelope(length)
    return np.clip(mix, -1, 1).astype(np.float32), labels


def write_demo_audio(root, num_classes: int = 8, clips: int = 240, seconds: float = 2.5,
                     seed: int = 0) -> tuple[Path, Path, Path]:
    """Write ``clips`` WAVs (the last quarter for validation) and return (train_json, val_json,
    label_csv). Layout: ROOT/audio/{split}_{i:04d}.wav, ROOT/train.json, ROOT/val.json,
    ROOT/class_labels_indices.csv; label mids are ``/demo/<name>``. Same seed, same bytes.
    Rewritten only when the settings (or the generator) change (launch/engine/generated.py)."""
    if not 2 <= num_classes <= len(CLASSES):
        raise ConfigError(f"num_classes={num_classes}; the demo has 2..{len(CLASSES)} classes")
    if clips < 2:
        raise ConfigError(f"clips={clips}; need at least 2 (one train, one validation)")
    if not 0.05 <= seconds <= 60:
        raise ConfigError(f"seconds={seconds}; valid range is 0.05..60")
    root = Path(root)
    settings = {"generator": GENERATOR_VERSION, "num_classes": num_classes, "clips": clips,
                "seconds": seconds, "seed": seed}
    label_csv = root / LABEL_CSV_NAME
    regenerate(root, settings, ("audio", "train.json", "val.json", LABEL_CSV_NAME),
               lambda: _write_all(root, num_classes, clips, seconds, seed), "write_demo_audio",
               ours=r"audio/(train|val)_\d{4}\.wav|(train|val)\.json|" + re.escape(LABEL_CSV_NAME))
    return root / "train.json", root / "val.json", label_csv


def _write_all(root: Path, num_classes: int, clips: int, seconds: float, seed: int) -> None:
    (root / "audio").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SAMPLE_RATE))
    num_val = max(1, clips // 4)
    splits: dict[str, list[dict]] = {"train": [], "val": []}
    for i in range(clips):
        split = "train" if i < clips - num_val else "val"
        audio, labels = _clip(rng, num_classes, n)
        rel = f"audio/{split}_{i:04d}.wav"
        soundfile.write(str(root / rel), audio, SAMPLE_RATE, subtype="PCM_16")
        splits[split].append({"wav": rel, "labels": ",".join(f"/demo/{CLASSES[k][0]}" for k in labels)})

    label_csv = root / LABEL_CSV_NAME
    with open(label_csv, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["index", "mid", "display_name"])
        for k in range(num_classes):
            writer.writerow([k, f"/demo/{CLASSES[k][0]}", CLASSES[k][1]])
    for split, entries in splits.items():
        (root / f"{split}.json").write_text(json.dumps({"data": entries}, indent=1))
