"""Pictures of merged groups and the audio/video wrappers' source maps."""
import numpy as np
import pytest
import timm
import torch
from PIL import Image

import tome
from tome.paint import groups_on_grid, paint_groups
from tome.patch.spectrogram import band_labels, paint_spectrogram, spectrogram_groups
from tome.vis import main as vis_main


def audio_like_model():
    # (time, freq) = (64, 32) input, 8x8 patches -> 8 x 4 grid, one channel, avg pooling
    return timm.create_model("vit_small_patch16_224", pretrained=False, img_size=(64, 32),
                             patch_size=8, in_chans=1, embed_dim=48, depth=3, num_heads=3,
                             num_classes=5, global_pool="avg", fc_norm=True).eval()


def test_paint_groups_keeps_pixels_draws_borders_between_groups_and_refuses_uneven_grids():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[:, 2:] = 200
    groups = np.array([[0, 1], [0, 1]])
    out = paint_groups(image, groups)
    assert out.shape == (4, 4, 3)
    assert (out[:, 0] == 0).all() and (out[:, 3] == 200).all()
    assert (out[:, 2] == 0).all()  # border where the group changes
    with pytest.raises(ValueError, match="not a multiple"):
        paint_groups(np.zeros((5, 4, 3), np.uint8), groups)


def test_groups_on_grid_lays_sources_on_the_grid_and_refuses_a_wrong_shape():
    source = torch.eye(5)
    assert groups_on_grid(source, (2, 2)).tolist() == [[1, 2], [3, 4]]
    with pytest.raises(ValueError, match="grid"):
        groups_on_grid(source, (3, 2))


def test_vis_command_writes_the_image_and_its_merge_picture_side_by_side(tmp_path):
    out = tmp_path / "vis.png"
    vis_main(["--model", "vit_tiny_patch16_224", "--r", "8", "--out", str(out)])
    img = Image.open(out)
    assert img.size == (224 * 2 + 8, 224)


def test_band_labels_split_frequency_into_bands_and_time_into_windows():
    labels = band_labels((4, 4), 1, band=2)
    assert labels[0] == -1
    assert labels[1:].reshape(4, 4).tolist() == [[0, 0, 1, 1]] * 4
    window = band_labels((4, 4), 1, window=2)[1:].reshape(4, 4)
    assert window[:, 0].tolist() == [0, 0, 1, 1]
    assert band_labels((4, 4), 1) is None
    for kwargs, match in ((dict(band=1), "at least 2"), (dict(band=9), r"\[1, 4\]"),
                          (dict(window=0), r"\[1, 4\]"), (dict(band=2.5), "integer")):
        with pytest.raises(ValueError, match=match):
            band_labels((4, 4), 1, **kwargs)


@pytest.mark.parametrize("band, window", [(2, None), (None, 4), (2, 4)])
def test_band_restricted_merging_never_crosses_a_band_or_window(band, window):
    model = tome.patch.audio(audio_like_model(), trace_source=True, band=band, window=window)
    model.r = 4
    with torch.no_grad(), tome.trace() as info:
        model(torch.randn(3, 1, 64, 32))
    assert info.tokens[-1] < 33
    labels = model._tome.groups[1:]
    for b in range(3):
        owner = spectrogram_groups(info.source[b], (8, 4)).flatten()
        for tok in owner.unique():
            assert labels[owner == tok].unique().numel() == 1


def test_spectrogram_picture_is_an_rgb_image_of_fbank_over_groups():
    model = tome.patch.audio(audio_like_model(), trace_source=True)
    model.r = 4
    fbank = torch.randn(64, 32)
    with torch.no_grad(), tome.trace() as t:
        model(fbank[None, None])
    groups = spectrogram_groups(t.source[0], (8, 4))
    picture = paint_spectrogram(fbank.numpy(), groups)
    assert picture.shape == (32 * 2 + 2, 64, 3) and picture.dtype == np.uint8


def test_patch_audio_and_video_refuse_models_without_their_grids():
    with pytest.raises(ValueError, match="time, freq"):
        tome.patch.audio(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="frames, rows, cols"):
        tome.patch.video(audio_like_model())


def test_video_patch_merges_r_per_layer_and_maps_sources_onto_space_time():
    from tome.patch.spatiotemporal import paint_video, video_groups
    from video.model import build_video_vit
    model = tome.patch.video(build_video_vit("micro", 4, num_frames=4, img_size=32), trace_source=True)
    model.r = 6
    with torch.no_grad(), tome.trace() as t:
        model.eval()(torch.randn(2, 3, 4, 32, 32))
    grid = model.patch_embed.grid_size
    assert tuple(grid) == (2, 2, 2)
    # 8 tubelets, r=6 clamped to half of those left: 8 -> 4 -> 2, plus the class token
    assert t.tokens == [1 + 4, 1 + 2]
    groups = video_groups(t.source[0], grid)
    assert groups.shape == (2, 2, 2)
    # a partition: every tubelet belongs to exactly one output token, the class token to none
    assert (t.source.sum(dim=1) == 1).all()
    assert set(groups.flatten().tolist()) <= set(range(1, t.tokens[-1]))
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    painted = paint_video(frames, groups.numpy())
    assert len(painted) == 4 and painted[0].shape == (32, 32, 3)


def test_video_patch_merges_r_per_layer_from_1568_tubelets():
    """16 frames at 224 px: 8 x 14 x 14 = 1568 tubelets + class token; r=65 as in the paper's range."""
    from video.model import build_video_vit
    model = tome.patch.video(build_video_vit("micro", 4, num_frames=16, img_size=224))
    model.r = 65
    with torch.no_grad(), tome.trace() as t:
        model.eval()(torch.randn(1, 3, 16, 224, 224))
    assert t.tokens == [1569 - 65, 1569 - 130]
