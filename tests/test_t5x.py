"""Reader of Magenta's original T5X checkpoints (specs/magenta-t5x.md §2-§3,
§8 items 1-2), on small random checkpoints written by fixtures_t5x in the
real layout: bit-exact round trips, the mapping onto the PyTorch port's
mt3.pth keys, and a CheckpointError naming the problem for every kind of
damage."""
import gzip
import json
import math
import os
import shutil
import struct

import msgpack
import numpy as np
import pytest

import fixtures_t5x as fx
from mt3_infer.exceptions import CheckpointError
from mt3_infer.export import t5x

SMALL = dict(d_model=32, n_heads=2, d_kv=8, d_ff=64, n_enc=2, n_dec=2)
PROJ = "encoder/continuous_inputs_projection/kernel"
EMB = "decoder/token_embedder/embedding"
QUERY = "encoder/layers_1/attention/query/kernel"
NORM = "decoder/layers_0/pre_cross_attention_layer_norm/scale"


def folder_of(d, name):
    return os.path.join(d, "target." + name.replace("/", "."))


def assert_same(got, want):
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == np.float32 and got[k].flags.c_contiguous, k
        assert got[k].shape == want[k].shape, k
        assert got[k].tobytes() == np.asarray(want[k], np.float32).tobytes(), k


@pytest.fixture
def ckpt(tmp_path):
    params = fx.random_t5x_params(**SMALL)
    d = str(tmp_path / "mt3")
    fx.write_t5x_checkpoint(d, params)
    return d, params


def raises(d, *words):
    with pytest.raises(CheckpointError) as ei:
        t5x.read_t5x(d)
    msg = str(ei.value)
    for w in words:
        assert w in msg, msg
    return msg


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("spec_style", ["new", "2021"])
@pytest.mark.parametrize("compressor", ["gzip", "zlib", None])
@pytest.mark.parametrize("vocab", [1536, 1664])
def test_round_trip(tmp_path, spec_style, compressor, vocab):
    params = fx.random_t5x_params(vocab_size=vocab, seed=vocab, **SMALL)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params, spec_style=spec_style, compressor=compressor)
    got = t5x.read_t5x(d)
    assert_same(got, params)
    # 42-style split: norms inline, everything else one zarr folder each
    folders = sorted(n for n in os.listdir(d) if n.startswith("target."))
    assert folders == sorted("target." + n.replace("/", ".") for n in params if not n.endswith("/scale"))
    assert t5x.read_t5x(os.path.join(d, "checkpoint")).keys() == got.keys()
    cfg = t5x.t5x_config(got, n_heads=2)
    assert cfg == dict(d_model=32, n_heads=2, d_kv=8, d_ff=64, n_enc_layers=2, n_dec_layers=2,
                       vocab_size=vocab, input_dim=512)


def test_round_trip_variants(tmp_path):
    """Norms as zarr folders too, no optimizer state, other layer counts."""
    params = fx.random_t5x_params(d_model=16, n_heads=4, d_kv=2, d_ff=24, n_enc=3, n_dec=1, input_dim=40)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params, inline_norms=False, optimizer_state=False)
    assert os.path.exists(os.path.join(folder_of(d, NORM), "0"))
    got = t5x.read_t5x(d)
    assert_same(got, params)
    assert t5x.t5x_config(got, n_heads=4) == dict(d_model=16, n_heads=4, d_kv=2, d_ff=24, n_enc_layers=3,
                                                  n_dec_layers=1, vocab_size=1536, input_dim=40)


def test_flax_byte_layout():
    """The fixture packs as flax does (the byte strings quoted in spec §2.3)."""
    scale = np.ones(512, np.float32)
    b = msgpack.packb(fx.pack_ndarray(scale), use_bin_type=True)
    assert b[:4] == bytes.fromhex("c8081001")
    assert b[4:18] == bytes.fromhex("9391cd0200a7") + b"float32" + bytes.fromhex("c5")
    assert b[18:20] == bytes.fromhex("0800") and b[20:] == scale.tobytes()
    assert len(b) == 4 + 2064
    step = msgpack.packb(fx.pack_ndarray(np.int32(1), code=3), use_bin_type=True)
    assert step == bytes.fromhex("c70e03" "9390a5") + b"int32" + bytes.fromhex("c40401000000")


