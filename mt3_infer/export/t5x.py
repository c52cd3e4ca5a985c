"""Strict reader of Magenta's original T5X checkpoints (``gs://mt3/checkpoints/
{mt3,ismir2021}``), written from ``specs/magenta-t5x.md`` §2-§3.

No JAX, TensorFlow, flax or tensorstore: the ``checkpoint`` file is decoded
with ``msgpack`` (flax's extension types 1 = ndarray and 3 = numpy scalar),
and the arrays that t5x wrote through TensorStore are read as zarr v2
folders (``.zarray`` JSON + gzip/zlib/raw chunk files) with numpy and zlib.

* :func:`read_t5x` — the 189 ``target`` parameters keyed by flax path
  (``encoder/layers_0/attention/query/kernel``), float32, strictly checked.
* :func:`t5x_config` / :func:`mt3_config_for` — the dimensions they imply.
* :func:`to_port_state` — the same weights in the key layout of the PyTorch
  port's ``mt3.pth`` (kernels transposed), loadable into
  :class:`mt3_infer.export.mt3.MT3` with ``strict=True``;
  :func:`port_to_t5x` is its inverse.

Dimensions are read from the arrays, so small random test models load too;
every dimension must be at most the real network's (``model.gin``:
d_model 512, 6 heads x 64, mlp 1024, 8 + 8 layers, 512 mel inputs) and the
vocabulary must be MT3's 1536 or ismir2021's 1664.  The number of heads
cannot be read from shapes (query kernels are ``[d_model, heads*head_dim]``),
so the functions that need it take ``n_heads`` (default 6, the real value).

Only :func:`to_port_state` and :func:`mt3_config_for` import torch.
"""
from __future__ import annotations

import json
import math
import os
import re
import zlib
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from ..exceptions import CheckpointError

CHECKPOINT_VERSION = 3
VOCAB_SIZES = (1536, 1664)  # mt3, ismir2021
# The real network (mt3/gin/model.gin); read dimensions may be smaller, never larger.
MAX_DIMS = {"d_model": 512, "inner": 384, "d_ff": 1024, "n_enc_layers": 8,
            "n_dec_layers": 8, "input_dim": 512}
REAL_N_HEADS = 6

_CHUNKED = "__msgpack_chunked_array__"
# flax dtype names (inline arrays) and zarr dtype strings this reader accepts
_INLINE_DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4", "bfloat16": "bfloat16"}
_ZARR_DTYPES = ("<f4", "<f8", "<i4", "bfloat16")
_SHOW = 20  # names listed per problem in an error message


# ---------------------------------------------------------------------------
# Parameter table (spec §3)
# ---------------------------------------------------------------------------

def _enc_layer(i: int):
    """(flax suffix, port key, transpose, shape role) of encoder layer i."""
    f, p = f"encoder/layers_{i}/", f"encoder.block.{i}.layer."
    rows = [(f + "pre_attention_layer_norm/scale", p + "0.layer_norm.weight", False, "norm")]
    for n, q in (("query", "q"), ("key", "k"), ("value", "v")):
        rows.append((f + f"attention/{n}/kernel", p + f"0.SelfAttention.{q}.weight", True, "qkv"))
    rows.append((f + "attention/out/kernel", p + "0.SelfAttention.o.weight", True, "out"))
    rows.append((f + "pre_mlp_layer_norm/scale", p + "1.layer_norm.weight", False, "norm"))
    rows.append((f + "mlp/wi_0/kernel", p + "1.DenseReluDense.wi_0.weight", True, "wi"))
    rows.append((f + "mlp/wi_1/kernel", p + "1.DenseReluDense.wi_1.weight", True, "wi"))
    rows.append((f + "mlp/wo/kernel", p + "1.DenseReluDense.wo.weight", True, "wo"))
    return rows


