"""tome.patch.whisper (and tome.patch.transformers) on a tiny random transformers Whisper.

Oracles that share no code with the patch:
  * the encoder: a direct forward pass, one sample at a time, with explicit softmax attention plus
    log(size) and the paper's bipartite matching written over Python sets of input frames, the
    tokens kept in time order (each merged pair where its B token was);
  * the decoder: proportional cross-attention over a merged token of size s equals plain attention
    over s copies of it, so the unpatched decoder fed every merged token repeated ``size`` times
    must give the patched decoder's logits.
"""
import math

import pytest
import torch

transformers = pytest.importorskip("transformers")

import tome  # noqa: E402
from audio.whisper.transcribe import greedy  # noqa: E402

TOKENS = 40  # encoder tokens (80 mel frames)
START, NO_TS, END = 60, 61, 62


def tiny_whisper(seed=0):
    torch.manual_seed(seed)
    config = transformers.WhisperConfig(
        vocab_size=64, num_mel_bins=8, d_model=32, encoder_layers=3, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_source_positions=TOKENS, max_target_positions=24,
        decoder_start_token_id=START, bos_token_id=END, eos_token_id=END, pad_token_id=END,
        suppress_tokens=[], begin_suppress_tokens=[END])
    model = transformers.WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random weights everywhere (the k bias stays absent, as in Whisper)
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def features(batch=2, seed=1):
    return torch.randn(batch, 8, 2 * TOKENS, generator=torch.Generator().manual_seed(seed))


def prompt(batch):
    return torch.tensor([[START, NO_TS, 5, 7]] * batch)


# ------------------------------------------------------------------ the oracles

def oracle_encoder(enc, feats, rs):
    """Per sample: (tokens [T, C], sizes [T], groups: list of frozensets of input frames)."""
    import torch.nn.functional as F
    out = []
    for f in feats:
        x = F.gelu(enc.conv1(f[None]))
        x = F.gelu(enc.conv2(x))[0].t() + enc.embed_positions.weight
        groups = [frozenset([i]) for i in range(x.shape[0])]
        size = torch.ones(x.shape[0])
        for layer, r in zip(enc.layers, rs):
            att = layer.self_attn
            y = layer.self_attn_layer_norm(x)
            heads = lambda t: t.view(t.shape[0], att.num_heads, -1).transpose(0, 1)  # noqa: E731
            q, k, v = heads(att.q_proj(y)), heads(att.k_proj(y)), heads(att.v_proj(y))
            logits = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]) + size.log()
            h = (logits.softmax(-1) @ v).transpose(0, 1).reshape(x.shape[0], -1)
            x = x + att.out_proj(h)
            r = min(r, x.shape[0] // 2)
            if r > 0:
                key = k.mean(0)
                key = key / key.norm(dim=-1, keepdim=True)
                a, b = list(range(0, x.shape[0], 2)), list(range(1, x.shape[0], 2))
                scores = key[a] @ key[b].t()
                best, partner = scores.max(-1)
                chosen = best.argsort(descending=True)[:r].tolist()
                gone = {a[i] for i in chosen}
                x, size = x.clone(), size.clone()
                for i in chosen:  # merge A into its B partner: size-weighted average
                    src, dst = a[i], b[int(partner[i])]
                    total = size[src] + size[dst]
                    x[dst] = (x[src] * size[src] + x[dst] * size[dst]) / total
                    size[dst] = total
                    groups[dst] = groups[dst] | groups[src]
                kept = [i for i in range(x.shape[0]) if i not in gone]  # time order: by position
                x, size = x[kept], size[kept]
                groups = [groups[i] for i in kept]
            x = x + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(x))))
        out.append((enc.layer_norm(x), size, groups))
    return out


def groups_of(source):
    return [frozenset(torch.nonzero(row).flatten().tolist()) for row in source]


# ------------------------------------------------------------------ tests