def test_chunked_array_and_key_order(tmp_path, ckpt):
    d, params = ckpt

    def edit(doc):
        node, last = fx.target_node(doc, NORM)
        node[last] = fx.chunked(params[NORM], 3)
        node, last = fx.target_node(doc, PROJ)  # and an inline (not zarr) kernel
        node[last] = fx.pack_ndarray(params[PROJ])
        doc["optimizer"] = {"target": doc["optimizer"]["target"], "state": doc["optimizer"]["state"]}
    fx.edit_checkpoint(d, edit)
    shutil.rmtree(folder_of(d, PROJ))
    assert_same(t5x.read_t5x(d), params)


def test_accepted_dtypes(tmp_path, ckpt):
    """<f8, <i4 and bfloat16 (zarr and inline) are read as float32."""
    d, params = ckpt
    q64 = params[QUERY].astype(np.float64)
    fx.write_zarr(folder_of(d, QUERY), q64)
    wo = "decoder/layers_1/mlp/wo/kernel"
    ints = np.round(params[wo] * 100).astype(np.int32)
    fx.write_zarr(folder_of(d, wo), ints)
    emb = params[EMB]
    bf = (emb.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
    fx.write_zarr(folder_of(d, EMB), bf, dtype="bfloat16")
    nbf = (params[NORM].view(np.uint32) >> 16).astype(np.uint16)
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].__setitem__(
        "scale", fx.pack_ndarray(nbf, "bfloat16")))
    got = t5x.read_t5x(d)
    assert got[QUERY].tobytes() == q64.astype(np.float32).tobytes()
    assert np.array_equal(got[wo], ints.astype(np.float32))
    assert np.array_equal(got[EMB].view(np.uint32), emb.view(np.uint32) & 0xFFFF0000)
    assert np.array_equal(got[NORM].view(np.uint32), params[NORM].view(np.uint32) & 0xFFFF0000)


def test_multi_chunk_zarr_with_edge_chunks(ckpt):
    """A chunk grid (3 x 2 chunks, edge chunks stored full-size), '/' separator."""
    d, params = ckpt
    a = params[EMB]  # [1536, 32]
    f = folder_of(d, EMB)
    shutil.rmtree(f)
    os.makedirs(f)
    chunks = [700, 20]
    meta = {"chunks": chunks, "compressor": {"id": "gzip", "level": 1}, "dimension_separator": "/",
            "dtype": "<f4", "fill_value": None, "filters": None, "order": "C", "shape": list(a.shape),
            "zarr_format": 2}
    with open(os.path.join(f, ".zarray"), "w") as fh:
        json.dump(meta, fh)
    for i in range(3):
        for j in range(2):
            blk = np.zeros(chunks, np.float32)
            part = a[i * 700:(i + 1) * 700, j * 20:(j + 1) * 20]
            blk[:part.shape[0], :part.shape[1]] = part
            os.makedirs(os.path.join(f, str(i)), exist_ok=True)
            with open(os.path.join(f, str(i), str(j)), "wb") as fh:
                fh.write(gzip.compress(blk.tobytes()))
    assert_same(t5x.read_t5x(d), params)
    os.remove(os.path.join(f, "2", "1"))
    raises(d, "missing", "2/1", EMB)


# ---------------------------------------------------------------------------
# The PyTorch port's layout
# ---------------------------------------------------------------------------

def random_port_state(cfg, seed=0):
    import torch

    from mt3_infer.export import mt3 as M

    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in M.mt3_manifest(cfg).items():
        if k in M.ALIASES:
            continue
        state[k] = (M.default_inv_freq(cfg.d_model) if k.endswith("inv_freq")
                    else 0.05 * torch.randn(shape, generator=g))
    for alias, twin in M.ALIASES.items():
        state[alias] = state[twin].clone()
    return {k: state[k] for k in M.mt3_manifest(cfg)}


