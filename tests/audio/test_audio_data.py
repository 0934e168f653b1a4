import json
import logging
import math

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from launch.engine.data import EpochSampler
from audio.data import (AudioClipDataset, class_balanced_weights, main,
                        load_audio_list, read_audio, wav_to_fbank, write_demo_audio)
from audio.features import padded_value
from launch.engine.errors import ConfigError, DataError

MEAN, STD = -4.2677393, 4.5689974


def _tone(seconds=1.0, rate=16000, freq=440.0):
    t = torch.arange(int(seconds * rate)) / rate
    return 0.3 * torch.sin(2 * math.pi * freq * t) + 0.05 * t + 0.1  # offset: mean removal matters


def _reference_fbank(waveform, target_length):
    # Audio-MAE's recipe spelled out step by step.
    w = waveform[None] - waveform.mean()
    fb = torchaudio.compliance.kaldi.fbank(w, htk_compat=True, sample_frequency=16000, use_energy=False,
                                           window_type="hanning", num_mel_bins=128, dither=0.0,
                                           frame_shift=10)
    out = torch.zeros(target_length, 128)
    n = min(target_length, fb.shape[0])
    out[:n] = fb[:n]
    return (out - MEAN) / (STD * 2)


# --- features ---------------------------------------------------------------------------------

def test_fbank_matches_kaldi_reference_with_padding_and_cropping():
    wave = _tone()
    padded = wav_to_fbank(wave, 16000, target_length=128)
    assert padded.shape == (128, 128)
    torch.testing.assert_close(padded, _reference_fbank(wave, 128))
    # 1 s at 16 kHz is 98 frames (25 ms window, 10 ms shift); the rest is padding.
    assert torch.allclose(padded[98:], torch.full((30, 128), (0 - MEAN) / (2 * STD)))
    assert padded_value() == pytest.approx(4.2677393 / 9.1379948)
    cropped = wav_to_fbank(wave, 16000, target_length=40, mel_bins=128)
    torch.testing.assert_close(cropped, padded[:40])


def test_read_audio_mixes_to_mono_and_resamples(tmp_path):
    wave = _tone(0.5, 8000, 300.0).numpy()
    stereo = np.stack([wave, np.zeros_like(wave)], axis=1)
    soundfile.write(tmp_path / "a.wav", stereo, 8000, subtype="FLOAT")
    out = read_audio(tmp_path / "a.wav")
    assert out.shape == (1, 8000)  # 0.5 s at 16 kHz
    expected = torchaudio.functional.resample(torch.from_numpy(wave / 2).float()[None], 8000, 16000)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)
    # wav_to_fbank resamples and mixes the same way when handed raw samples.
    raw = torch.from_numpy(stereo.T.copy()).float()
    torch.testing.assert_close(wav_to_fbank(raw, 8000, 64), wav_to_fbank(expected, 16000, 64))


# --- demo set and lists -----------------------------------------------------------------------

def test_demo_set_is_real_audio_multilabel_and_deterministic(demo_set, tmp_path):
    entries = json.loads(demo_set["train"].read_text())["data"]
    assert len(entries) == 12 and len(json.loads(demo_set["val"].read_text())["data"]) == 4
    assert {len(e["labels"].split(",")) for e in entries} <= {1, 2, 3}
    assert any(len(e["labels"].split(",")) > 1 for e in entries)
    data, rate = soundfile.read(demo_set["root"] / entries[0]["wav"])
    assert rate == 16000 and data.shape == (8000,) and np.abs(data).max() > 0.05
    again = write_demo_audio(tmp_path, num_classes=4, clips=16, seconds=0.5, seed=0)
    assert again[0].read_text() == demo_set["train"].read_text()
    assert (tmp_path / entries[0]["wav"]).read_bytes() == (demo_set["root"] / entries[0]["wav"]).read_bytes()


