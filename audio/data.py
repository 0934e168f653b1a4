"""AudioSet-style clip dataset for Audio-MAE, and the public data API of the audio modality.

The pieces live in small modules and are re-exported here:

* ``audio.lists``    -- ``load_audio_list`` (AudioSet segment CSV or Audio-MAE JSON + label csv)
* ``audio.features`` -- ``read_audio``, ``wav_to_fbank`` (Audio-MAE's Kaldi fbank + normalisation)
* ``audio.sampling`` -- ``class_balanced_weights`` (the engine's sampler draws with them)
* ``audio.demo``     -- ``write_demo_audio`` (synthetic multi-label clips); CLI:
  ``python -m audio.data demo ROOT [--num-classes 8 --clips 240 --seconds 2.5 --seed 0]``
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
import torchaudio
from torch.utils.data import Dataset

from launch.engine.data import load_with_standins
from launch.engine.tasks import Sample, make_sample
from launch.engine.errors import ConfigError

from .demo import CLASSES as DEMO_CLASSES
from .demo import write_demo_audio
from .features import padded_value, read_audio, wav_to_fbank
from .lists import load_audio_list, read_label_csv, resolve_label_csv
from .sampling import class_balanced_weights

__all__ = [
    "AudioClipDataset", "class_balanced_weights", "load_audio_list",
    "read_audio", "read_label_csv", "wav_to_fbank", "write_demo_audio",
]

log = logging.getLogger(__name__)


class AudioClipDataset(Dataset):
    """Clips from an AudioSet CSV or Audio-MAE JSON list as normalised fbank + multi-hot target.

    Item: :class:`launch.engine.tasks.Sample` with ``"input"`` (1, target_length, mel_bins)
    float32 and ``"target"`` (num_classes,) float32. A file that cannot be read is logged and
    replaced by a random other clip; ``index`` is the item asked for, ``group`` the clip actually
    returned (with wave mixup: the clip mixed into, not its partner) and ``skipped`` how many
    failed before it (sum it over a run to report data loss). After ``1 + max_retries`` failures in a row the item
    raises, since then the list or root is wrong rather than one file.

    Training augmentation, as Audio-MAE's AudioSet fine-tuning (``dataset.py``):

    * ``wave_mixup=p``: with probability p the clip's waveform is mixed with the waveform of a
      clip drawn uniformly from the whole list (possibly itself). Both are mean-subtracted (and
      gain-scaled when ``roll``); the partner is zero-padded at the end or cut to the clip's
      length; lambda ~ Beta(10, 10); the mix is ``lambda * clip + (1 - lambda) * partner``, its
      mean subtracted, and only then turned into an fbank. The target is
      ``lambda * labels(clip) + (1 - lambda) * labels(partner)``, so a shared class gets 1.
    * ``roll``: scale the waveform by Beta(10, 10) + 0.5. Audio-MAE calls this "roll_mag_aug" and
      also rolls the waveform by ``np.random.randint(len(waveform))``, but its waveform is a
      (1, N) array, so ``len`` is 1, the shift is always 0 and the official runs never shifted
      in time: only the gain is reproduced here.
    * SpecAugment with ``freq_mask``/``time_mask`` maximum widths, and ``noise`` (add small
      uniform noise to the fbank and shift it by up to 10 frames).

    Evaluation (``train=False``) applies none of them.
    """

    def __init__(self, list_path, root=None, label_csv=None, train: bool = False,
                 target_length: int = 1024, mel_bins: int = 128, freq_mask: int = 48,
                 time_mask: int = 192, noise: bool = False, roll: bool = False, max_retries: int = 10,
                 wave_mixup: float = 0.0):
        if target_length <= 0 or mel_bins <= 0:
            raise ConfigError(f"target_length={target_length}, mel_bins={mel_bins}; both must be positive")
        # Mask widths only matter when training (evaluation never masks).
        if train and not 0 <= freq_mask <= mel_bins:
            raise ConfigError(f"freq_mask={freq_mask}; valid range is 0..mel_bins ({mel_bins})")
        if train and not 0 <= time_mask <= target_length:
            raise ConfigError(f"time_mask={time_mask}; valid range is 0..target_length ({target_length})")
        if not 0.0 <= wave_mixup <= 1.0:
            raise ConfigError(f"wave_mixup={wave_mixup}; it is a probability, valid range is [0, 1]")
        if max_retries < 0:
            raise ConfigError(f"max_retries={max_retries}; must be >= 0")
        label_path = resolve_label_csv(list_path, root, label_csv)
        self.items, self.num_classes = load_audio_list(list_path, root, label_path)
        self.class_names = read_label_csv(label_path)[1]
        self.train = train
        self.target_length = target_length
        self.mel_bins = mel_bins
        self.noise = noise
        self.roll = roll
        self.wave_mixup = float(wave_mixup) if train else 0.0
        self.max_retries = max_retries
        self.freq_masking = torchaudio.transforms.FrequencyMasking(freq_mask) if train and freq_mask else None
        self.time_masking = torchaudio.transforms.TimeMasking(time_mask) if train and time_mask else None

    def __len__(self) -> int:
        return len(self.items)

    def _gain(self, waveform: torch.Tensor) -> torch.Tensor:
        # Audio-MAE's roll_mag_aug as it behaves: its roll shift is always 0 (see the class doc).
        # torch's RNG, not numpy's, so DataLoader workers get distinct draws.
        return waveform * (float(torch.distributions.Beta(10.0, 10.0).sample()) + 0.5)

    def _waveform(self, path: str) -> torch.Tensor:
        # Audio-MAE subtracts the mean, then scales; scaling first and subtracting the mean of the
        # scaled waveform (here: in wav_to_fbank, or before mixing) is the same g * (w - mean).
        waveform = read_audio(path)
        if self.train and self.roll:
            waveform = self._gain(waveform)
        return waveform

    def _fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        # wav_to_fbank subtracts the mean again: a no-op for one clip, Audio-MAE's re-centring of
        # the mix for two.
        fbank = wav_to_fbank(waveform, target_length=self.target_length, mel_bins=self.mel_bins)
        if self.train:
            spec = fbank.t()[None]  # torchaudio masks expect (..., freq, time)
            # Audio-MAE masks before normalising, so masked cells hold normalised zero.
            if self.freq_masking is not None:
                spec = self.freq_masking(spec, mask_value=padded_value())
            if self.time_masking is not None:
                spec = self.time_masking(spec, mask_value=padded_value())
            fbank = spec[0].t()
            if self.noise:
                fbank = fbank + torch.rand_like(fbank) * float(torch.rand(())) / 10
                fbank = torch.roll(fbank, int(torch.randint(-10, 10, ())), dims=0)
        return fbank[None].contiguous()

    def _multi_hot(self, index: int) -> torch.Tensor:
        target = torch.zeros(self.num_classes, dtype=torch.float32)
        target[self.items[index][1]] = 1.0
        return target

    def _load(self, index: int) -> tuple[torch.Tensor, int, list]:
        return load_with_standins(
            lambda i: self._waveform(self.items[i][0]), lambda i: self.items[i][0], index,
            lambda i, attempt: int(torch.randint(0, len(self.items), ())),
            self.max_retries, "audio", log)

    def __getitem__(self, index: int) -> Sample:
        waveform, clip, failures = self._load(index)
        target = self._multi_hot(clip)
        if self.wave_mixup > 0 and float(torch.rand(())) < self.wave_mixup:
            other, partner, more = self._load(int(torch.randint(0, len(self.items), ())))
            failures = failures + more
            other = other - other.mean()  # centred before the padding / cut, as Audio-MAE does
            n = waveform.shape[-1]
            other = other[..., :n] if other.shape[-1] >= n else \
                torch.nn.functional.pad(other, (0, n - other.shape[-1]))
            lam = float(torch.distributions.Beta(10.0, 10.0).sample())
            waveform = lam * (waveform - waveform.mean()) + (1.0 - lam) * other
            target = lam * target + (1.0 - lam) * self._multi_hot(partner)
        return make_sample(self._fbank(waveform), target, index, clip, failures)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m audio.data", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="write the synthetic multi-label demo set into ROOT")
    demo.add_argument("root")
    demo.add_argument("--num-classes", type=int, default=8, help=f"2..{len(DEMO_CLASSES)}")
    demo.add_argument("--clips", type=int, default=240, help="total clips; the last quarter is validation")
    demo.add_argument("--seconds", type=float, default=2.5)
    demo.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    paths = write_demo_audio(args.root, args.num_classes, args.clips, args.seconds, args.seed)
    print(f"wrote {args.clips} clips in {time.perf_counter() - start:.1f}s: {', '.join(map(str, paths))}")


if __name__ == "__main__":
    main()