@pytest.mark.parametrize("vocab", [1536, 1664])
def test_port_state_round_trip(tmp_path, vocab):
    torch = pytest.importorskip("torch")
    from mt3_infer.export import mt3 as M

    cfg = M.MT3Config(d_model=32, n_heads=2, d_kv=8, d_ff=64, n_enc_layers=2, n_dec_layers=3,
                      vocab_size=vocab)
    state = random_port_state(cfg, seed=vocab)
    params = t5x.port_to_t5x(state)
    assert len(params) == 1 + 2 * 9 + 1 + 1 + 3 * 14 + 1 + 1
    assert params[PROJ].shape == (512, 32) and params["decoder/logits_dense/kernel"].shape == (32, vocab)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    read = t5x.read_t5x(d)
    back = t5x.to_port_state(read, n_heads=2)
    assert list(back) == list(state)
    for k, v in state.items():
        assert back[k].dtype == torch.float32 and back[k].is_contiguous(), k
        assert back[k].shape == v.shape and torch.equal(back[k], v), k
        assert back[k].numpy().tobytes() == v.numpy().tobytes(), k
    assert back["encoder.embed_tokens.weight"].data_ptr() != back["proj.weight"].data_ptr()
    mcfg = t5x.mt3_config_for(read, n_heads=2)
    assert mcfg == M.MT3Config(d_model=32, n_heads=2, d_kv=8, d_ff=64, n_enc_layers=2, n_dec_layers=3,
                               vocab_size=vocab, max_frames=256 if vocab == 1536 else 512,
                               max_len=1024, max_new_tokens=1024)
    M.check_state_dict(back, M.mt3_manifest(mcfg))
    model = M.MT3(mcfg)
    model.load_state_dict(back, strict=True)
    # the transposes: flax y = x @ K, torch y = x @ W.T
    x = torch.randn(3, 512)
    assert torch.allclose(model.proj(x), x @ torch.from_numpy(read[PROJ]), atol=1e-5)


def test_port_state_needs_divisible_heads(ckpt):
    d, _ = ckpt
    params = t5x.read_t5x(d)
    with pytest.raises(CheckpointError, match="n_heads"):
        t5x.t5x_config(params, n_heads=3)
    with pytest.raises(CheckpointError, match="n_heads = 6"):
        t5x.to_port_state(params)  # default 6 heads: width 16 is not a multiple of 6


def test_full_size_manifest():
    """§3 / §8.1 at the real dimensions, without writing a full-size file."""
    from mt3_infer.export import mt3 as M

    for vocab, total in ((1536, 45_896_704), (1664, 46_027_776)):
        m = t5x.t5x_manifest(vocab)
        assert len(m) == 189
        assert sum(math.prod(s) for s in m.values()) == total
        assert sum(1 for n in m if t5x.is_inline_param(n)) == 42
        assert sum(math.prod(s) for n, s in m.items() if not t5x.is_inline_param(n)) == total - 42 * 512
        assert m == fx.spec_shapes(vocab)  # the fixture's own reading of the table
        assert m[EMB] == (vocab, 512) and m["decoder/logits_dense/kernel"] == (512, vocab)
        # the port: 189 keys + 2 aliases + 2 inv_freq = 193, shapes transposed where marked
        pm = M.mt3_manifest(M.MT3Config(vocab_size=vocab))
        keys = t5x.port_keys()
        assert len(pm) == 193 and len(set(k for k, _ in keys.values())) == 189
        assert set(pm) == {k for k, _ in keys.values()} | set(M.ALIASES) | {
            "encoder.pos_emb.inv_freq", "decoder.pos_emb.inv_freq"}
        for name, (key, tr) in keys.items():
            assert pm[key] == (m[name][::-1] if tr else m[name]), name
    assert sum(1 for _, tr in t5x.port_keys().values() if not tr) == 43  # 42 norms + embedding


# ---------------------------------------------------------------------------
# Strictness
# ---------------------------------------------------------------------------

def test_missing_checkpoint_file(tmp_path, ckpt):
    d, _ = ckpt
    raises(str(tmp_path / "nope"), "not found")
    os.remove(os.path.join(d, "checkpoint"))
    raises(d, "'checkpoint' file")
    raises(os.path.join(d, "checkpoint"), "'checkpoint' file")