def _dec_layer(i: int):
    f, p = f"decoder/layers_{i}/", f"decoder.block.{i}.layer."
    rows = [(f + "pre_self_attention_layer_norm/scale", p + "0.layer_norm.weight", False, "norm")]
    for n, q in (("query", "q"), ("key", "k"), ("value", "v")):
        rows.append((f + f"self_attention/{n}/kernel", p + f"0.SelfAttention.{q}.weight", True, "qkv"))
    rows.append((f + "self_attention/out/kernel", p + "0.SelfAttention.o.weight", True, "out"))
    rows.append((f + "pre_cross_attention_layer_norm/scale", p + "1.layer_norm.weight", False, "norm"))
    for n, q in (("query", "q"), ("key", "k"), ("value", "v")):
        rows.append((f + f"encoder_decoder_attention/{n}/kernel", p + f"1.EncDecAttention.{q}.weight",
                     True, "qkv"))
    rows.append((f + "encoder_decoder_attention/out/kernel", p + "1.EncDecAttention.o.weight", True, "out"))
    rows.append((f + "pre_mlp_layer_norm/scale", p + "2.layer_norm.weight", False, "norm"))
    rows.append((f + "mlp/wi_0/kernel", p + "2.DenseReluDense.wi_0.weight", True, "wi"))
    rows.append((f + "mlp/wi_1/kernel", p + "2.DenseReluDense.wi_1.weight", True, "wi"))
    rows.append((f + "mlp/wo/kernel", p + "2.DenseReluDense.wo.weight", True, "wo"))
    return rows


def _table(n_enc_layers: int, n_dec_layers: int):
    """[(flax path, port key, transpose, role)] in the order of spec §3."""
    rows = [("encoder/continuous_inputs_projection/kernel", "proj.weight", True, "proj")]
    for i in range(n_enc_layers):
        rows += _enc_layer(i)
    rows.append(("encoder/encoder_norm/scale", "encoder.final_layer_norm.weight", False, "norm"))
    rows.append(("decoder/token_embedder/embedding", "decoder_embed_tokens.weight", False, "embed"))
    for i in range(n_dec_layers):
        rows += _dec_layer(i)
    rows.append(("decoder/decoder_norm/scale", "decoder.final_layer_norm.weight", False, "norm"))
    rows.append(("decoder/logits_dense/kernel", "lm_head.weight", True, "logits"))
    return rows


def _role_shape(role: str, d: int, inner: int, ff: int, v: int, x: int) -> Tuple[int, ...]:
    return {"proj": (x, d), "norm": (d,), "qkv": (d, inner), "out": (inner, d), "wi": (d, ff),
            "wo": (ff, d), "embed": (v, d), "logits": (d, v)}[role]


def t5x_manifest(vocab_size: int = 1536, d_model: int = 512, inner: int = 384, d_ff: int = 1024,
                 n_enc_layers: int = 8, n_dec_layers: int = 8,
                 input_dim: int = 512) -> Dict[str, Tuple[int, ...]]:
    """Every ``target`` parameter (flax path) with its shape, spec §3: 189
    names at full size (45,896,704 floats for V = 1536, 46,027,776 for 1664).
    ``inner`` = heads x head_dim."""
    return {name: _role_shape(role, d_model, inner, d_ff, vocab_size, input_dim)
            for name, _, _, role in _table(n_enc_layers, n_dec_layers)}


def port_keys(n_enc_layers: int = 8, n_dec_layers: int = 8) -> Dict[str, Tuple[str, bool]]:
    """flax path -> (``mt3.pth`` key, transposed?) for the 189 parameters.
    The port's other four keys are the aliases (``mt3.ALIASES``) and the two
    ``pos_emb.inv_freq`` buffers, which have no T5X counterpart."""
    return {name: (key, tr) for name, key, tr, _ in _table(n_enc_layers, n_dec_layers)}


def is_inline_param(name: str) -> bool:
    """True for the parameters Magenta's files keep inline in the msgpack
    (the 42 RMSNorm ``scale`` vectors, spec §2.2); the rest are zarr folders."""
    return name.endswith("/scale")


# ---------------------------------------------------------------------------
# msgpack layer (spec §2.3)
# ---------------------------------------------------------------------------

class _Ext:
    """A flax extension value, decoded only when a parameter needs it (so a
    malformed payload is reported with the parameter's name)."""

    __slots__ = ("code", "data")

    def __init__(self, code: int, data: bytes):
        self.code, self.data = code, data


def _ext_hook(code: int, data: bytes):
    return _Ext(code, bytes(data))