def test_demo_cli_writes_a_loadable_list_of_the_requested_clips(tmp_path, capsys):
    main(["demo", str(tmp_path), "--num-classes", "3", "--clips", "4", "--seconds", "0.2"])
    items, k = load_audio_list(tmp_path / "train.json", tmp_path, tmp_path / "class_labels_indices.csv")
    assert k == 3 and len(items) == 3 and "wrote 4 clips" in capsys.readouterr().out


def test_json_list_gives_multi_hot_targets_and_the_fbank_of_each_file(demo_set):
    items, k = load_audio_list(demo_set["val"], demo_set["root"], demo_set["labels"])
    assert k == 4 and len(items) == 4
    # Without root, relative paths resolve against the JSON file's folder.
    assert load_audio_list(demo_set["val"], None, demo_set["labels"])[0] == items
    ds = AudioClipDataset(demo_set["val"], demo_set["root"], train=False, target_length=64)
    item = ds[1]
    assert item["input"].shape == (1, 64, 128) and item["input"].dtype == torch.float32
    assert item["target"].shape == (4,) and item["index"] == 1 and item["skipped"] == 0
    assert item["target"].nonzero().flatten().tolist() == items[1][1]
    torch.testing.assert_close(ds[1]["input"], item["input"])  # evaluation is deterministic
    # The loader's features are exactly wav_to_fbank of the file.
    wave, _ = soundfile.read(items[1][0], dtype="float32")
    torch.testing.assert_close(item["input"][0], wav_to_fbank(torch.from_numpy(wave), 16000, 64))


def test_train_masking_fills_whole_mel_bins_with_the_normalised_zero(demo_set):
    torch.manual_seed(0)
    ds = AudioClipDataset(demo_set["train"], demo_set["root"], train=True, target_length=64,
                          freq_mask=30, time_mask=20, noise=True, roll=True)
    assert ds[0]["input"].shape == (1, 64, 128)
    plain = AudioClipDataset(demo_set["train"], demo_set["root"], train=True, target_length=64,
                             freq_mask=30, time_mask=0)
    masked_rows = 0
    for _ in range(5):
        x = plain[0]["input"][0]
        masked_rows += int((x == padded_value()).all(dim=0).sum())  # whole mel bins masked
    assert masked_rows > 0


def _write_label_csv(path):
    path.write_text('index,mid,display_name\n0,/m/0a,"Speech"\n1,/m/0b,"Dog, bark"\n2,/t/dd1,"Music"\n')
    return path


def test_audioset_segment_csv_finds_each_clip_naming_and_maps_mids_to_labels(demo_set, tmp_path, caplog):
    src = demo_set["root"] / "audio" / "train_0000.wav"
    root = tmp_path / "clips"
    root.mkdir()
    for name in ("abc.wav", "Ydef.wav", "ghi_30_40.wav", "jkl_30000.wav"):
        (root / name).write_bytes(src.read_bytes())
    data, rate = soundfile.read(src)
    soundfile.write(root / "mno.flac", data, rate)
    seg = tmp_path / "balanced_train_segments.csv"
    seg.write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n"
        "# num_ytids=6, num_segs=6, num_unique_labels=3, num_positive_labels=8\n"
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'abc, 0.000, 10.000, "/m/0a,/m/0b"\n'
        'def, 10.000, 20.000, "/t/dd1"\n'
        'ghi, 30.000, 40.000, "/m/0b"\n'
        'jkl, 30.000, 40.000, "/m/0a"\n'
        'mno, 0.000, 10.000, "/m/0a,/t/dd1"\n'
        'gone, 0.000, 10.000, "/m/0a"\n')
    _write_label_csv(tmp_path / "class_labels_indices.csv")  # found beside the list
    with caplog.at_level(logging.WARNING):
        items, k = load_audio_list(seg, root)
    assert k == 3
    assert [(p.split("/")[-1], labels) for p, labels in items] == [
        ("abc.wav", [0, 1]), ("Ydef.wav", [2]), ("ghi_30_40.wav", [1]), ("jkl_30000.wav", [0]),
        ("mno.flac", [0, 2])]
    assert "1 of 6 listed clips not found" in caplog.text
    ds = AudioClipDataset(seg, root, train=False, target_length=32)
    assert ds[4]["target"].tolist() == [1.0, 0.0, 1.0] and ds.class_names[1] == "Dog, bark"