def test_truncated_checkpoint_file(ckpt):
    d, _ = ckpt
    path = os.path.join(d, "checkpoint")
    with open(path, "rb") as f:
        data = f.read()
    for cut in (0, 1, 2, 17, 100, len(data) // 3, len(data) // 2, len(data) - 2049, len(data) - 1):
        with open(path, "wb") as f:
            f.write(data[:cut])
        raises(d, path, "empty" if cut == 0 else "truncated")


def test_garbled_checkpoint_file(ckpt):
    d, _ = ckpt
    path = os.path.join(d, "checkpoint")
    with open(path, "rb") as f:
        data = f.read()
    for bad in (b"\xc1" + data[1:], data + b"\x00", b"PK\x03\x04junk", msgpack.packb([1, 2, 3])):
        with open(path, "wb") as f:
            f.write(bad)
        with pytest.raises(CheckpointError, match=r"garbled|trailing|extra|expected a msgpack map"):
            t5x.read_t5x(d)


def test_version_and_tree(ckpt):
    d, params = ckpt
    fx.write_t5x_checkpoint(d, params, version=2)
    raises(d, "version 2")
    fx.edit_checkpoint(d, lambda doc: (doc.__setitem__("version", 3), doc["optimizer"].pop("target")))
    raises(d, "'target'")
    with open(os.path.join(d, "checkpoint"), "wb") as f:
        f.write(msgpack.packb({"version": 3}))
    raises(d, "'optimizer'")


def test_missing_chunk(ckpt):
    d, _ = ckpt
    os.remove(os.path.join(folder_of(d, QUERY), "0.0"))
    raises(d, QUERY, "chunk", "missing")


def test_missing_zarr_folder_and_metadata(ckpt):
    d, _ = ckpt
    os.remove(os.path.join(folder_of(d, PROJ), ".zarray"))
    raises(d, PROJ, ".zarray", "missing")
    shutil.rmtree(folder_of(d, PROJ))
    raises(d, PROJ, "zarr folder is missing")


@pytest.mark.parametrize("damage", ["truncate", "flip", "trailing", "empty"])
def test_damaged_gzip(ckpt, damage):
    d, _ = ckpt
    f = os.path.join(folder_of(d, QUERY), "0.0")
    with open(f, "rb") as fh:
        data = fh.read()
    bad = {"truncate": data[:len(data) // 2], "flip": data[:20] + bytes(b ^ 0x5A for b in data[20:40]) + data[40:],
           "trailing": data + b"xyz", "empty": b""}[damage]
    with open(f, "wb") as fh:
        fh.write(bad)
    msg = raises(d, QUERY, "0.0")
    assert {"truncate": "truncated", "flip": "corrupt", "trailing": "stray", "empty": "truncated"}[damage] in msg


def test_wrong_chunk_size(ckpt):
    d, params = ckpt
    fx.write_zarr(folder_of(d, QUERY), params[QUERY], chunk_bytes=params[QUERY].tobytes()[:-4])
    raises(d, QUERY, "bytes, expected")
    fx.write_zarr(folder_of(d, QUERY), params[QUERY], compressor=None,
                  chunk_bytes=params[QUERY].tobytes() + b"\0\0\0\0")
    raises(d, QUERY, "bytes, expected")
    fx.write_zarr(folder_of(d, QUERY), params[QUERY], chunk_bytes=params[QUERY].tobytes() * 2)
    raises(d, QUERY, "more than")


@pytest.mark.parametrize("dtype", [np.int16, np.float16])
def test_wrong_dtype_zarr(tmp_path, dtype):
    params = fx.random_t5x_params(**SMALL)
    params[QUERY] = params[QUERY].astype(dtype)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, QUERY, "dtype", np.dtype(dtype).str)


@pytest.mark.parametrize("dtype", [np.float16, np.int16, np.uint8])
def test_wrong_dtype_inline(tmp_path, dtype):
    params = fx.random_t5x_params(**SMALL)
    params[NORM] = params[NORM].astype(dtype)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, NORM, "dtype", np.dtype(dtype).name)


