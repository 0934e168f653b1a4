"""Word error rate: (substitutions + deletions + insertions) / reference words.

Texts are normalised first, in the spirit of Whisper's English normaliser (the paper's
Appendix C) but much smaller: lower case; ``mr``/``mrs``/``dr`` spelled out (``mister`` ...);
hyphens and slashes become spaces; every other character that is not a letter, digit, space or
apostrophe is dropped; the numbers 0 to 20 written as digits become words ("10" -> "ten"), since
read-speech references spell numbers out.
"""
from __future__ import annotations

import re
from typing import Sequence

NUMBERS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
           "fifteen sixteen seventeen eighteen nineteen twenty").split()
TITLES = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def normalize(text: str) -> list:
    """The words of ``text`` after the normalisation described in the module doc."""
    text = re.sub(r"[-/]", " ", text.lower())
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    words = []
    for word in text.split():
        word = word.strip("'")
        if not word:
            continue
        word = TITLES.get(word, word)
        if word.isdigit() and int(word) < len(NUMBERS):
            word = NUMBERS[int(word)]
        words.append(word)
    return words


def edit_distance(ref: Sequence[str], hyp: Sequence[str]) -> int:
    """Fewest word substitutions, deletions and insertions turning ``ref`` into ``hyp``."""
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        row = [i]
        for j, h in enumerate(hyp, 1):
            row.append(min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = row
    return prev[-1]


def word_errors(reference: str, hypothesis: str) -> tuple:
    """(word errors, reference words) of one utterance, after normalisation."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return edit_distance(ref, hyp), len(ref)


def wer(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus word error rate: all errors over all reference words."""
    if len(references) != len(hypotheses):
        raise ValueError(f"wer needs one hypothesis per reference, got {len(hypotheses)} for "
                         f"{len(references)}")
    errors = words = 0
    for ref, hyp in zip(references, hypotheses):
        e, n = word_errors(ref, hyp)
        errors, words = errors + e, words + n
    if words == 0:
        raise ValueError("wer: the references hold no words")
    return errors / words