@pytest.mark.parametrize("case, needle, error", [
    ("missing_list", "does not exist", ConfigError),
    ("missing_root", "is not a folder", ConfigError),
    ("missing_label_csv", "no label csv", ConfigError),
    ("unknown_mid", "unknown mid '/m/zz'", DataError),
    ("malformed_line", ".csv:2: expected 4 fields", DataError),
    ("bad_json", "not valid JSON", DataError),
    ("bad_suffix", "valid: .csv", ConfigError),
])
def test_bad_lists_raise_one_line_errors_config_for_paths_data_for_contents(tmp_path, case, needle, error):
    labels = _write_label_csv(tmp_path / "labels.csv")
    seg = tmp_path / "segs.csv"
    seg.write_text('# header\nabc, 0.0, 10.0, "/m/0a"\n')
    (tmp_path / "abc.wav").write_bytes(b"")
    args = {
        "missing_list": (tmp_path / "nope.json", tmp_path, labels),
        "missing_root": (seg, tmp_path / "no_such_dir", labels),
        "missing_label_csv": (seg, tmp_path, None),
        "unknown_mid": (seg, tmp_path, labels),
        "malformed_line": (seg, tmp_path, labels),
        "bad_json": (tmp_path / "l.json", tmp_path, labels),
        "bad_suffix": (tmp_path / "l.txt", tmp_path, labels),
    }[case]
    if case == "unknown_mid":
        seg.write_text('# header\nabc, 0.0, 10.0, "/m/0a,/m/zz"\n')
    if case == "malformed_line":
        seg.write_text('# header\nabc, 0.0, "/m/0a"\n')
    (tmp_path / "l.json").write_text("{not json")
    (tmp_path / "l.txt").write_text("x")
    with pytest.raises(error) as err:
        load_audio_list(*args)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_corrupt_files_are_replaced_and_counted(demo_set, tmp_path, caplog):
    good = json.loads(demo_set["val"].read_text())["data"]
    (tmp_path / "garbage.wav").write_bytes(b"RIFF\x00\x00not really a wave file" * 10)
    (tmp_path / "empty.wav").write_bytes(b"")
    entries = [{"wav": "garbage.wav", "labels": good[0]["labels"]},
               {"wav": "empty.wav", "labels": good[0]["labels"]}]
    entries += [{"wav": str(demo_set["root"] / e["wav"]), "labels": e["labels"]} for e in good]
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps({"data": entries}))
    ds = AudioClipDataset(listing, tmp_path, demo_set["labels"], train=False, target_length=32)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        item = ds[0]
    assert item["skipped"] >= 1 and item["group"] >= 2 and item["input"].shape == (1, 32, 128)
    assert "garbage.wav" in caplog.text
    assert item["target"].tolist() == ds[item["group"]]["target"].tolist()

    entries = [{"wav": "garbage.wav", "labels": good[0]["labels"]}] * 3
    listing.write_text(json.dumps({"data": entries}))
    bad = AudioClipDataset(listing, tmp_path, demo_set["labels"], max_retries=2, target_length=32)
    with pytest.raises(DataError, match="3 audio files in a row could not be read"):
        bad[0]


# --- sampling ---------------------------------------------------------------------------------

def test_class_balanced_weights_sum_inverse_class_counts_per_clip():
    items = [("a", [0]), ("b", [0]), ("c", [0, 1]), ("d", [1, 2])]
    w = class_balanced_weights(items, num_classes=4)
    c0, c1, c2 = 1000 / 3.01, 1000 / 2.01, 1000 / 1.01
    torch.testing.assert_close(w, torch.tensor([c0, c0, c0 + c1, c1 + c2], dtype=torch.float64))
    with pytest.raises(DataError, match="label index 5"):
        class_balanced_weights([("a", [5])], 4)