def test_zarr_metadata_fields(ckpt):
    d, params = ckpt
    meta_path = os.path.join(folder_of(d, QUERY), ".zarray")
    with open(meta_path) as f:
        good = json.load(f)
    assert good == {"chunks": [32, 16], "compressor": {"id": "gzip", "level": 1},
                    "dimension_separator": ".", "dtype": "<f4", "fill_value": None, "filters": None,
                    "order": "C", "shape": [32, 16], "zarr_format": 2}
    for change, word in (({"zarr_format": 3}, "zarr_format"), ({"order": "F"}, "order"),
                         ({"filters": [{"id": "delta"}]}, "filters"), ({"dtype": ">f4"}, "dtype"),
                         ({"compressor": {"id": "blosc"}}, "compressor"), ({"chunks": [32]}, "chunks"),
                         ({"dimension_separator": "-"}, "dimension_separator")):
        with open(meta_path, "w") as f:
            json.dump({**good, **change}, f)
        raises(d, QUERY, word)
    with open(meta_path, "w") as f:
        f.write('{"zarr_format": 2, ')
    raises(d, QUERY, "unreadable")


def test_wrong_shape(tmp_path):
    params = fx.random_t5x_params(**SMALL)
    params[QUERY] = params[QUERY][:, :12].copy()
    d = fx.write_t5x_checkpoint(str(tmp_path / "a"), params)
    raises(d, QUERY, "expected [32, 16], got [32, 12]")
    params = fx.random_t5x_params(**SMALL)
    params[NORM] = params[NORM][:31].copy()
    d = fx.write_t5x_checkpoint(str(tmp_path / "b"), params)
    raises(d, NORM, "expected [32], got [31]")
    params = fx.random_t5x_params(**SMALL)
    params["decoder/logits_dense/kernel"] = params["decoder/logits_dense/kernel"][:, :1664 - 128 - 1].copy()
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, "decoder/logits_dense/kernel", "expected [32, 1536]")


def test_spec_shape_disagrees_with_zarray(ckpt):
    d, _ = ckpt

    def edit(doc):
        node, last = fx.target_node(doc, QUERY)
        node[last]["metadata"]["shape"] = [16, 32]
    fx.edit_checkpoint(d, edit)
    raises(d, QUERY, "differs")


def test_dims_larger_than_mt3(tmp_path):
    params = fx.random_t5x_params(d_model=32, n_heads=2, d_kv=8, d_ff=1100, n_enc=1, n_dec=1)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, "d_ff = 1100")


def test_extra_and_missing_parameters(tmp_path):
    params = fx.random_t5x_params(**SMALL)
    params["encoder/layers_0/attention/query/bias"] = np.zeros(16, np.float32)
    params["decoder/relpos_bias/rel_embedding"] = np.zeros((6, 32), np.float32)
    d = fx.write_t5x_checkpoint(str(tmp_path / "a"), params)
    raises(d, "2 unexpected parameters", "encoder/layers_0/attention/query/bias",
           "decoder/relpos_bias/rel_embedding")
    params = fx.random_t5x_params(**SMALL)
    del params["decoder/layers_1/encoder_decoder_attention/value/kernel"]
    del params["encoder/encoder_norm/scale"]
    d = fx.write_t5x_checkpoint(str(tmp_path / "b"), params)
    raises(d, "2 missing parameters", "decoder/layers_1/encoder_decoder_attention/value/kernel",
           "encoder/encoder_norm/scale")
    params = fx.random_t5x_params(**SMALL)  # a whole layer 1 gone, layer 2 present
    params = {k.replace("decoder/layers_1/", "decoder/layers_2/"): v for k, v in params.items()}
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, "14 missing parameters", "decoder/layers_1/mlp/wo/kernel")


def test_missing_inline_norm(ckpt):
    """The classic failure (§2.2): a reader that only scans target.* folders
    drops the inline norms; here a dropped norm is an error."""
    d, _ = ckpt
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].clear())
    raises(d, "1 missing parameters", NORM)


def test_non_array_leaf(ckpt):
    d, _ = ckpt
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].__setitem__("scale", [1.0, 2.0]))
    raises(d, NORM, "holds a list")
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].__setitem__(
        "scale", fx.pack_ndarray(np.float32(1.0), code=3)))
    raises(d, NORM, "extension type 3")


