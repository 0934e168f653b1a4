"""Whisper tiny.en on clips: log-mel features, greedy decoding, text.

Decoding follows Whisper's (and CTranslate2's) greedy search without timestamps: the prompt is
``<|startoftranscript|><|notimestamps|>`` (tiny.en is English-only: no language or task token);
the config's ``suppress_tokens`` are never emitted and ``begin_suppress_tokens`` (the blank and
end of text) not as the first token; decoding stops at ``<|endoftext|>``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch

SOT, NO_TIMESTAMPS, EOT = 50257, 50362, 50256
PROMPT = (SOT, NO_TIMESTAMPS)


def log_mel(audios: Sequence[np.ndarray], num_mel_bins: int = 80) -> torch.Tensor:
    """[B, mel, 3000] Whisper features (30 s windows, zero padded) of 16 kHz float32 clips."""
    from transformers import WhisperFeatureExtractor
    extractor = WhisperFeatureExtractor(feature_size=num_mel_bins)
    feats = extractor(list(audios), sampling_rate=16000, return_tensors="np").input_features
    return torch.from_numpy(np.asarray(feats, dtype=np.float32))


def tokenizer(directory: Path):
    """The Whisper byte-level BPE from ``tokenizer.json`` (the ``tokenizers`` library)."""
    import tokenizers
    return tokenizers.Tokenizer.from_file(str(Path(directory) / "tokenizer.json"))


def _suppression(config, vocab: int, device) -> tuple:
    always = torch.zeros(vocab, dtype=torch.bool, device=device)
    always[list(config.suppress_tokens or [])] = True
    first = always.clone()
    first[list(config.begin_suppress_tokens or [])] = True
    return always, first


@torch.no_grad()
def greedy(model, features: torch.Tensor, max_new_tokens: int = 96, prompt=PROMPT,
           eot: int = EOT) -> List[List[int]]:
    """Greedy transcription tokens (prompt and end token excluded) of a batch of features.

    The encoder runs once; each step feeds the last token with the decoder's key/value cache and
    the encoder output (with its token sizes when the model merges)."""
    batch = features.shape[0]
    device = features.device
    encoded = model.get_encoder()(input_features=features)
    ids = torch.tensor([list(prompt)] * batch, device=device)
    always, first = _suppression(model.config, model.config.vocab_size, device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out: List[List[int]] = [[] for _ in range(batch)]
    cache = None
    for step in range(max_new_tokens):
        res = model(encoder_outputs=encoded, decoder_input_ids=ids, cache=cache, use_cache=True)
        cache = res.cache
        logits = res.logits[:, -1].float()
        logits = logits.masked_fill(first if step == 0 else always, -torch.inf)
        nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, eot), nxt)
        for i in range(batch):
            if not done[i] and int(nxt[i]) != eot:
                out[i].append(int(nxt[i]))
        done |= nxt == eot
        if bool(done.all()):
            break
        ids = nxt[:, None]
    return out


def texts(tok, token_lists: List[List[int]]) -> List[str]:
    return [tok.decode(ids, skip_special_tokens=True).strip() for ids in token_lists]


def transcribe(model, tok, audios: Sequence[np.ndarray], batch_size: int = 8) -> List[str]:
    """Transcripts of 16 kHz clips (each at most 30 s)."""
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    result: List[str] = []
    for start in range(0, len(audios), batch_size):
        feats = log_mel(audios[start:start + batch_size], model.config.num_mel_bins)
        result += texts(tok, greedy(model, feats.to(device, dtype)))
    return result