def test_weighted_sampler_shards_one_weighted_draw():
    """The engine's sampler with class-balanced weights: one draw per epoch, sharded over ranks."""
    weights = torch.tensor([1.0, 1.0, 1.0, 3.0])
    whole = [i for i, _ in EpochSampler(4, 0, 1, seed=3, weights=weights, num_samples=8000)]
    shards = [EpochSampler(4, r, 2, seed=3, weights=weights, num_samples=8000) for r in range(2)]
    assert [len(s) for s in shards] == [4000, 4000]
    drawn = [[i for i, _ in s] for s in shards]
    assert drawn[0] == whole[0::2] and drawn[1] == whole[1::2]
    assert np.bincount(whole, minlength=4)[3] / 8000 == pytest.approx(0.5, abs=0.03)
    shards[0].set_epoch(1)
    assert [i for i, _ in shards[0]] != drawn[0]
    with pytest.raises(DataError, match="non-negative"):
        EpochSampler(2, weights=torch.tensor([1.0, -1.0]))


# --- Audio-MAE waveform mixup and gain ---------------------------------------------------------

@pytest.fixture
def three_clips(tmp_path):
    """Three clips of different lengths, clip k carrying only class k."""
    waves = [_tone(0.5, freq=300.0), _tone(0.3, freq=700.0) * 2, _tone(0.7, freq=1100.0) - 0.3]
    entries = []
    for k, (w, mid) in enumerate(zip(waves, ("/m/0a", "/m/0b", "/t/dd1"))):
        soundfile.write(tmp_path / f"c{k}.wav", w.numpy(), 16000, subtype="FLOAT")
        entries.append({"wav": f"c{k}.wav", "labels": mid})
    (tmp_path / "l.json").write_text(json.dumps({"data": entries}))
    _write_label_csv(tmp_path / "class_labels_indices.csv")
    return tmp_path / "l.json", tmp_path, waves


def _mix_reference(w1, w2, lam, target_length):
    # Audio-MAE dataset.py _wav2fbank with two files, written out.
    w1, w2 = w1 - w1.mean(), w2 - w2.mean()
    if len(w2) < len(w1):
        w2 = torch.cat([w2, torch.zeros(len(w1) - len(w2))])
    else:
        w2 = w2[:len(w1)]
    mix = lam * w1 + (1 - lam) * w2
    return _reference_fbank(mix - mix.mean(), target_length)


def test_wave_mixup_mixes_waveforms_before_the_fbank_and_labels_by_lambda(three_clips):
    lst, root, waves = three_clips
    ds = AudioClipDataset(lst, root, train=True, target_length=80, freq_mask=0, time_mask=0,
                          wave_mixup=1.0)
    seen_pad = seen_cut = False
    lams = []
    for seed in range(40):
        torch.manual_seed(seed)
        index = seed % 3
        item = ds[index]
        t = item["target"]
        assert t.sum() == pytest.approx(1.0)
        if t[index] == 1.0:  # the partner drawn was the clip itself: mixing changes nothing
            torch.testing.assert_close(item["input"][0], _reference_fbank(waves[index], 80),
                                       atol=2e-3, rtol=0)
            continue
        lam = float(t[index])
        partner = int((t > 0).nonzero().flatten()[t[t > 0] != lam][0]) if (t > 0).sum() > 1 else None
        assert partner is not None and t[partner] == pytest.approx(1 - lam)
        lams.append(lam)
        seen_pad |= len(waves[partner]) < len(waves[index])
        seen_cut |= len(waves[partner]) > len(waves[index])
        ref = _mix_reference(waves[index], waves[partner], lam, 80)
        torch.testing.assert_close(item["input"][0], ref, atol=2e-3, rtol=0)
    assert seen_pad and seen_cut and len(lams) > 15
    # lambda ~ Beta(10, 10): mean 1/2, std sqrt(1 / 84) ~ 0.11.
    assert np.mean(lams) == pytest.approx(0.5, abs=0.06) and 0.03 < np.std(lams) < 0.2
    # Evaluation never mixes; p = 0 never mixes.
    val = AudioClipDataset(lst, root, train=False, target_length=80, wave_mixup=1.0)
    off = AudioClipDataset(lst, root, train=True, target_length=80, freq_mask=0, time_mask=0)
    for d in (val, off):
        assert all(set(d[i]["target"].tolist()) == {0.0, 1.0} for i in range(3))
    with pytest.raises(ConfigError, match="wave_mixup=1.5"):
        AudioClipDataset(lst, root, train=True, wave_mixup=1.5)