def test_garbled_inline_payload(ckpt):
    d, _ = ckpt
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].__setitem__(
        "scale", msgpack.ExtType(1, b"\x93\x91\xcd")))
    raises(d, NORM, "garbled")
    payload = msgpack.packb([[32], "float32", b"\0" * 64], use_bin_type=True)
    fx.edit_checkpoint(d, lambda doc: fx.target_node(doc, NORM)[0].__setitem__(
        "scale", msgpack.ExtType(1, payload)))
    raises(d, NORM, "64 bytes, expected 128")


@pytest.mark.parametrize("where", ["zarr", "inline"])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nan_inf(tmp_path, where, value):
    params = fx.random_t5x_params(**SMALL)
    name = QUERY if where == "zarr" else NORM
    params[name][3] = value
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, "NaN or Inf", name)


def test_vocab_size(tmp_path):
    params = fx.random_t5x_params(vocab_size=1000, **SMALL)
    d = fx.write_t5x_checkpoint(str(tmp_path / "c"), params)
    raises(d, "vocabulary size 1000")


@pytest.mark.parametrize("bad_path", ["../x", "/etc/target.x", "target.encoder/../../x",
                                      "gs://mt3/checkpoints/mt3/target.x"])
def test_spec_path_escaping(ckpt, bad_path):
    d, _ = ckpt

    def edit(doc):
        node, last = fx.target_node(doc, QUERY)
        node[last]["kvstore"]["path"] = bad_path
    fx.edit_checkpoint(d, edit)
    raises(d, QUERY, "escapes the checkpoint directory")


def test_spec_path_forms(ckpt):
    """2021 top-level path, kvstore path with a trailing '/', no path at all
    (derived from the key), and a path naming another parameter's folder."""
    d, params = ckpt
    name = QUERY
    want = "target." + name.replace("/", ".")

    def set_spec(spec):
        def edit(doc):
            node, last = fx.target_node(doc, name)
            node[last] = spec
        fx.edit_checkpoint(d, edit)

    for spec in ({"driver": "zarr", "kvstore": {"driver": "gcs", "bucket": "b"}, "path": want},
                 {"driver": "zarr", "kvstore": {"driver": "file", "path": want + "/"}},
                 {"driver": "zarr", "kvstore": {"driver": "file", "path": "./" + want}},
                 {"driver": "zarr", "kvstore": {"driver": "file"}}):
        set_spec(spec)
        assert_same(t5x.read_t5x(d), params)
    set_spec({"driver": "zarr", "kvstore": {"driver": "file", "path": "target." + PROJ.replace("/", ".")}})
    raises(d, name, "not the folder t5x writes")
    set_spec({"driver": "n5", "kvstore": {"driver": "file", "path": want}})
    raises(d, name, "driver")


def test_optimizer_state_ignored(ckpt):
    """Anything under optimizer/state (even garbage) is ignored."""
    d, params = ckpt

    def edit(doc):
        doc["optimizer"]["state"]["param_states"]["junk"] = msgpack.ExtType(1, b"not a payload")
        doc["optimizer"]["state"]["step"] = msgpack.ExtType(3, b"\x93\x90\xa5int32\xc4\x04\x01\x00\x00\x00")
        doc["flax_mutables"] = {}
    fx.edit_checkpoint(d, edit)
    assert_same(t5x.read_t5x(d), params)


def test_errors_are_checkpoint_errors_fuzz(ckpt):
    """Random byte damage to the msgpack never escapes as another exception."""
    d, params = ckpt
    path = os.path.join(d, "checkpoint")
    with open(path, "rb") as f:
        data = bytearray(f.read())
    rng = np.random.default_rng(0)
    for _ in range(60):
        bad = bytearray(data)
        for i in rng.integers(0, len(bad), size=4):
            bad[i] = int(rng.integers(0, 256))
        with open(path, "wb") as f:
            f.write(bad)
        try:
            got = t5x.read_t5x(d)
        except CheckpointError:
            continue
        assert list(got) == list(params)  # a flip in raw float bytes or the ignored state


def test_pack_struct_sanity():
    """The step scalar of t5x's test file (§2.3) decodes with struct too."""
    ext = fx.pack_ndarray(np.int32(7), code=3)
    shape, name, raw = msgpack.unpackb(ext.data, raw=True)
    assert shape == [] and name == b"int32" and struct.unpack("<i", raw) == (7,)