def _fail(where: str, problem: str) -> CheckpointError:
    return CheckpointError(f"T5X checkpoint {where}: {problem}")


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype("<u4") << 16).view("<f4")


def _decode_ndarray(ext: _Ext, where: str) -> np.ndarray:
    """flax ext 1 payload ``[shape, dtype name, raw C-order bytes]`` -> float32."""
    msgpack = _msgpack()

    try:
        tpl = msgpack.unpackb(ext.data, raw=True)
    except Exception as exc:
        raise _fail(where, f"garbled inline array payload ({type(exc).__name__}: {exc})") from exc
    if not (isinstance(tpl, (list, tuple)) and len(tpl) == 3):
        raise _fail(where, "garbled inline array payload (expected [shape, dtype, bytes])")
    shape, name, raw = tpl
    if not (isinstance(shape, (list, tuple)) and all(isinstance(s, int) and not isinstance(s, bool)
                                                     and s >= 0 for s in shape)):
        raise _fail(where, f"inline array has an invalid shape {shape!r}")
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    if not isinstance(raw, bytes):
        raise _fail(where, "inline array payload holds no raw bytes")
    if name not in _INLINE_DTYPES:
        raise _fail(where, f"inline array has dtype {name!r}; expected float32 "
                           f"(accepted: {', '.join(_INLINE_DTYPES)})")
    return _from_raw(raw, _INLINE_DTYPES[name], tuple(shape), where)


def _from_raw(raw: bytes, dtype: str, shape: Tuple[int, ...], where: str) -> np.ndarray:
    """Raw little-endian C-order bytes of ``dtype`` -> a float32 array."""
    np_dtype = np.dtype("<u2" if dtype == "bfloat16" else dtype)
    n = math.prod(shape)
    if len(raw) != n * np_dtype.itemsize:
        raise _fail(where, f"holds {len(raw):,} bytes, expected {n * np_dtype.itemsize:,} for "
                           f"{dtype} {list(shape)}")
    a = np.frombuffer(raw, dtype=np_dtype).reshape(shape)
    a = _bf16_to_f32(a) if dtype == "bfloat16" else a.astype("<f4")
    return np.ascontiguousarray(a, dtype=np.float32)


def _unchunk(node: Mapping, where: str) -> np.ndarray:
    """flax's ``{'__msgpack_chunked_array__': True, 'shape': {...}, 'chunks': {...}}``."""
    shape_map, chunks = node.get("shape"), node.get("chunks")
    if not isinstance(shape_map, Mapping) or not isinstance(chunks, Mapping):
        raise _fail(where, "chunked array lacks its 'shape' or 'chunks' map")
    try:
        shape = tuple(shape_map[str(i)] for i in range(len(shape_map)))
        parts = [chunks[str(i)] for i in range(len(chunks))]
    except KeyError as exc:
        raise _fail(where, f"chunked array has non-consecutive keys ({exc})") from exc
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape):
        raise _fail(where, f"chunked array has an invalid shape {list(shape)!r}")
    flat = []
    for j, part in enumerate(parts):
        if not (isinstance(part, _Ext) and part.code == 1):
            raise _fail(where, f"chunk {j} of a chunked array is not an array")
        flat.append(_decode_ndarray(part, f"{where} (chunk {j})").reshape(-1))
    a = np.concatenate(flat) if flat else np.zeros(0, np.float32)
    if a.size != math.prod(shape):
        raise _fail(where, f"chunked array holds {a.size:,} values, its shape {list(shape)} needs "
                           f"{math.prod(shape):,}")
    return np.ascontiguousarray(a.reshape(shape), dtype=np.float32)


def _msgpack():
    try:
        import msgpack
    except ImportError as exc:
        from ..exceptions import FrameworkError

        raise FrameworkError("reading a T5X checkpoint needs the msgpack package: "
                             "pip install 'mt3-infer[magenta]'") from exc
    return msgpack