def test_roll_is_a_gain_between_half_and_three_halves_with_no_time_shift(three_clips):
    lst, root, waves = three_clips
    ds = AudioClipDataset(lst, root, train=True, target_length=60, freq_mask=0, time_mask=0, roll=True)
    plain = _reference_fbank(waves[2], 60)  # 0.7 s is 68 frames: all 60 kept are real audio
    gains = []
    for seed in range(30):
        torch.manual_seed(seed)
        x = ds[2]["input"][0]
        # Scaling a waveform by g adds log(g^2) to every log-mel energy: (2 log g) / (2 std) here.
        # (Cells whose energy sits at Kaldi's log floor, about -1.27 normalised, stay put.)
        shift = (x - plain)[plain > -1.0]
        assert shift.numel() > 1000
        assert float(shift.std()) < 2e-3  # one constant everywhere: a gain, no time shift
        gains.append(math.exp(float(shift.mean()) * STD))
    assert 0.5 < min(gains) and max(gains) < 1.5 and np.std(gains) > 0.03
    assert np.mean(gains) == pytest.approx(1.0, abs=0.08)


def test_wave_mixup_config_refuses_batch_mixup_on_top():
    from audio.task import AudioTask
    from launch.engine.config import from_dict
    both = from_dict({"name": "x", "task": "audio", "data": {"root": "/nonexistent", "wave_mixup": 0.5},
                      "train": {"mixup": 0.5, "cutmix": 0.0, "epochs": 1}})
    with pytest.raises(ConfigError, match="data.wave_mixup=0.5 with batch mixup"):
        AudioTask().prepare(both)
    alone = from_dict({"name": "x", "task": "audio", "data": {"root": "/nonexistent", "wave_mixup": 0.5},
                       "train": {"mixup": 0.0, "cutmix": 0.0, "epochs": 1}})
    with pytest.raises(ConfigError, match="not a directory"):  # passes the mixup check
        AudioTask().prepare(alone)


def test_weighted_sampler_draws_with_replacement_like_torch_weighted_random_sampler():
    # Audio-MAE AS-2M (submit_ft_mask_bal.sh) passes "--replacement False", but the flag is
    # argparse type=bool and bool("False") is True: its WeightedRandomSampler draws with
    # replacement, one draw of epoch_len per epoch from a generator seeded per epoch, strided over
    # ranks (dataset.py DistributedSamplerWrapper). Ours must be that same draw.
    from launch.engine.data import _mix
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0, 0.0])
    ours = [i for i, _ in EpochSampler(5, 0, 1, seed=11, weights=weights, num_samples=50)]
    g = torch.Generator().manual_seed(_mix(11, 0))
    official_kind = list(torch.utils.data.WeightedRandomSampler(weights, 50, replacement=True, generator=g))
    assert ours == official_kind
    assert 4 not in ours and len(set(ours)) < len(ours)  # zero weight never drawn; repeats happen
    # As many draws as clips: with replacement is not a permutation.
    same_size = [i for i, _ in EpochSampler(5, 0, 1, seed=0, weights=torch.ones(5), num_samples=5)]
    assert len(same_size) == 5
    # Resume mid-epoch: the rest of the epoch is the same draw.
    s = EpochSampler(5, 0, 1, seed=11, weights=weights, num_samples=50)
    s.set_epoch(0, 20)
    assert [i for i, _ in s] == ours[20:]
