"""Real read speech with reference transcripts from Debian's ``pocketsphinx-testdata`` (BSD-2).

Two sets, 16 kHz mono 16-bit WAVs:
  * ``librivox``: five sentences of *Sense and Sensibility* read for LibriVox (3 to 7 s each);
  * ``cards``: five short phrases naming playing cards ("ten of clubs", about 1 to 3 s).
Each set's transcript file holds lines ``<s> words </s> (utterance id)``.
"""
from __future__ import annotations

import re
import wave
from pathlib import Path
from typing import List, NamedTuple, Optional

import numpy as np

DATA = Path("/usr/share/pocketsphinx/test/data")
SETS = {"librivox": ("librivox", "transcription", "{}.wav"),
        "cards": ("cards", "cards.transcription", "{}.wav")}
MISSING = "pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata)"


class Clip(NamedTuple):
    name: str
    audio: np.ndarray  # float32 in [-1, 1], 16 kHz
    text: str          # the reference transcript, lower case as shipped


def read_wav(path) -> np.ndarray:
    """A 16 kHz mono 16-bit WAV as float32 samples in [-1, 1]."""
    with wave.open(str(path)) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
            raise ValueError(f"{path}: need 16 kHz mono 16-bit PCM, got {w.getframerate()} Hz, "
                             f"{w.getnchannels()} channels, {8 * w.getsampwidth()}-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def available(root: Optional[Path] = None) -> bool:
    root = DATA if root is None else Path(root)
    return all((root / folder / script).is_file() for folder, script, _ in SETS.values())


def load_clips(sets=("librivox", "cards"), root: Optional[Path] = None) -> List[Clip]:
    """The clips of the named sets, in transcript order."""
    root = DATA if root is None else Path(root)
    if not available(root):
        raise FileNotFoundError(f"{root}: {MISSING}")
    clips = []
    for name in sets:
        if name not in SETS:
            raise ValueError(f"clip set must be one of {sorted(SETS)}, got {name!r}")
        folder, script, pattern = SETS[name]
        for line in (root / folder / script).read_text().splitlines():
            m = re.match(r"\s*<s>(.*)</s>\s*\((\S+)\)\s*$", line)
            if m is None:
                continue
            words, utt = " ".join(m.group(1).split()), m.group(2)
            clips.append(Clip(f"{name}/{utt}", read_wav(root / folder / pattern.format(utt)), words))
    return clips