def _load_doc(ckpt_file: str):
    msgpack = _msgpack()

    if not os.path.isfile(ckpt_file):
        where = os.path.dirname(ckpt_file)
        raise CheckpointError(
            f"T5X checkpoint {where!r}: no 'checkpoint' file ({ckpt_file!r} is missing); expected the "
            "checkpoint directory as downloaded from gs://mt3/checkpoints/<model>/"
        )
    with open(ckpt_file, "rb") as f:
        data = f.read()
    if not data:
        raise _fail(repr(ckpt_file), "the file is empty (0 bytes); download it again")
    try:
        doc = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except Exception as exc:  # incomplete input, ExtraData, FormatError, StackError, Unicode
        kind = ("truncated" if "incomplete" in str(exc).lower() or isinstance(exc, EOFError)
                else "garbled")
        raise _fail(repr(ckpt_file), f"the msgpack data is {kind} ({len(data):,} bytes; "
                                     f"{type(exc).__name__}: {exc}); download it again") from exc
    if not isinstance(doc, Mapping):
        raise _fail(repr(ckpt_file), f"holds a {type(doc).__name__}, expected a msgpack map "
                                     "{'version', 'optimizer'}")
    if doc.get("version") != CHECKPOINT_VERSION:
        raise _fail(repr(ckpt_file), f"has version {doc.get('version')!r}; this reader reads t5x "
                                     f"checkpoint version {CHECKPOINT_VERSION}")
    opt = doc.get("optimizer")
    if not isinstance(opt, Mapping) or not isinstance(opt.get("target"), Mapping):
        raise _fail(repr(ckpt_file), "has no 'optimizer' -> 'target' parameter tree")
    return opt["target"]


# ---------------------------------------------------------------------------
# Tree walk and tensorstore specs (spec §2.2, §2.5)
# ---------------------------------------------------------------------------

def _leaves(node: Mapping, prefix: str, out: Dict[str, object], where: str) -> None:
    for key, v in node.items():
        if not isinstance(key, str):
            raise _fail(where, f"non-string key {key!r} under target/{prefix}")
        path = f"{prefix}/{key}" if prefix else key
        if isinstance(v, _Ext) and v.code == 1:
            out[path] = v
        elif isinstance(v, Mapping) and _CHUNKED in v:
            out[path] = ("chunked", v)
        elif isinstance(v, Mapping) and "driver" in v:
            out[path] = ("zarr", v)
        elif isinstance(v, Mapping):
            _leaves(v, path, out, where)
        elif isinstance(v, _Ext):
            out[path] = ("bad", f"msgpack extension type {v.code}")
        else:
            out[path] = ("bad", type(v).__name__)


def zarr_folder_name(name: str) -> str:
    """The folder t5x writes parameter ``name`` to: ``target.`` + dotted path."""
    return "target." + name.replace("/", ".")


def _spec_folder(spec: Mapping, name: str, where: str) -> str:
    """The zarr folder a tensorstore spec names, checked against the name t5x
    derives from the parameter path (newer ``kvstore.path`` or the 2021
    top-level ``path``; absent: derived)."""
    if spec.get("driver") != "zarr":
        raise _fail(where, f"parameter {name}: tensorstore driver {spec.get('driver')!r}, expected 'zarr'")
    kv = spec.get("kvstore")
    p = kv.get("path") if isinstance(kv, Mapping) else None
    if not p:
        p = spec.get("path")
    want = zarr_folder_name(name)
    if not p:
        return want
    if not isinstance(p, str):
        raise _fail(where, f"parameter {name}: tensorstore path {p!r} is not a string")
    p = p.rstrip("/")
    if p.startswith("./"):
        p = p[2:]
    parts = re.split(r"[/\\]", p)
    if os.path.isabs(p) or p.startswith(("/", "\\")) or "://" in p or ".." in parts or ":" in p:
        raise _fail(where, f"parameter {name}: tensorstore path {p!r} escapes the checkpoint "
                           "directory (expected the relative folder name "
                           f"{want!r})")
    if p != want:
        raise _fail(where, f"parameter {name}: tensorstore path {p!r} is not the folder t5x "
                           f"writes for it ({want!r})")
    return want


# ---------------------------------------------------------------------------
# zarr v2 (spec §2.4)
# ---------------------------------------------------------------------------

def _int_list(v) -> bool:
    return isinstance(v, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in v)


