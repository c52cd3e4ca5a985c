"""Random-weight T5X checkpoints in the layout of Magenta's MT3 files.

Written from specs/magenta-t5x.md §2-§3, independently of
mt3_infer.export.t5x: the parameter list is typed out again from the §3
table, the msgpack is produced by ``msgpack.packb`` with ``ExtType`` values
packed the way flax packs them (ext 1 = ndarray, ext 3 = numpy scalar, each
a msgpack ``[shape, dtype name, raw bytes]``), and the zarr folders hold the
compact ``.zarray`` JSON of §2.4 with one chunk file (``0.0``, or ``0`` for
rank 1).
"""
import gzip
import json
import os
import zlib

import msgpack
import numpy as np


def spec_names(n_enc=8, n_dec=8):
    """[(flax path, shape role)] in the order of the spec's §3 table."""
    out = [("encoder/continuous_inputs_projection/kernel", "proj")]
    for i in range(n_enc):
        p = f"encoder/layers_{i}/"
        out.append((p + "pre_attention_layer_norm/scale", "d"))
        out += [(p + f"attention/{n}/kernel", "qkv") for n in ("query", "key", "value")]
        out.append((p + "attention/out/kernel", "out"))
        out.append((p + "pre_mlp_layer_norm/scale", "d"))
        out += [(p + "mlp/wi_0/kernel", "wi"), (p + "mlp/wi_1/kernel", "wi"), (p + "mlp/wo/kernel", "wo")]
    out.append(("encoder/encoder_norm/scale", "d"))
    out.append(("decoder/token_embedder/embedding", "embed"))
    for i in range(n_dec):
        p = f"decoder/layers_{i}/"
        out.append((p + "pre_self_attention_layer_norm/scale", "d"))
        out += [(p + f"self_attention/{n}/kernel", "qkv") for n in ("query", "key", "value")]
        out.append((p + "self_attention/out/kernel", "out"))
        out.append((p + "pre_cross_attention_layer_norm/scale", "d"))
        out += [(p + f"encoder_decoder_attention/{n}/kernel", "qkv") for n in ("query", "key", "value")]
        out.append((p + "encoder_decoder_attention/out/kernel", "out"))
        out.append((p + "pre_mlp_layer_norm/scale", "d"))
        out += [(p + "mlp/wi_0/kernel", "wi"), (p + "mlp/wi_1/kernel", "wi"), (p + "mlp/wo/kernel", "wo")]
    out.append(("decoder/decoder_norm/scale", "d"))
    out.append(("decoder/logits_dense/kernel", "logits"))
    return out


def spec_shapes(vocab_size=1536, d_model=512, inner=384, d_ff=1024, n_enc=8, n_dec=8, input_dim=512):
    """{flax path: shape} per §3 (flax kernels are [in, out])."""
    d, v = d_model, vocab_size
    role = {"proj": (input_dim, d), "d": (d,), "qkv": (d, inner), "out": (inner, d),
            "wi": (d, d_ff), "wo": (d_ff, d), "embed": (v, d), "logits": (d, v)}
    return {name: role[r] for name, r in spec_names(n_enc, n_dec)}


def random_t5x_params(vocab_size=1536, d_model=32, n_heads=2, d_kv=8, d_ff=64, n_enc=2, n_dec=2,
                      input_dim=512, seed=0):
    """{flax path: float32 array}: kernels ~ N(0, 0.05), norm scales ~ 1 + N(0, 0.05)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in spec_shapes(vocab_size, d_model, n_heads * d_kv, d_ff, n_enc, n_dec,
                                   input_dim).items():
        val = 0.05 * rng.standard_normal(shape)
        if name.endswith("/scale"):
            val = val + 1.0
        out[name] = np.ascontiguousarray(val, dtype=np.float32)
    return out


# -- msgpack (flax's serialization) -------------------------------------------

def pack_ndarray(arr, dtype_name=None, code=1):
    """flax's ExtType for an ndarray (code 1) or numpy scalar (code 3).
    ``dtype_name`` overrides ``arr.dtype.name`` (e.g. "bfloat16" with a
    uint16 array holding the bit patterns)."""
    arr = np.asarray(arr)
    payload = msgpack.packb([list(arr.shape), dtype_name or arr.dtype.name, arr.tobytes("C")],
                            use_bin_type=True)
    return msgpack.ExtType(code, payload)


def chunked(arr, n_chunks=3):
    """flax's map form of a large array, split into ``n_chunks`` flat pieces."""
    flat = np.asarray(arr).reshape(-1)
    pieces = np.array_split(flat, n_chunks)
    return {"__msgpack_chunked_array__": True,
            "shape": {str(i): int(s) for i, s in enumerate(np.shape(arr))},
            "chunks": {str(i): pack_ndarray(p) for i, p in enumerate(pieces)}}


def _nest(flat):
    tree = {}
    for path, v in flat.items():
        node = tree
        *heads, last = path.split("/")
        for k in heads:
            node = node.setdefault(k, {})
        node[last] = v
    return tree


