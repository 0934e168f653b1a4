"""Audio file -> normalised log-mel filterbank, matching Audio-MAE's AudioSet preprocessing.

Audio-MAE (dataset.py, ``_wav2fbank`` and ``__getitem__``) does, per clip:

1. subtract the waveform mean;
2. ``torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type='hanning',
   num_mel_bins=128, dither=0.0, frame_shift=10)`` (frame_length keeps its 25 ms default);
3. zero-pad (at the end) or crop to ``target_length`` frames (1024 for AudioSet = 10.24 s);
4. normalise as ``(fbank - mean) / (2 * std)`` with AudioSet's mean = -4.2677393 and
   std = 4.5689974, i.e. ``(fbank + 4.2677393) / 9.1379948``. The mean is *subtracted* (it is
   negative, so the constant is added) and the std is doubled, as AST/Audio-MAE do, which puts
   the features at roughly zero mean and 0.5 std.

Padding happens before normalisation, so padded frames hold ``padded_value()`` (about 0.467),
not 0. Audio-MAE also applies SpecAugment before step 4 (masked cells become raw 0); the dataset
reproduces that after normalisation by masking with ``padded_value()``.

Audio-MAE feeds files that are already 16 kHz mono; here other rates are resampled to 16 kHz and
channels are averaged, so any WAV/FLAC gives the same features the model was trained on.
"""

from __future__ import annotations

import numpy as np
import soundfile
import torch
import torchaudio

from launch.engine.errors import ConfigError, DataError

SAMPLE_RATE = 16000
AUDIOSET_MEAN = -4.2677393
AUDIOSET_STD = 4.5689974
_MIN_SAMPLES = 400  # one 25 ms window at 16 kHz; kaldi.fbank needs at least one frame


def normalise(fbank: torch.Tensor) -> torch.Tensor:
    """Audio-MAE's AudioSet normalisation: (x - mean) / (2 * std)."""
    return (fbank - AUDIOSET_MEAN) / (AUDIOSET_STD * 2)


def padded_value() -> float:
    """What a raw 0 (padding or a SpecAugment mask) becomes after normalisation."""
    return float(normalise(torch.tensor(0.0)))


def read_audio(path) -> torch.Tensor:
    """Read a WAV/FLAC file as a mono float32 tensor (1, samples) at 16 kHz.

    Raises whatever soundfile raises for unreadable files, and ValueError for empty or
    non-finite audio, so the caller can treat all of them as one corrupt file.
    """
    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if data.size == 0:
        raise ValueError(f"{path}: no audio samples")
    waveform = torch.from_numpy(np.ascontiguousarray(data.mean(axis=1)))[None]
    if not torch.isfinite(waveform).all():
        raise ValueError(f"{path}: audio holds NaN or infinite samples")
    if rate != SAMPLE_RATE:
        waveform = torchaudio.functional.resample(waveform, rate, SAMPLE_RATE)
    return waveform


def wav_to_fbank(waveform: torch.Tensor, sample_rate: int = SAMPLE_RATE, target_length: int = 1024,
                 mel_bins: int = 128) -> torch.Tensor:
    """Mono/multi-channel waveform -> normalised Kaldi fbank of shape (target_length, mel_bins)."""
    if target_length <= 0 or mel_bins <= 0:
        raise ConfigError(f"target_length={target_length}, mel_bins={mel_bins}; both must be positive")
    waveform = torch.as_tensor(waveform, dtype=torch.float32)
    if waveform.dim() == 1:
        waveform = waveform[None]
    elif waveform.dim() != 2:
        raise DataError(f"waveform shape {tuple(waveform.shape)}; expected (samples,) or "
                          "(channels, samples)")
    waveform = waveform.mean(dim=0, keepdim=True)  # mix to mono
    if sample_rate != SAMPLE_RATE:
        waveform = torchaudio.functional.resample(waveform, sample_rate, SAMPLE_RATE)
    waveform = waveform - waveform.mean()
    if waveform.shape[1] < _MIN_SAMPLES:
        waveform = torch.nn.functional.pad(waveform, (0, _MIN_SAMPLES - waveform.shape[1]))
    fbank = torchaudio.compliance.kaldi.fbank(
        waveform, htk_compat=True, sample_frequency=SAMPLE_RATE, use_energy=False,
        window_type="hanning", num_mel_bins=mel_bins, dither=0.0, frame_shift=10)
    frames = fbank.shape[0]
    if frames < target_length:
        fbank = torch.nn.functional.pad(fbank, (0, 0, 0, target_length - frames))
    else:
        fbank = fbank[:target_length]
    return normalise(fbank)