def _read_zarray(folder: str, name: str, spec: Mapping) -> Dict:
    meta_path = os.path.join(folder, ".zarray")
    where = repr(meta_path)
    if not os.path.isdir(folder):
        raise _fail(repr(folder), f"parameter {name}: its zarr folder is missing")
    try:
        with open(meta_path, "rb") as f:
            m = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError as exc:
        raise _fail(where, f"parameter {name}: the zarr metadata file is missing") from exc
    except (OSError, ValueError) as exc:
        raise _fail(where, f"parameter {name}: unreadable zarr metadata ({exc})") from exc
    if not isinstance(m, dict):
        raise _fail(where, f"parameter {name}: zarr metadata is not a JSON object")
    if m.get("zarr_format") != 2:
        raise _fail(where, f"parameter {name}: zarr_format {m.get('zarr_format')!r}, expected 2")
    if m.get("order", "C") != "C":
        raise _fail(where, f"parameter {name}: order {m.get('order')!r}, expected 'C'")
    if m.get("filters") is not None:
        raise _fail(where, f"parameter {name}: filters {m.get('filters')!r} are not supported (expected null)")
    dtype = m.get("dtype")
    if dtype not in _ZARR_DTYPES:
        raise _fail(where, f"parameter {name}: dtype {dtype!r}; expected '<f4' "
                           f"(accepted: {', '.join(_ZARR_DTYPES)})")
    comp = m.get("compressor")
    if comp is not None and not (isinstance(comp, dict) and comp.get("id") in ("gzip", "zlib")):
        raise _fail(where, f"parameter {name}: compressor {comp!r} is not supported (gzip, zlib or null)")
    shape, chunks = m.get("shape"), m.get("chunks")
    if not (_int_list(shape) and _int_list(chunks) and len(shape) == len(chunks)
            and all(s >= 0 for s in shape) and all(c >= 1 for c in chunks)):
        raise _fail(where, f"parameter {name}: invalid shape {shape!r} / chunks {chunks!r}")
    sep = m.get("dimension_separator", ".")
    if sep not in (".", "/"):
        raise _fail(where, f"parameter {name}: dimension_separator {sep!r}, expected '.' or '/'")
    smeta = spec.get("metadata")
    if isinstance(smeta, Mapping) and "shape" in smeta and list(smeta["shape"]) != shape:
        raise _fail(where, f"parameter {name}: shape {shape} differs from the msgpack spec's "
                           f"{list(smeta['shape'])}")
    return {"shape": tuple(shape), "chunks": tuple(chunks), "dtype": dtype,
            "compressor": None if comp is None else comp["id"], "sep": sep}


def _decompress(kind: Optional[str], data: bytes, expected: int, where: str) -> bytes:
    if kind is None:
        return data
    d = zlib.decompressobj(wbits=31 if kind == "gzip" else 15)
    try:
        out = d.decompress(data, expected + 1)
        while d.unconsumed_tail and len(out) <= expected:
            out += d.decompress(d.unconsumed_tail, expected + 1 - len(out))
        if len(out) <= expected:
            out += d.flush()
    except zlib.error as exc:
        raise _fail(where, f"corrupt {kind} data ({exc})") from exc
    if len(out) > expected:
        raise _fail(where, f"decompresses to more than the {expected:,} bytes of its chunk")
    if not d.eof:
        raise _fail(where, f"truncated {kind} stream ({len(data):,} bytes stored, ends before the "
                           "end of the compressed data)")
    if d.unused_data:
        raise _fail(where, f"{len(d.unused_data):,} stray bytes after the {kind} stream")
    return out