def test_r0_patched_whisper_gives_the_unpatched_logits_and_unpatch_restores_it():
    model = tiny_whisper()
    feats, ids = features(), prompt(2)
    with torch.no_grad():
        before = model(feats, decoder_input_ids=ids).logits
        tome.patch.transformers(model)
        model.r = 0
        patched = model(feats, decoder_input_ids=ids).logits
        tome.unpatch(model)
        after = model(feats, decoder_input_ids=ids).logits
    torch.testing.assert_close(patched, before, atol=1e-5, rtol=1e-5)
    assert type(model) is transformers.WhisperForConditionalGeneration
    assert type(model.model.encoder.layers[0]) is transformers.models.whisper.modeling_whisper.WhisperEncoderLayer
    assert type(model.model.decoder.layers[0]) is transformers.models.whisper.modeling_whisper.WhisperDecoderLayer
    assert torch.equal(after, before)


@pytest.mark.parametrize("rs", [[6, 5, 4], [19, 0, 3]])
def test_merged_encoder_equals_the_direct_time_ordered_oracle(rs):
    model = tiny_whisper()
    feats = features(3)
    tome.patch.whisper(model)
    model.r = rs
    with torch.no_grad(), tome.trace(source=True) as t:
        out = model.get_encoder()(input_features=feats)
        expected = oracle_encoder(model.model.encoder, feats, rs)
    for i, (x, size, groups) in enumerate(expected):
        torch.testing.assert_close(out.last_hidden_state[i], x, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(out.token_sizes[i, :, 0], size)
        assert groups_of(t.source[i]) == groups
    assert t.tokens == [TOKENS - rs[0], TOKENS - rs[0] - rs[1], TOKENS - sum(rs)]


def test_published_layout_is_the_same_tokens_out_of_time_order():
    """time_order=False (unmerged A first, then B) merges the same pairs in the first layer; the
    later layers see another order, so only a first-layer schedule gives the same token set."""
    model = tiny_whisper()
    feats = features(2)
    tome.patch.whisper(model)
    model.r = [12, 0, 0]
    with torch.no_grad(), tome.trace(source=True) as ordered:
        a = model.get_encoder()(input_features=feats).last_hidden_state
    tome.unpatch(model)
    tome.patch.whisper(model, time_order=False)
    model.r = [12, 0, 0]
    with torch.no_grad(), tome.trace(source=True) as published:
        b = model.get_encoder()(input_features=feats).last_hidden_state
    # after one layer a token is one frame or A frames merged into one B (odd) frame: its place
    anchor = lambda g: next((i for i in g if i % 2), min(g))  # noqa: E731
    assert all([anchor(g) for g in groups_of(s)] == sorted(anchor(g) for g in groups_of(s))
               for s in ordered.source)
    assert all([anchor(g) for g in groups_of(s)] != sorted(anchor(g) for g in groups_of(s))
               for s in published.source)
    for i in range(2):
        perm = [groups_of(published.source[i]).index(g) for g in groups_of(ordered.source[i])]
        torch.testing.assert_close(b[i, perm], a[i], atol=1e-5, rtol=1e-5)


def _repeat_by_size(x, size):
    return torch.stack([row.repeat_interleave(s[:, 0].round().long(), dim=0) for row, s in zip(x, size)])


def test_proportional_cross_attention_equals_the_decoder_over_repeated_tokens():
    model = tiny_whisper()
    feats, ids = features(2), prompt(2)
    tome.patch.whisper(model)
    model.r = 7
    with torch.no_grad():
        enc = model.get_encoder()(input_features=feats)
        merged = model(encoder_outputs=enc, decoder_input_ids=ids).logits
        whole = model(feats, decoder_input_ids=ids).logits  # the encoder run inside forward
        assert enc.last_hidden_state.shape[1] == TOKENS - 3 * 7
        repeated = _repeat_by_size(enc.last_hidden_state, enc.token_sizes)
        assert repeated.shape[1] == TOKENS
        tome.unpatch(model)
        plain = model.model.decoder(input_ids=ids, encoder_hidden_states=repeated).last_hidden_state
        expected = model.proj_out(plain)
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(whole, expected, atol=1e-4, rtol=1e-4)


def test_cross_attention_without_sizes_differs_from_the_repeated_token_oracle():
    model = tiny_whisper()
    feats, ids = features(2), prompt(2)
    tome.patch.whisper(model, prop_cross=False)
    model.r = 7
    with torch.no_grad():
        enc = model.get_encoder()(input_features=feats)
        merged = model(encoder_outputs=enc, decoder_input_ids=ids).logits
        repeated = _repeat_by_size(enc.last_hidden_state, enc.token_sizes)
        tome.unpatch(model)
        expected = model.proj_out(model.model.decoder(input_ids=ids, encoder_hidden_states=repeated)
                                  .last_hidden_state)
    assert (merged - expected).abs().max() > 1e-2


def test_decoder_finds_the_sizes_of_a_merged_tensor_and_refuses_a_copy():
    model = tiny_whisper()
    feats, ids = features(2), prompt(2)
    tome.patch.whisper(model)
    model.r = 5
    with torch.no_grad():
        enc = model.get_encoder()(input_features=feats)
        ref = model(encoder_outputs=enc, decoder_input_ids=ids).logits
        x = enc.last_hidden_state
        direct = model.proj_out(model.model.decoder(input_ids=ids, encoder_hidden_states=x).last_hidden_state)
        torch.testing.assert_close(direct, ref)
        with pytest.raises(ValueError, match="not their sizes"):
            model.model.decoder(input_ids=ids, encoder_hidden_states=x.clone())


def test_batched_clips_merge_each_their_own_pairs():
    model = tiny_whisper()
    feats, ids = features(3, seed=4), prompt(3)
    tome.patch.whisper(model)
    model.r = 6
    with torch.no_grad():
        batched = model(feats, decoder_input_ids=ids).logits
        alone = torch.cat([model(feats[i:i + 1], decoder_input_ids=ids[:1]).logits for i in range(3)])
        sizes = model.get_encoder()(input_features=feats).token_sizes
    torch.testing.assert_close(batched, alone, atol=1e-4, rtol=1e-4)
    assert not torch.equal(sizes[0], sizes[1])  # the clips did merge differently


def test_generate_keeps_the_sizes_greedy_and_with_beams():
    model = tiny_whisper()
    model.generation_config.decoder_start_token_id = START
    model.generation_config.eos_token_id = END
    model.generation_config.pad_token_id = END
    model.generation_config.forced_decoder_ids = None
    model.generation_config.no_timestamps_token_id = NO_TS
    model.generation_config.is_multilingual = False
    feats = features(2)
    tome.patch.whisper(model)
    model.r = 6
    with torch.no_grad():
        loop = greedy(model, feats, max_new_tokens=8, prompt=(START, NO_TS), eot=END)
        out = model.generate(feats, max_new_tokens=8, num_beams=1, do_sample=False)
        beams = model.generate(feats, max_new_tokens=8, num_beams=3, do_sample=False)
    for i in range(2):
        ids = [t for t in out[i].tolist() if t not in (START, NO_TS, END)]
        assert ids == loop[i]
    assert beams.shape[0] == 2


def test_whisper_options_are_checked():
    model = tiny_whisper()
    with pytest.raises(ValueError, match="window must be an integer in \\[2, 40\\]"):
        tome.patch.whisper(model, window=1)
    with pytest.raises(ValueError, match="band"):
        tome.patch.transformers(model, band=2)
    with pytest.raises(ValueError, match="prop_cross must be True or False"):
        tome.patch.whisper(model, prop_cross="yes")


def test_windows_keep_every_merge_inside_its_window():
    model = tiny_whisper()
    tome.patch.transformers(model, window=8)
    model.r = 4
    with torch.no_grad(), tome.trace(source=True) as t:
        model.get_encoder()(input_features=features(2))
    for source in t.source:
        for group in groups_of(source):
            assert len({i // 8 for i in group}) == 1
    assert t.tokens[-1] < TOKENS
