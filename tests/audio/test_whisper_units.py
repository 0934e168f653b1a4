"""Word error rate and the CTranslate2 file reader, on hand-worked inputs (no model needed)."""
import struct

import numpy as np
import pytest

from audio.whisper.ct2 import read_ct2
from audio.whisper.wer import edit_distance, normalize, wer, word_errors


def test_normalize_follows_the_documented_rules():
    assert normalize("And Mr. John Dashwood, cold-hearted; 10 of clubs!") == \
        "and mister john dashwood cold hearted ten of clubs".split()
    assert normalize("He's 'quoted' 42") == ["he's", "quoted", "42"]


def test_word_errors_of_a_hand_worked_pair():
    # ref: the cat sat on the mat / hyp: the cat sit on mat today
    # sat->sit (1 substitution), "the" deleted (1), "today" inserted (1): 3 errors over 6 words
    assert edit_distance("the cat sat on the mat".split(), "the cat sit on mat today".split()) == 3
    assert word_errors("The cat sat on the mat.", "the cat, sit on mat today") == (3, 6)
    assert wer(["the cat sat on the mat", "a b"], ["the cat sit on mat today", "a b"]) == pytest.approx(3 / 8)
    assert edit_distance([], ["x", "y"]) == 2 and edit_distance(["x"], []) == 1


def test_wer_refuses_mismatched_lists():
    with pytest.raises(ValueError, match="one hypothesis per reference, got 1 for 2"):
        wer(["a", "b"], ["a"])


def _string(s: str) -> bytes:
    return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"


def test_read_ct2_reads_a_hand_written_file(tmp_path):
    """A file written byte by byte from the documented layout: two variables and one alias."""
    w = np.arange(6, dtype=np.float16).reshape(2, 3)
    heads = np.int16(6)
    blob = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3) + struct.pack("<I", 2)
    blob += _string("a/weight") + struct.pack("<B", 2) + struct.pack("<II", 2, 3) + struct.pack("<B", 4)
    blob += struct.pack("<I", w.nbytes) + w.tobytes()
    blob += _string("a/num_heads") + struct.pack("<B", 0) + struct.pack("<B", 2)
    blob += struct.pack("<I", 2) + heads.tobytes()
    blob += struct.pack("<I", 1) + _string("b/weight") + _string("a/weight")
    path = tmp_path / "model.bin"
    path.write_bytes(blob)
    name, variables = read_ct2(path)
    assert name == "WhisperSpec"
    assert variables["a/weight"].dtype == np.float16 and np.array_equal(variables["a/weight"], w)
    assert int(variables["a/num_heads"]) == 6
    assert variables["b/weight"] is variables["a/weight"]
    path.write_bytes(blob + b"\0")
    with pytest.raises(ValueError, match="1 bytes left"):
        read_ct2(path)


def test_wer_table_has_a_row_per_r_and_a_column_per_variant():
    from audio.whisper.experiment import check_variants, markdown
    row = lambda v, r, w: {"variant": v, "r": r, "tokens": 1500 - 4 * r, "wer": w,  # noqa: E731
                           "speedup": 1 + r / 100, "speedup_q1": 1.0, "speedup_q3": 9.0}
    rows = [row("tome", 100, 0.05), row("tome", 300, 0.25), row("no_prop_cross", 100, 0.5),
            row("no_prop_cross", 300, 0.75)]
    lines = markdown({"rows": rows, "base_wer": 0.05}).splitlines()
    assert lines[0] == ("| r | encoder tokens | WER tome | WER no_prop_cross | "
                        "encoder speed-up (q1-q3) |")
    assert lines[3] == "| 100 | 1100 | 0.050 | 0.500 | 2.00 (1.00-9.00) |"
    assert lines[4] == "| 300 | 300 | 0.250 | 0.750 | 4.00 (1.00-9.00) |"
    with pytest.raises(ValueError, match="variant must be one of"):
        check_variants(["tome", "fast"])