def _read_zarr(folder: str, name: str, m: Dict) -> np.ndarray:
    shape, chunks, dtype = m["shape"], m["chunks"], m["dtype"]
    itemsize = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    out = np.empty(shape, dtype=np.float32)
    grid = [-(-s // c) for s, c in zip(shape, chunks)]
    chunk_bytes = math.prod(chunks) * itemsize
    for idx in np.ndindex(*grid):
        key = m["sep"].join(str(i) for i in idx) if idx else "0"
        f = os.path.join(folder, *key.split("/"))
        if not os.path.isfile(f):
            raise _fail(repr(f), f"parameter {name}: chunk file {key!r} is missing (a missing chunk "
                                 "is damage here, not fill values); download the checkpoint again")
        with open(f, "rb") as fh:
            raw = _decompress(m["compressor"], fh.read(), chunk_bytes, f"{f!r} (parameter {name})")
        if len(raw) != chunk_bytes:
            raise _fail(repr(f), f"parameter {name}: chunk holds {len(raw):,} bytes, expected "
                                 f"{chunk_bytes:,} ({dtype} {list(chunks)})")
        blk = _from_raw(raw, dtype, chunks, repr(f))
        dst = tuple(slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape))
        src = tuple(slice(0, d.stop - d.start) for d in dst)
        out[dst] = blk[src]
    return out


# ---------------------------------------------------------------------------
# Dimensions
# ---------------------------------------------------------------------------

def _layer_count(names, stack: str) -> int:
    cap = MAX_DIMS[f"n_{stack[:3]}_layers"]
    idx = {int(m.group(1)) for n in names for m in [re.match(rf"{stack}/layers_(\d+)/", n)] if m}
    idx = {i for i in idx if i < cap}
    return max(idx) + 1 if idx else cap


def _dims(shapes: Mapping[str, Tuple[int, ...]], where: str) -> Dict[str, int]:
    """Dimensions read from the parameters' shapes (missing/odd ones fall back
    to the real network's so that the manifest check reports them)."""
    def dim(cands, default):
        for n, ax in cands:
            s = shapes.get(n)
            if s is not None and len(s) == 2:
                return s[ax]
        return default

    v = dim([("decoder/token_embedder/embedding", 0), ("decoder/logits_dense/kernel", 1)], VOCAB_SIZES[0])
    if v not in VOCAB_SIZES:
        raise _fail(where, f"vocabulary size {v} (decoder/token_embedder/embedding rows) is neither "
                           "mt3's 1536 nor ismir2021's 1664")
    d = dim([("encoder/continuous_inputs_projection/kernel", 1),
             ("decoder/token_embedder/embedding", 1)], MAX_DIMS["d_model"])
    dims = {
        "vocab_size": v,
        "d_model": d,
        "input_dim": dim([("encoder/continuous_inputs_projection/kernel", 0)], MAX_DIMS["input_dim"]),
        "inner": dim([("encoder/layers_0/attention/query/kernel", 1),
                      ("decoder/layers_0/self_attention/query/kernel", 1)], MAX_DIMS["inner"]),
        "d_ff": dim([("encoder/layers_0/mlp/wi_0/kernel", 1),
                     ("decoder/layers_0/mlp/wi_0/kernel", 1)], MAX_DIMS["d_ff"]),
        "n_enc_layers": _layer_count(shapes, "encoder"),
        "n_dec_layers": _layer_count(shapes, "decoder"),
    }
    for k, cap in MAX_DIMS.items():
        if not 1 <= dims[k] <= cap:
            raise _fail(where, f"{k} = {dims[k]} is outside 1..{cap} (the MT3 network's "
                               "dimensions are the largest accepted)")
    return dims


def _manifest_for(dims: Mapping[str, int]) -> Dict[str, Tuple[int, ...]]:
    return t5x_manifest(dims["vocab_size"], dims["d_model"], dims["inner"], dims["d_ff"],
                        dims["n_enc_layers"], dims["n_dec_layers"], dims["input_dim"])


def _listing(title: str, items: List[str]) -> str:
    more = f" (+{len(items) - _SHOW} more)" if len(items) > _SHOW else ""
    return f"{len(items)} {title}: {', '.join(items[:_SHOW])}{more}"


def _check_names(names, expected, where: str) -> None:
    missing = [n for n in expected if n not in names]
    unexpected = sorted(n for n in names if n not in expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(_listing("missing parameters", missing))
        if unexpected:
            parts.append(_listing("unexpected parameters", unexpected))
        raise _fail(where, f"the target tree does not match the MT3 network ({len(expected)} "
                           "parameters expected): " + "; ".join(parts))


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

def resolve_t5x(path) -> Tuple[str, str]:
    """(checkpoint directory, its ``checkpoint`` file) for a directory or the file."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isdir(path):
        return path, os.path.join(path, "checkpoint")
    if not os.path.exists(path):
        parent = os.path.dirname(path)
        if os.path.basename(path) != "checkpoint" or not os.path.isdir(parent):
            raise CheckpointError(f"T5X checkpoint {path!r} not found (expected the checkpoint "
                                  "directory or its 'checkpoint' file)")
    return os.path.dirname(path), path


def read_t5x(path) -> Dict[str, np.ndarray]:
    """Read a Magenta T5X checkpoint strictly; returns the ``target``
    parameters keyed by flax path (spec §3 order), float32 C-contiguous.

    ``path`` is the checkpoint directory or its ``checkpoint`` file.  The
    msgpack must be version 3 with an ``optimizer`` -> ``target`` tree
    (``optimizer/state`` is ignored); leaves are inline flax arrays, flax
    chunked arrays or tensorstore zarr specs.  Every parameter of the
    network the shapes imply must be present with its shape and finite
    values, nothing else may appear, the vocabulary must be 1536 or 1664.
    Any failure raises :class:`CheckpointError` naming the file/parameter."""
    base, ckpt_file = resolve_t5x(path)
    where = repr(base)
    target = _load_doc(ckpt_file)
    leaves: Dict[str, object] = {}
    _leaves(target, "", leaves, where)

    # 1. names (layer counts only need the names)
    n_enc, n_dec = _layer_count(leaves, "encoder"), _layer_count(leaves, "decoder")
    expected_names = [n for n, *_ in _table(n_enc, n_dec)]
    _check_names(leaves, set(expected_names), where)
    for name in expected_names:
        leaf = leaves[name]
        if isinstance(leaf, tuple) and leaf[0] == "bad":
            raise _fail(where, f"parameter {name}: holds a {leaf[1]}, expected an array or a "
                               "tensorstore spec")

    # 2. shapes (inline arrays decoded, zarr metadata read)
    arrays: Dict[str, np.ndarray] = {}
    zarrs: Dict[str, Tuple[str, Dict]] = {}
    shapes: Dict[str, Tuple[int, ...]] = {}
    for name in expected_names:
        leaf = leaves[name]
        if isinstance(leaf, _Ext):
            arrays[name] = _decode_ndarray(leaf, f"{where}: parameter {name}")
            shapes[name] = arrays[name].shape
        elif leaf[0] == "chunked":
            arrays[name] = _unchunk(leaf[1], f"{where}: parameter {name}")
            shapes[name] = arrays[name].shape
        else:
            folder = os.path.join(base, _spec_folder(leaf[1], name, where))
            meta = _read_zarray(folder, name, leaf[1])
            zarrs[name] = (folder, meta)
            shapes[name] = meta["shape"]

    # 3. dimensions and shapes
    manifest = _manifest_for(_dims(shapes, where))
    bad = [f"{n}: expected {list(s)}, got {list(shapes[n])}" for n, s in manifest.items()
           if tuple(shapes[n]) != s]
    if bad:
        raise _fail(where, "parameter shapes do not match the network: " + _listing("mismatches", bad))

    # 4. data
    for name, (folder, meta) in zarrs.items():
        arrays[name] = _read_zarr(folder, name, meta)
    nonfinite = [n for n in expected_names if not np.isfinite(arrays[n]).all()]
    if nonfinite:
        raise _fail(where, _listing("parameters holding NaN or Inf", nonfinite))
    return {n: arrays[n] for n in expected_names}


def _check_params(params: Mapping[str, np.ndarray], where: str = "parameters") -> Dict[str, int]:
    shapes = {n: tuple(np.shape(a)) for n, a in params.items()}
    n_enc, n_dec = _layer_count(shapes, "encoder"), _layer_count(shapes, "decoder")
    _check_names(shapes, {n for n, *_ in _table(n_enc, n_dec)}, where)
    dims = _dims(shapes, where)
    bad = [f"{n}: expected {list(s)}, got {list(shapes[n])}" for n, s in _manifest_for(dims).items()
           if shapes[n] != s]
    if bad:
        raise _fail(where, "parameter shapes do not match the network: " + _listing("mismatches", bad))
    return dims


def t5x_config(params: Mapping[str, np.ndarray], n_heads: int = REAL_N_HEADS) -> Dict[str, int]:
    """Dimensions of the network ``params`` (from :func:`read_t5x`) describe:
    d_model, n_heads, d_kv, d_ff, n_enc_layers, n_dec_layers, vocab_size,
    input_dim.  Heads cannot be read from shapes: ``n_heads`` is given
    (default 6, Magenta's) and d_kv = (heads x head_dim) / n_heads."""
    dims = _check_params(params)
    if n_heads < 1 or dims["inner"] % n_heads:
        raise CheckpointError(f"T5X parameters: attention width {dims['inner']} is not a multiple "
                              f"of n_heads = {n_heads}")
    return {"d_model": dims["d_model"], "n_heads": int(n_heads), "d_kv": dims["inner"] // n_heads,
            "d_ff": dims["d_ff"], "n_enc_layers": dims["n_enc_layers"],
            "n_dec_layers": dims["n_dec_layers"], "vocab_size": dims["vocab_size"],
            "input_dim": dims["input_dim"]}


def mt3_config_for(params: Mapping[str, np.ndarray], n_heads: int = REAL_N_HEADS):
    """The :class:`mt3_infer.export.mt3.MT3Config` of ``params``: their
    dimensions, 256 encoder frames for mt3 (V = 1536) and 512 for ismir2021,
    1024 decoder positions and new tokens."""
    from .mt3 import MT3Config

    c = t5x_config(params, n_heads)
    return MT3Config(max_frames=256 if c["vocab_size"] == 1536 else 512, max_len=1024,
                     max_new_tokens=1024, **c)


def to_port_state(params: Mapping[str, np.ndarray], n_heads: int = REAL_N_HEADS):
    """``params`` (flax paths) -> the ``mt3.pth`` state dict of the PyTorch
    port (FAM §3.3), which ``MT3(mt3_config_for(params)).load_state_dict(...,
    strict=True)`` accepts: kernels transposed to ``[out, in]``, the two
    aliases filled as copies of their twins, and both ``pos_emb.inv_freq``
    set to :func:`mt3.default_inv_freq` — placeholders only: Magenta's
    positional table differs (spec §4.1) and replaces them."""
    import torch

    from .mt3 import ALIASES, default_inv_freq

    c = t5x_config(params, n_heads)
    state = {}
    for name, (key, tr) in port_keys(c["n_enc_layers"], c["n_dec_layers"]).items():
        a = np.asarray(params[name], dtype=np.float32)
        state[key] = torch.from_numpy(np.ascontiguousarray(a.T if tr else a).copy())
    for alias, twin in ALIASES.items():
        state[alias] = state[twin].clone()
    state["encoder.pos_emb.inv_freq"] = default_inv_freq(c["d_model"]).contiguous()
    state["decoder.pos_emb.inv_freq"] = default_inv_freq(c["d_model"]).contiguous()
    from .mt3 import mt3_manifest

    return {k: state[k] for k in mt3_manifest(mt3_config_for(params, n_heads))}


def port_to_t5x(state: Mapping) -> Dict[str, np.ndarray]:
    """The inverse of :func:`to_port_state`: an ``mt3.pth`` state dict (torch
    tensors or arrays) -> T5X ``target`` parameters (flax paths, float32,
    kernels ``[in, out]``).  Aliases and ``inv_freq`` are dropped."""
    def arr(v):
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        return np.asarray(v, dtype=np.float32)

    def count(prefix):
        idx = {int(k[len(prefix):].split(".", 1)[0]) for k in state
               if isinstance(k, str) and k.startswith(prefix) and k[len(prefix):].split(".", 1)[0].isdigit()}
        return max(idx) + 1 if idx else 0

    table = port_keys(count("encoder.block."), count("decoder.block."))
    missing = [key for key, _ in table.values() if key not in state]
    if missing:
        raise CheckpointError("port state dict lacks " + _listing("keys", missing))
    out = {}
    for name, (key, tr) in table.items():
        a = arr(state[key])
        out[name] = np.ascontiguousarray(a.T if tr else a)
    return out


__all__ = [
    "CHECKPOINT_VERSION",
    "VOCAB_SIZES",
    "MAX_DIMS",
    "t5x_manifest",
    "port_keys",
    "is_inline_param",
    "zarr_folder_name",
    "resolve_t5x",
    "read_t5x",
    "t5x_config",
    "mt3_config_for",
    "to_port_state",
    "port_to_t5x",
]