# -- zarr v2 -----------------------------------------------------------------

def zarr_dtype(arr):
    return np.asarray(arr).dtype.str  # '<f4', '<i2', ...


def write_zarr(folder, arr, compressor="gzip", dtype=None, chunk_bytes=None):
    """One zarr v2 array with a single chunk: ``.zarray`` (compact JSON,
    sorted keys, as §2.4) and ``0.0`` (``0`` for rank 1)."""
    arr = np.ascontiguousarray(arr)
    os.makedirs(folder, exist_ok=True)
    comp = None if compressor is None else {"id": compressor, "level": 1}
    meta = {"chunks": list(arr.shape), "compressor": comp, "dimension_separator": ".",
            "dtype": dtype or zarr_dtype(arr), "fill_value": None, "filters": None, "order": "C",
            "shape": list(arr.shape), "zarr_format": 2}
    with open(os.path.join(folder, ".zarray"), "w") as f:
        f.write(json.dumps(meta, sort_keys=True, separators=(",", ":")))
    raw = arr.tobytes("C") if chunk_bytes is None else chunk_bytes
    if compressor == "gzip":
        raw = gzip.compress(raw, compresslevel=1, mtime=0)
    elif compressor == "zlib":
        raw = zlib.compress(raw, 1)
    key = ".".join("0" for _ in arr.shape) or "0"
    with open(os.path.join(folder, key), "wb") as f:
        f.write(raw)
    return os.path.join(folder, key)


def ts_spec(name, arr, spec_style="new", compressor="gzip"):
    """The tensorstore spec map t5x stores in the msgpack instead of the array."""
    arr = np.asarray(arr)
    path = "target." + name.replace("/", ".")
    comp = None if compressor is None else {"id": compressor}
    meta = {"compressor": comp, "shape": list(arr.shape), "chunks": list(arr.shape),
            "dtype": zarr_dtype(arr)}
    if spec_style == "new":
        return {"driver": "zarr", "dtype": arr.dtype.name,
                "kvstore": {"driver": "file", "path": path}, "metadata": meta}
    if spec_style == "2021":
        return {"driver": "zarr", "kvstore": {"driver": "gcs", "bucket": "t5x-dummy-bucket"},
                "path": path, "metadata": meta}
    raise ValueError(spec_style)


def _adafactor_state(params):
    """Small Adafactor placeholders (§2.6): factored v_row/v_col for
    matrices, v for vectors, (1,)-shaped zeros elsewhere."""
    one = pack_ndarray(np.zeros(1, np.float32))
    out = {}
    for name, a in params.items():
        s = np.shape(a)
        if len(s) == 2:
            st = {"m": one, "v": one, "v_col": pack_ndarray(np.zeros(s[1], np.float32)),
                  "v_row": pack_ndarray(np.zeros(s[0], np.float32))}
        else:
            st = {"m": one, "v": pack_ndarray(np.zeros(s, np.float32)), "v_col": one, "v_row": one}
        out[name] = st
    return _nest(out)


def write_t5x_checkpoint(folder, params, *, spec_style="new", inline_norms=True, optimizer_state=True,
                         compressor="gzip", version=3):
    """Write ``folder/checkpoint`` + one ``target.<dotted path>/`` zarr folder
    per non-inline parameter.  Arrays are written with their own dtype
    (a float16 or int16 array makes a wrong-dtype file).  Returns ``folder``."""
    os.makedirs(folder, exist_ok=True)
    flat = {}
    for name, arr in params.items():
        if inline_norms and name.endswith("/scale"):
            flat[name] = pack_ndarray(arr)
        else:
            write_zarr(os.path.join(folder, "target." + name.replace("/", ".")), arr, compressor)
            flat[name] = ts_spec(name, arr, spec_style, compressor)
    optimizer = {}
    if optimizer_state:  # t5x's own test file stores state before target
        optimizer["state"] = {"param_states": _adafactor_state(params),
                              "step": pack_ndarray(np.int32(1000000), code=3)}
    optimizer["target"] = _nest(flat)
    with open(os.path.join(folder, "checkpoint"), "wb") as f:
        f.write(msgpack.packb({"version": version, "optimizer": optimizer}, use_bin_type=True))
    return folder


def edit_checkpoint(folder, fn):
    """Decode ``folder/checkpoint`` (ExtType values kept as they are), call
    ``fn(doc)`` to change it in place, and write it back."""
    path = os.path.join(folder, "checkpoint")
    with open(path, "rb") as f:
        doc = msgpack.unpackb(f.read(), raw=False)
    fn(doc)
    with open(path, "wb") as f:
        f.write(msgpack.packb(doc, use_bin_type=True))


def target_node(doc, name):
    """(parent map, last key) of flax path ``name`` in ``doc``'s target tree."""
    node = doc["optimizer"]["target"]
    *heads, last = name.split("/")
    for k in heads:
        node = node[k]
    return node, last
