"""Word error rate of ToMe-patched Whisper tiny.en on real clips, and the encoder's speed-up.

One run: the unpatched model transcribes the clips (r = 0), then the patched model at every
``r`` and variant; the encoder alone (same clips, batch of all of them) is then timed at every
``r`` against the unpatched encoder, interleaved round by round (launch/engine/throughput.py).
"""
from __future__ import annotations

import copy
from typing import Dict, List, Sequence

import torch

import tome
from launch.engine.throughput import BASELINE, check_clock, summarize, time_interleaved

from .clips import load_clips
from .ct2 import load_whisper, model_dir
from .transcribe import greedy, log_mel, texts, tokenizer
from .wer import normalize, wer

# Patch options of each variant: the default and the two ablations the docs discuss.
VARIANTS = {"tome": {}, "no_prop_cross": {"prop_cross": False},
            "no_time_order": {"time_order": False}, "no_prop_attn": {"prop_attn": False}}


def check_variants(names: Sequence[str]) -> List[str]:
    for name in names:
        if name not in VARIANTS:
            raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {name!r}")
    return list(names)


def transcripts(model, tok, feats: torch.Tensor, batch_size: int = 10) -> List[str]:
    out: List[str] = []
    for i in range(0, feats.shape[0], batch_size):
        out += texts(tok, greedy(model, feats[i:i + batch_size]))
    return out


def encoder_tokens(model, feats: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model.get_encoder()(input_features=feats[:1]).last_hidden_state.shape[1])


def run(rs: Sequence[int], variants: Sequence[str] = ("tome",), sets=("librivox", "cards"),
        rounds: int = 5, warmup: int = 1, clock: str = "cpu", threads: int = 1,
        window=None, time_batch: int = 1, decode_threads: int = 2, progress=None) -> Dict:
    """WER per (variant, r) and encoder speed-up per r; returns a dict of rows and transcripts.
    ``threads``/``clock``: the timing's; ``decode_threads``: the transcription's; ``progress``
    is called with each row as soon as its WER is known."""
    variants = check_variants(variants)
    device = torch.device("cpu")
    check_clock(clock, device, threads)
    torch.set_num_threads(decode_threads)
    model, tok = load_whisper(), tokenizer(model_dir())
    clips = load_clips(sets)
    refs = [c.text for c in clips]
    feats = log_mel([c.audio for c in clips], model.config.num_mel_bins)
    base_encoder = copy.deepcopy(model.get_encoder())
    base_text = transcripts(model, tok, feats)
    if progress is not None:
        progress({"variant": "unpatched", "r": 0, "wer": wer(refs, base_text)})
    rows = []
    hyps = {("unpatched", 0): base_text}
    for variant in variants:
        tome.patch.whisper(model, window=window, **VARIANTS[variant])
        for r in rs:
            model.r = r
            text = transcripts(model, tok, feats)
            hyps[(variant, r)] = text
            rows.append({"variant": variant, "r": r, "tokens": encoder_tokens(model, feats),
                         "wer": wer(refs, text),
                         "same_as_r0": sum(normalize(a) == normalize(b) for a, b in zip(text, base_text)),
                         "clips": len(clips)})
            if progress is not None:
                progress(rows[-1])
        tome.unpatch(model)
    # Encoder speed-up, interleaved: the unpatched encoder and the patched one at every r.
    torch.set_num_threads(threads)
    tome.patch.whisper(model, window=window)
    encoder = model.get_encoder()
    x = feats[:time_batch]

    def step(module, r=None):
        def fn():
            if r is not None:
                model.r = r
            with torch.no_grad():
                module(input_features=x)
        return fn

    steps = {BASELINE: step(base_encoder)}
    steps.update({f"r={r}": step(encoder, r) for r in rs})
    times = time_interleaved(steps, rounds, warmup, device, clock)
    speed = summarize(times, {name: x.shape[0] for name in steps}, baseline=BASELINE)
    tome.unpatch(model)
    for row in rows:
        s = speed[f"r={row['r']}"]
        row.update({"speedup": s["speedup"], "speedup_q1": s["speedup_q1"], "speedup_q3": s["speedup_q3"]})
    return {"rows": rows, "base_wer": wer(refs, base_text), "refs": refs,
            "names": [c.name for c in clips], "hyps": hyps,
            "timing": {"clock": clock, "threads": threads, "rounds": rounds, "batch": x.shape[0]}}


def markdown(result: Dict) -> str:
    """The WER table: one row per r, one WER column per variant, the encoder speed-up."""
    rows = result["rows"]
    variants = list(dict.fromkeys(row["variant"] for row in rows))
    rs = list(dict.fromkeys(row["r"] for row in rows))
    cell = {(row["variant"], row["r"]): row for row in rows}
    head = ["r", "encoder tokens"] + [f"WER {v}" for v in variants] + ["encoder speed-up (q1-q3)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines.append("| unpatched | 1500 | " + " | ".join(f"{result['base_wer']:.3f}" for _ in variants)
                 + " | 1.00 |")
    for r in rs:
        first = cell[(variants[0], r)]
        wers = [f"{cell[(v, r)]['wer']:.3f}" for v in variants]
        lines.append(f"| {r} | {first['tokens']} | " + " | ".join(wers) +
                     f" | {first['speedup']:.2f} ({first['speedup_q1']:.2f}-{first['speedup_q3']:.2f}) |")
    return "\n".join(lines)
