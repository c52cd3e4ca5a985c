"""YourMT3 "YPTF.MoE+Multi (noPS)": our own modules, safe checkpoint loading,
TorchScript export (engine contract of csrc/engine/engine.h, family "yourmt3").

Facts: shared/specs/yourmt3.md (section numbers below refer to it).

Network (per batch of B segments, T = 110 frames, F = 1024 bins):
  pre-encoder   3 residual conv blocks (BN folded at load), avg-pool x2 in
                frequency each                      -> (B, Cc, T, F/8)
  Perceiver-TF  latents (K, D); per block: spectral cross-attention onto the Cc
                channel tokens of each frame, 2 latent (local) layers, 2
                temporal layers; pre-norm (RMSNorm or LayerNorm, read from the
                checkpoint); RoPE on queries only with the rotary width that the
                stored ``freqs`` imply (2 * len(freqs), i.e. 4 of 16 channels);
                top-k MoE feed-forward with vectorised dispatch  -> (B, T, K, D)
  bridge        latent pairs (2c, 2c+1) -> Linear -> 13 channel streams
  decoder       T5 v1.1-style, N = B*13 independent rows sharing weights, each
                cross-attending to its own stream; fixed sinusoidal positions,
                separate embedding and LM head, hidden * d_model**-0.5 before
                the head, unscaled attention scores.

Checkpoint loading never executes pickled code: the Lightning ``last.ckpt`` is
read through torch.load with a restricted unpickler (``_RestrictedUnpickler``)
that maps the checkpoint's ``utils.*`` / ``config.*`` / ``model.*`` / Lightning
classes to inert stand-ins and refuses every other global that is not plain
tensor or container data.
"""


import builtins
import collections
import math
import os
import pathlib
import pickle
import re
import types
import warnings
import zipfile
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..exceptions import CheckpointError
from . import common as _common
from ._groups import attend_rows, check_groups, group_positions, linear_int8, quantize_linear, require_ops

EXPORTER_VERSION = "yourmt3-2"  # recorded as the meta extra "yourmt3_exporter"; 2: decoder attention via mt3::attend_rows
FAMILY = "yourmt3"
START_ID = 0
EOS_ID = 1
PAD_ID = 0
MAX_NEW_TOKENS = 256  # per channel (task mc13_full_plus_256)

__all__ = [
    "YourMT3Config",
    "YourMT3Net",
    "load_checkpoint",
    "infer_config",
    "expected_state_dict_shapes",
    "check_state_dict",
    "build_model",
    "export_checkpoint",
    "export_meta",
    "greedy_decode",
    "greedy_decode_uncached",
]


# =============================================================================
# Restricted unpickling
# =============================================================================

# Module prefixes whose globals become inert stand-ins: the pickled TaskManager
# and codec objects of the YourMT3 code base (utils.*, config.*, model.*), the
# Lightning containers (AttributeDict, enums of the trainer state), and
# optimizer / scheduler classes that only occur in the training state that
# inference ignores.  A stand-in is never imported and never runs any code.
_STANDIN_PREFIXES = (
    "utils",
    "config",
    "model",
    "pytorch_lightning",
    "lightning",
    "lightning_fabric",
    "lightning_utilities",
    "torch.optim",
)
_STANDIN_EXACT = {("argparse", "Namespace"), ("functools", "partial")}


class _Inert(dict):
    """Stand-in for a pickled object of a class we refuse to import.

    It is a dict so that SETITEMS on dict subclasses (Lightning's AttributeDict)
    keeps the items; anything else (constructor arguments, __setstate__ state,
    list items) is recorded but never interpreted.
    """

    _origin = "?"

    def __new__(cls, *args, **kwargs):  # noqa: D401 - accept any NEWOBJ arguments
        return dict.__new__(cls)

    def __init__(self, *args, **kwargs):  # REDUCE: cls(*args) -> record only
        dict.__init__(self)
        object.__setattr__(self, "_args", args)

    def __setstate__(self, state):
        object.__setattr__(self, "_state", state)

    def append(self, item):
        self.setdefault("__items__", []).append(item)

    def extend(self, items):
        self.setdefault("__items__", []).extend(items)

    def __repr__(self):
        return f"<inert {self._origin} {dict.__repr__(self)}>"


_STANDIN_CACHE: Dict[str, type] = {}
_STANDIN_CACHE_MAX = 512  # a real checkpoint names a few dozen classes; a hostile one could name millions


def _standin(module: str, name: str) -> type:
    origin = f"{module}.{name}"
    cls = _STANDIN_CACHE.get(origin)
    if cls is None:
        safe = re.sub(r"\W", "_", name) or "Inert"
        cls = type(safe, (_Inert,), {"__module__": __name__ + ".inert", "_origin": origin})
        if len(_STANDIN_CACHE) < _STANDIN_CACHE_MAX:
            _STANDIN_CACHE[origin] = cls
    return cls


def _safe_reconstructor(cls, base, state):
    # copyreg._reconstructor for protocol 0/1 objects: only for our stand-ins.
    if isinstance(cls, type) and issubclass(cls, _Inert):
        obj = cls()
        if state is not None:
            obj.__setstate__(state)
        return obj
    raise _Refused(f"copyreg._reconstructor({getattr(cls, '__name__', cls)!r})")


def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    # Protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8"):
        raise _Refused(f"_codecs.encode(..., {encoding!r})")
    return obj.encode(encoding, errors)


class _Refused(pickle.UnpicklingError):
    pass


def _safe_globals() -> Dict[Tuple[str, str], Any]:
    import torch._utils as tu

    table: Dict[Tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("collections", "Counter"): collections.Counter,
        ("builtins", "object"): object,
        ("torch._utils", "_rebuild_tensor_v2"): tu._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): tu._rebuild_parameter,
        ("torch", "Size"): torch.Size,
        ("torch", "device"): torch.device,
        ("copyreg", "_reconstructor"): _safe_reconstructor,
        ("_codecs", "encode"): _safe_codecs_encode,
        ("pathlib", "PosixPath"): pathlib.PurePosixPath,
        ("pathlib", "PurePosixPath"): pathlib.PurePosixPath,
        ("pathlib", "WindowsPath"): pathlib.PureWindowsPath,
        ("pathlib", "PureWindowsPath"): pathlib.PureWindowsPath,
        ("pathlib", "Path"): pathlib.PurePosixPath,
    }
    if hasattr(tu, "_rebuild_parameter_with_state"):
        table[("torch._utils", "_rebuild_parameter_with_state")] = tu._rebuild_parameter_with_state
    for name in ("set", "frozenset", "complex", "slice", "bytearray", "list", "dict", "tuple",
                 "int", "float", "str", "bool", "bytes"):
        table[("builtins", name)] = getattr(builtins, name)
        table[("__builtin__", name)] = getattr(builtins, name)
    return table


def _numpy_global(module: str, name: str):
    # numpy arrays / scalars / dtypes in the hparams (evaluation vocabularies).
    if module not in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        return None
    if (module, name) == ("numpy", "ndarray") or (module, name) == ("numpy", "dtype"):
        import numpy as np

        return getattr(np, name)
    if name in ("_reconstruct", "scalar") and module != "numpy":
        import numpy as np

        core = getattr(np, "_core", None) or np.core
        return getattr(core.multiarray, name)
    return None


_MEMO_PUTS = frozenset(("PUT", "BINPUT", "LONG_BINPUT"))


def _check_memo_indices(data: bytes) -> None:
    """Refuse a pickle whose memo indices lie beyond its own size.  CPython's
    unpickler grows its memo table to the largest index it is told to store
    at and zero-fills it: five bytes (LONG_BINPUT 1195853639) made it touch
    18 GB here.  A real pickle stores at most one memo entry per opcode, so
    every index is below its length."""
    import pickletools

    limit = len(data)
    try:
        for op, arg, _ in pickletools.genops(data):
            if op.name in _MEMO_PUTS and isinstance(arg, int) and not 0 <= arg <= limit:
                raise pickle.UnpicklingError(
                    f"memo index {arg} beyond the pickle's {limit} bytes (malformed or hostile data)")
            if op.name == "STOP":
                return
    except pickle.UnpicklingError:
        raise
    except Exception as exc:  # genops' own view of truncated or invalid opcodes
        raise pickle.UnpicklingError(f"malformed pickle: {exc}") from None


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only reconstructs tensors, plain containers and inert
    stand-ins, from a pickle whose memo indices were checked first."""

    _table: Optional[Dict[Tuple[str, str], Any]] = None

    def __init__(self, file, **kwargs):
        import io

        data = file.read()  # the checkpoint's data.pkl: kilobytes (tensors live in other records)
        _check_memo_indices(data)
        super().__init__(io.BytesIO(data), **kwargs)

    def find_class(self, module, name):  # noqa: D401
        if not isinstance(module, str) or not isinstance(name, str):
            raise _Refused(f"{module!r}.{name!r}")
        table = type(self)._table
        if table is None:
            table = type(self)._table = _safe_globals()
        hit = table.get((module, name))
        if hit is not None:
            return hit
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        np_hit = _numpy_global(module, name)
        if np_hit is not None:
            return np_hit
        if (module, name) in _STANDIN_EXACT or any(
            module == p or module.startswith(p + ".") for p in _STANDIN_PREFIXES
        ):
            return _standin(module, name)
        raise _Refused(f"{module}.{name}")


class _RestrictedPickleModule(types.ModuleType):
    """The ``pickle_module`` handed to torch.load."""

    Unpickler = _RestrictedUnpickler
    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()

    @staticmethod
    def loads(data, **kwargs):
        import io

        return _RestrictedUnpickler(io.BytesIO(data), **kwargs).load()


_PICKLE_MODULE = _RestrictedPickleModule("mt3_infer_restricted_pickle")
_PICKLE_MODULE.__version__ = "1"  # torch probes the name for "dill" only


def _read_checkpoint_object(path: str) -> Any:
    """torch.load through the restricted unpickler; every failure -> CheckpointError."""
    if not os.path.isfile(path):
        raise CheckpointError(f"YourMT3 checkpoint not found: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a readable PyTorch zip checkpoint ({exc}); the file is truncated, "
            "corrupt or of another format. Download last.ckpt again."
        ) from None
    if any(n.endswith("constants.pkl") for n in names):
        raise CheckpointError(
            f"{path} is a TorchScript archive (an exported model), not a Lightning checkpoint; "
            "load it as an exported model instead of exporting it again."
        )
    if not any(n.endswith("data.pkl") for n in names):
        raise CheckpointError(f"{path} is a zip file but not a PyTorch checkpoint (no data.pkl).")
    try:
        # mmap: the optimizer moments (2/3 of last.ckpt) are never read into memory
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True,
                          pickle_module=_PICKLE_MODULE)
    except _Refused as exc:
        raise CheckpointError(
            f"refusing to load {path}: its pickle references the global '{exc.args[0]}', which is "
            "neither tensor data nor a known YourMT3/Lightning class. The file may be malicious "
            "or is not a YourMT3 checkpoint; it was not executed."
        ) from None
    except CheckpointError:
        raise
    except Exception as exc:  # truncated records, bad storages, foreign pickles
        raise CheckpointError(
            f"could not read {path} as a YourMT3 checkpoint: {type(exc).__name__}: {exc}"
        ) from None


_PREFIX_CANDIDATES = ("model.", "module.", "_orig_mod.", "net.")
_TOP_LEVEL = ("pre_encoder.", "encoder.", "decoder.", "pre_decoder.", "embed_tokens.", "lm_head.")


def _normalise_keys(sd: Dict[str, Tensor]) -> "collections.OrderedDict[str, Tensor]":
    keys = list(sd)
    if keys and not any(k.startswith(_TOP_LEVEL) for k in keys):
        for p in _PREFIX_CANDIDATES:
            if all(k.startswith(p) for k in keys):
                sd = {k[len(p):]: v for k, v in sd.items()}
                break
    # Pitch-shift augmentation tensors (the "PS" variants) are training-only.
    return collections.OrderedDict((k, v) for k, v in sd.items() if not k.startswith("pitchshift."))


def load_checkpoint(path) -> Tuple["collections.OrderedDict[str, Tensor]", Optional[dict]]:
    """Read a YourMT3 checkpoint without executing pickled code.

    Accepts the Lightning ``last.ckpt`` (a dict with ``state_dict`` and
    ``hyper_parameters``) or a bare state_dict saved with torch.save.  Returns
    ``(state_dict, hparams)`` with keys normalised (a common ``model.`` /
    ``module.`` prefix removed, ``pitchshift.*`` dropped); ``hparams`` is None
    for a bare state_dict.
    """
    path = os.fspath(path)
    obj = _read_checkpoint_object(path)
    if not isinstance(obj, dict):
        raise CheckpointError(
            f"{path} holds a {type(obj).__name__}, not a Lightning checkpoint dict or a state_dict."
        )
    if "state_dict" in obj:
        sd = obj["state_dict"]
        hparams = obj.get("hyper_parameters")
        if hparams is not None and not isinstance(hparams, dict):
            raise CheckpointError(f"{path}: 'hyper_parameters' is a {type(hparams).__name__}, not a dict.")
    elif obj and all(isinstance(v, Tensor) for v in obj.values()):
        sd, hparams = obj, None
    else:
        raise CheckpointError(
            f"{path} is not a YourMT3 Lightning checkpoint: it has no 'state_dict' "
            f"(top-level keys: {sorted(map(str, obj))[:10]})."
        )
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: 'state_dict' is a {type(sd).__name__}, not a dict.")
    bad = [str(k) for k, v in sd.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise CheckpointError(f"{path}: state_dict entries that are not tensors: {bad[:10]}")
    return _normalise_keys(sd), (dict(hparams) if hparams is not None else None)


# =============================================================================
# Configuration from the checkpoint
# =============================================================================


@dataclass(frozen=True)
class YourMT3Config:
    # pre-encoder
    n_pre_blocks: int = 3
    conv_ch: int = 128
    feature_bins: int = 1024
    frames: int = 110
    # Perceiver-TF
    num_latents: int = 26
    d_latent: int = 128
    kv_dim: int = 128
    qk_channels: int = 128
    v_channels: int = 128
    sca_heads: int = 8
    self_heads: int = 8
    n_blocks: int = 3
    n_local: int = 2
    n_temporal: int = 2
    n_experts: int = 8
    moe_hidden: int = 512
    moe_topk: int = 2
    hidden_act: str = "silu"
    rms_norm: bool = True
    enc_eps: float = 1e-5
    rope_len: int = 2  # len(freqs); the rotary width is 2 * rope_len
    rope_type_sca: str = "pixel"
    rope_type_latent: str = "pixel"
    rope_type_temporal: str = "lang"
    sca_query_residual: bool = True
    query_residual: bool = True
    # bridge + decoder
    channels: int = 13
    d_model: int = 512
    n_layers: int = 8
    n_heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    vocab: int = 596
    pe_rows: int = 1034
    dec_eps: float = 1e-6
    tie_scale: bool = True
    max_len: int = MAX_NEW_TOKENS
    n_fft: int = 2048

    @property
    def group(self) -> int:
        return self.num_latents // self.channels


def expected_state_dict_shapes(cfg: YourMT3Config) -> "collections.OrderedDict[str, Tuple[int, ...]]":
    """The key manifest of spec section 4.8 for the given dimensions."""
    m: "collections.OrderedDict[str, Tuple[int, ...]]" = collections.OrderedDict()
    m["spectrogram.stft.window"] = (cfg.n_fft,)
    c = cfg.conv_ch
    for i in range(cfg.n_pre_blocks):
        p = f"pre_encoder.0.blocks.{i}."
        cin = 1 if i == 0 else c
        m[p + "conv1.weight"] = (c, cin, 3, 3)
        m[p + "conv2.weight"] = (c, c, 3, 3)
        if cin != c:
            m[p + "shortcut.weight"] = (c, cin, 1, 1)
            m[p + "shortcut.bias"] = (c,)
        for bn in ("bn1", "bn2"):
            for t in ("weight", "bias", "running_mean", "running_var"):
                m[p + f"{bn}.{t}"] = (c,)
            m[p + f"{bn}.num_batches_tracked"] = ()
    d, kv = cfg.d_latent, cfg.kv_dim
    m["encoder.latent_array.latents"] = (cfg.num_latents, d)
    for r in ("sca", "latent", "temporal"):
        m[f"encoder.rotary_emb_{r}.freqs"] = (cfg.rope_len,)

    def norm(key, dim):
        m[key + ".weight"] = (dim,)
        if not cfg.rms_norm:
            m[key + ".bias"] = (dim,)

    for i in range(cfg.n_blocks):
        p = f"encoder.blocks.{i}.spectral_cross_attention."
        norm(p + "self.layernorm1", d)
        norm(p + "self.layernorm2", kv)
        m[p + "self.query.weight"] = (cfg.qk_channels, d)
        m[p + "self.query.bias"] = (cfg.qk_channels,)
        m[p + "self.key.weight"] = (cfg.qk_channels, kv)
        m[p + "self.key.bias"] = (cfg.qk_channels,)
        m[p + "self.value.weight"] = (cfg.v_channels, kv)
        m[p + "self.value.bias"] = (cfg.v_channels,)
        m[p + "self.rotary_emb.freqs"] = (cfg.rope_len,)
        m[p + "output.dense.weight"] = (d, cfg.v_channels)
        m[p + "output.dense.bias"] = (d,)
        for kind, n in (("local_transformer", cfg.n_local), ("temporal_transformer", cfg.n_temporal)):
            for j in range(n):
                q = f"encoder.blocks.{i}.{kind}.{j}."
                norm(q + "attention.self.layernorm1", d)
                for proj, out in (("query", cfg.qk_channels), ("key", cfg.qk_channels), ("value", cfg.v_channels)):
                    m[q + f"attention.self.{proj}.weight"] = (out, d)
                    m[q + f"attention.self.{proj}.bias"] = (out,)
                m[q + "attention.self.rotary_emb.freqs"] = (cfg.rope_len,)
                m[q + "attention.output.dense.weight"] = (cfg.v_channels, cfg.v_channels)
                m[q + "attention.output.dense.bias"] = (cfg.v_channels,)
                norm(q + "layernorm", d)
                m[q + "mlp.gate.weight"] = (cfg.n_experts, d)
                for e in range(cfg.n_experts):
                    m[q + f"mlp.experts.{e}.w1.weight"] = (cfg.moe_hidden, d)
                    m[q + f"mlp.experts.{e}.gate.weight"] = (cfg.moe_hidden, d)
                    m[q + f"mlp.experts.{e}.w2.weight"] = (d, cfg.moe_hidden)
    m["pre_decoder.0.linear.weight"] = (cfg.d_model, cfg.group * d)
    D, inner = cfg.d_model, cfg.n_heads * cfg.d_kv
    m["decoder.decoder.additive_pe.weight"] = (cfg.pe_rows, D)
    for l in range(cfg.n_layers):
        p = f"decoder.decoder.block.{l}.layer."
        m[p + "0.layer_norm.weight"] = (D,)
        for w in "qkv":
            m[p + f"0.SelfAttention.{w}.weight"] = (inner, D)
        m[p + "0.SelfAttention.o.weight"] = (D, inner)
        m[p + "1.layer_norm.weight"] = (D,)
        for w in "qkv":
            m[p + f"1.EncDecAttention.{w}.weight"] = (inner, D)
        m[p + "1.EncDecAttention.o.weight"] = (D, inner)
        m[p + "2.layer_norm.weight"] = (D,)
        m[p + "2.DenseReluDense.wi_0.weight"] = (cfg.d_ff, D)
        m[p + "2.DenseReluDense.wi_1.weight"] = (cfg.d_ff, D)
        m[p + "2.DenseReluDense.wo.weight"] = (D, cfg.d_ff)
    m["decoder.decoder.final_layer_norm.weight"] = (D,)
    m["lm_head.lm_head.weight"] = (cfg.vocab, D)
    m["embed_tokens.weight"] = (cfg.vocab, D)
    return m


def _list_some(items: List[str], limit: int = 12) -> str:
    items = sorted(items)
    head = ", ".join(items[:limit])
    return head + (f", ... and {len(items) - limit} more" if len(items) > limit else "")


def check_state_dict(sd: Dict[str, Tensor], cfg: YourMT3Config, *, source: str = "checkpoint") -> None:
    """Strict key/shape check; raises CheckpointError listing every problem."""
    want = expected_state_dict_shapes(cfg)
    missing = [k for k in want if k not in sd]
    unexpected = [k for k in sd if k not in want]
    wrong = [
        f"{k} {tuple(sd[k].shape)} (expected {want[k]})"
        for k in want
        if k in sd and tuple(sd[k].shape) != want[k]
    ]
    nonfloat = [
        k for k in want
        if k in sd and not k.endswith("num_batches_tracked") and not sd[k].is_floating_point()
    ]
    if missing or unexpected or wrong or nonfloat:
        parts = [f"{source} does not match the YourMT3 (YPTF.MoE+Multi) state_dict layout:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_list_some(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_list_some(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes ({len(wrong)}): {_list_some(wrong)}")
        if nonfloat:
            parts.append(f"non-floating tensors: {_list_some(nonfloat)}")
        raise CheckpointError("\n  ".join(parts))


def _count(sd, pattern: str) -> int:
    rx = re.compile(pattern)
    return len({m.group(1) for k in sd for m in [rx.fullmatch(k)] if m})


def _sub(d: Any, *keys) -> dict:
    for k in keys:
        if not isinstance(d, dict):
            return {}
        d = d.get(k, {})
    return d if isinstance(d, dict) else {}


def _rope_kind(value: Any, what: str) -> str:
    v = str(value).lower()
    if v in ("p", "pixel"):
        return "pixel"
    if v in ("l", "lang"):
        return "lang"
    raise CheckpointError(f"unsupported RoPE type {value!r} for {what} (expected 'pixel' or 'lang').")


def _expected_freqs(kind: str, n: int) -> Tensor:
    dim = 2 * n
    if kind == "pixel":  # linspace(1, max_freq / 2, dim // 2) * pi with max_freq 10
        return torch.linspace(1.0, 5.0, n) * math.pi
    return 1.0 / (10000 ** (torch.arange(0, dim, 2)[:n].float() / dim))


def infer_config(sd: Dict[str, Tensor], hparams: Optional[dict]) -> YourMT3Config:
    """Dimensions from the tensors, hparam-only settings from ``hyper_parameters``
    (spec 1.5/1.6), asserting the settings our modules implement."""
    d0 = YourMT3Config()

    def shp(key, idx, default):
        t = sd.get(key)
        return int(t.shape[idx]) if t is not None and t.dim() > idx else default

    hp = hparams or {}
    audio = _sub(hp, "audio_cfg")
    mcfg = _sub(hp, "model_cfg")
    pcfg = _sub(mcfg, "encoder", "perceiver-tf")
    dcfg = _sub(mcfg, "decoder", "multi-t5")

    def need(cond: bool, what: str):
        if not cond:
            raise CheckpointError(
                f"unsupported YourMT3 variant: {what}. mt3-infer implements the default "
                "'YPTF.MoE+Multi (noPS)' model (spec yourmt3.md 1.5)."
            )

    # Settings that leave no trace in the tensors (spec 1.6): assert them.
    if audio:
        need(audio.get("codec", "spec") == "spec", f"audio_cfg codec {audio.get('codec')!r} (need 'spec')")
        need(int(audio.get("hop_length", 300)) == 300, f"hop_length {audio.get('hop_length')}")
        need(int(audio.get("input_frames", 32767)) == 32767, f"input_frames {audio.get('input_frames')}")
        need(int(audio.get("sample_rate", 16000)) == 16000, f"sample_rate {audio.get('sample_rate')}")
    for key, want in (("encoder_type", "perceiver-tf"), ("decoder_type", "multi-t5")):
        if key in mcfg:
            need(mcfg[key] == want, f"model_cfg {key} {mcfg[key]!r}")
    if "position_encoding_type" in pcfg:
        need(pcfg["position_encoding_type"] == "rope", f"position encoding {pcfg['position_encoding_type']!r}")
    if "ff_layer_type" in pcfg:
        need(pcfg["ff_layer_type"] == "moe", f"encoder feed-forward {pcfg['ff_layer_type']!r}")
    need(bool(pcfg.get("attention_to_channel", True)), "attention_to_channel=False")
    need(not bool(pcfg.get("rope_apply_to_keys", False)), "rope_apply_to_keys=True")
    act = str(pcfg.get("hidden_act", "silu"))
    need(act in ("silu", "gelu", "relu"), f"hidden_act {act!r}")

    rms = "encoder.blocks.0.spectral_cross_attention.self.layernorm1.bias" not in sd
    looks_like_ymt3 = "encoder.blocks.0.spectral_cross_attention.self.layernorm1.weight" in sd
    if looks_like_ymt3 and ("layer_norm_type" in pcfg or hparams is not None):
        hp_rms = pcfg.get("layer_norm_type") == "rms_norm"
        if hp_rms != rms:
            raise CheckpointError(
                "encoder norm type disagrees between hyper_parameters "
                f"(layer_norm_type={pcfg.get('layer_norm_type')!r}) and the tensors "
                f"({'no' if rms else 'has'} layernorm bias); the checkpoint is inconsistent."
            )

    rope_len = shp("encoder.rotary_emb_sca.freqs", 0, d0.rope_len)
    sca_heads = int(pcfg.get("num_cross_attention_heads", 8))
    self_heads = int(pcfg.get("num_self_attention_heads", 8))
    rot_dim = sca_heads // 2 if bool(pcfg.get("rope_partial_pe", True)) else sca_heads
    if hparams is not None:
        need(rot_dim // 2 == rope_len,
             f"stored RoPE freqs of length {rope_len} but hparams imply {rot_dim // 2}")
    kinds = (
        _rope_kind(pcfg.get("rope_type_sca", "pixel"), "SCA"),
        _rope_kind(pcfg.get("rope_type_latent", "pixel"), "latent layers"),
        _rope_kind(pcfg.get("rope_type_temporal", "lang"), "temporal layers"),
    )
    for name, kind in zip(("sca", "latent", "temporal"), kinds):
        t = sd.get(f"encoder.rotary_emb_{name}.freqs")
        if t is not None and t.dim() == 1 and t.numel() == rope_len:
            exp = _expected_freqs(kind, rope_len)
            if not torch.allclose(t.float(), exp, rtol=1e-5, atol=1e-6):
                raise CheckpointError(
                    f"encoder.rotary_emb_{name}.freqs = {t.tolist()} does not match the "
                    f"'{kind}' RoPE frequencies {exp.tolist()}."
                )

    num_latents = shp("encoder.latent_array.latents", 0, d0.num_latents)
    d_latent = shp("encoder.latent_array.latents", 1, d0.d_latent)
    conv_ch = shp("pre_encoder.0.blocks.0.conv1.weight", 0, d0.conv_ch)
    n_pre = _count(sd, r"pre_encoder\.0\.blocks\.(\d+)\.conv1\.weight") or d0.n_pre_blocks
    kv_dim = shp("encoder.blocks.0.spectral_cross_attention.self.key.weight", 1, d0.kv_dim)
    qk = shp("encoder.blocks.0.spectral_cross_attention.self.query.weight", 0, d0.qk_channels)
    vch = shp("encoder.blocks.0.spectral_cross_attention.self.value.weight", 0, d0.v_channels)
    n_blocks = _count(sd, r"encoder\.blocks\.(\d+)\.spectral_cross_attention\.self\.query\.weight") or d0.n_blocks
    n_local = _count(sd, r"encoder\.blocks\.0\.local_transformer\.(\d+)\.attention\.self\.query\.weight") or d0.n_local
    n_temp = _count(sd, r"encoder\.blocks\.0\.temporal_transformer\.(\d+)\.attention\.self\.query\.weight") or d0.n_temporal
    n_exp = _count(sd, r"encoder\.blocks\.0\.local_transformer\.0\.mlp\.experts\.(\d+)\.w1\.weight") or d0.n_experts
    moe_hidden = shp("encoder.blocks.0.local_transformer.0.mlp.experts.0.w1.weight", 0, d0.moe_hidden)
    topk = int(pcfg.get("moe_topk", 2))
    need(1 <= topk <= n_exp, f"moe_topk {topk} with {n_exp} experts")
    need(qk % sca_heads == 0 and qk % self_heads == 0 and vch % sca_heads == 0,
         f"attention widths {qk}/{vch} not divisible by the head counts {sca_heads}/{self_heads}")
    need(2 * rope_len <= qk // max(sca_heads, self_heads),
         f"rotary width {2 * rope_len} larger than the head dimension")
    need(vch == d_latent, f"v_channels {vch} != d_latents {d_latent}")

    channels = int(dcfg.get("num_channels", mcfg.get("num_channels", 13)))
    d_model = shp("embed_tokens.weight", 1, d0.d_model)
    vocab = shp("embed_tokens.weight", 0, d0.vocab)
    inner = shp("decoder.decoder.block.0.layer.0.SelfAttention.q.weight", 0, d0.n_heads * d0.d_kv)
    n_heads = int(dcfg.get("num_heads", max(1, inner // 64)))
    need(n_heads > 0 and inner % n_heads == 0, f"decoder inner width {inner} vs {n_heads} heads")
    need(channels > 0 and num_latents % channels == 0,
         f"{num_latents} latents cannot be split into {channels} channels")
    n_layers = _count(sd, r"decoder\.decoder\.block\.(\d+)\.layer\.0\.SelfAttention\.q\.weight") or d0.n_layers
    d_ff = shp("decoder.decoder.block.0.layer.2.DenseReluDense.wi_0.weight", 0, d0.d_ff)
    pe_rows = shp("decoder.decoder.additive_pe.weight", 0, d0.pe_rows)
    need(pe_rows >= MAX_NEW_TOKENS, f"positional table of {pe_rows} rows < {MAX_NEW_TOKENS}")
    frames = int(mcfg.get("feat_length", 0)) if str(mcfg.get("feat_length", "")).isdigit() else 0
    n_fft = int(audio.get("n_fft", 2048)) if audio else shp("spectrogram.stft.window", 0, 2048)
    return YourMT3Config(
        n_pre_blocks=n_pre, conv_ch=conv_ch, feature_bins=kv_dim * (2 ** n_pre),
        frames=frames or 1 + 32767 // 300,
        num_latents=num_latents, d_latent=d_latent, kv_dim=kv_dim, qk_channels=qk, v_channels=vch,
        sca_heads=sca_heads, self_heads=self_heads, n_blocks=n_blocks, n_local=n_local,
        n_temporal=n_temp, n_experts=n_exp, moe_hidden=moe_hidden, moe_topk=topk, hidden_act=act,
        rms_norm=rms, enc_eps=float(pcfg.get("layer_norm_eps", 1e-5)), rope_len=rope_len,
        rope_type_sca=kinds[0], rope_type_latent=kinds[1], rope_type_temporal=kinds[2],
        sca_query_residual=bool(pcfg.get("sca_use_query_residual", True)),
        query_residual=bool(pcfg.get("use_query_residual", True)),
        channels=channels, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        d_kv=inner // n_heads, d_ff=d_ff, vocab=vocab, pe_rows=pe_rows,
        tie_scale=bool(mcfg.get("tie_word_embeddings", True)), n_fft=n_fft,
    )


# =============================================================================
# Modules (TorchScript-friendly)
# =============================================================================


class _Norm(nn.Module):
    """Encoder pre-norm: T5-style RMSNorm (fp32 statistics) or LayerNorm."""

    rms: bool
    eps: float

    def __init__(self, dim: int, rms: bool, eps: float):
        super().__init__()
        self.rms = rms
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        if self.rms:
            var = x.float().pow(2).mean(-1, keepdim=True)
            y = x * torch.rsqrt(var + self.eps)
            return self.weight * y.to(self.weight.dtype)
        return F.layer_norm(x, [x.size(-1)], self.weight, self.bias, self.eps)


def _rms(x: Tensor, w: Tensor, eps: float) -> Tensor:
    var = x.float().pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps)).to(w.dtype)


def _rope_table(freq_list: List[float], kind: str, n: int, device: torch.device) -> Tuple[Tensor, Tensor]:
    """cos/sin of the interleaved-pair angles, (n, 2*len(freqs)), angles in fp32.
    The frequencies are module constants (fp32 values), untouched by dtype casts."""
    freqs = torch.tensor(freq_list, dtype=torch.float32, device=device)
    if kind == "pixel":
        pos = torch.linspace(-1.0, 1.0, n, dtype=torch.float32, device=device)
    else:
        pos = torch.arange(n, dtype=torch.float32, device=device)
    ang = pos.unsqueeze(1) * freqs.unsqueeze(0)
    ang = torch.repeat_interleave(ang, 2, dim=1)
    return ang.cos(), ang.sin()


def _apply_rope(q: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channels [0, rot) of every head of q (..., L, dh); the rest pass."""
    rot = cos.size(1)
    head = q[..., :rot]
    rotated = torch.flatten(torch.stack((-head[..., 1::2], head[..., 0::2]), dim=-1), -2)
    c = cos.to(q.dtype)
    s = sin.to(q.dtype)
    return torch.cat((head * c + rotated * s, q[..., rot:]), dim=-1)


class _Attention(nn.Module):
    """Perceiver attention: norms, q/k/v with bias, RoPE on q, softmax(qk^T/sqrt(dh)), dense."""

    heads: int
    cross: bool
    residual: bool

    def __init__(self, q_dim: int, kv_dim: int, qk: int, v: int, out: int, heads: int,
                 cross: bool, residual: bool, rms: bool, eps: float):
        super().__init__()
        self.heads = heads
        self.cross = cross
        self.residual = residual
        self.norm1 = _Norm(q_dim, rms, eps)
        self.norm2 = _Norm(kv_dim, rms, eps)  # unused (identity) for self-attention
        self.query = nn.Linear(q_dim, qk)
        self.key = nn.Linear(kv_dim, qk)
        self.value = nn.Linear(kv_dim, v)
        self.dense = nn.Linear(v, out)

    def _split(self, x: Tensor) -> Tensor:
        return x.view(x.size(0), x.size(1), self.heads, x.size(2) // self.heads).transpose(1, 2)

    def forward(self, z: Tensor, kv: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        h = self.norm1(z)
        src = self.norm2(kv) if self.cross else h
        q = _apply_rope(self._split(self.query(h)), cos, sin)
        k = self._split(self.key(src))
        v = self._split(self.value(src))
        ctx = F.scaled_dot_product_attention(q, k, v)
        out = self.dense(ctx.transpose(1, 2).reshape(ctx.size(0), ctx.size(2), -1))
        if self.residual:
            out = out + z
        return out


class _MoE(nn.Module):
    """Top-k mixture of gated experts with vectorised dispatch (no loop over experts).

    The m*k (token, expert) assignments are sorted by expert (stable) and laid
    out in tiles of ``b`` rows, each tile holding rows of a single expert (an
    expert's last tile is zero-padded).  All tiles then run as two batched
    matmuls against the tile's expert weights, and the results are scattered
    back and combined per token with the renormalised top-k weights.  The tile
    size keeps the padding below ~25% whatever the expert loads are; there is
    one host synchronisation per call (the tile count).  Exact: every output is
    the k-term sum of the same products the reference forms (for k = 2 the sum
    is order-independent).
    """

    topk: int
    n_experts: int
    act: str

    def __init__(self, d: int, hidden: int, n_experts: int, topk: int, act: str):
        super().__init__()
        self.topk = topk
        self.n_experts = n_experts
        self.act = act
        self.router = nn.Parameter(torch.zeros(n_experts, d))
        self.w_in = nn.Parameter(torch.zeros(n_experts, d, 2 * hidden))  # [w1 | gate]^T
        self.w_out = nn.Parameter(torch.zeros(n_experts, hidden, d))  # w2^T

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        d = shape[-1]
        xf = x.reshape(-1, d)
        m = xf.size(0)
        k = self.topk
        e_n = self.n_experts
        total = m * k
        probs = torch.softmax(F.linear(xf, self.router).float(), dim=-1)
        top_p, top_e = torch.topk(probs, k, dim=-1)
        top_p = (top_p / top_p.sum(dim=-1, keepdim=True)).to(x.dtype)
        flat_e = top_e.reshape(-1)
        b = (total + 4 * e_n - 1) // (4 * e_n)
        b = max(16, (b + 15) // 16 * 16)
        counts = torch.bincount(flat_e, minlength=e_n)
        tiles = torch.div(counts + (b - 1), b, rounding_mode="floor")
        n_tiles = int(tiles.sum().item())
        first_tile = torch.cumsum(tiles, 0) - tiles
        order = torch.argsort(flat_e, stable=True)
        sorted_e = flat_e.index_select(0, order)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(total, device=x.device) - starts.index_select(0, sorted_e)
        slot = first_tile.index_select(0, sorted_e) * b + rank
        tile_expert = torch.repeat_interleave(torch.arange(e_n, device=x.device), tiles,
                                              output_size=n_tiles)
        token = torch.div(order, k, rounding_mode="floor")
        buf = xf.new_zeros(n_tiles * b, d)
        buf.index_copy_(0, slot, xf.index_select(0, token))
        hid = torch.bmm(buf.view(n_tiles, b, d), self.w_in.index_select(0, tile_expert))
        a, g = hid.chunk(2, dim=-1)
        if self.act == "silu":
            a = F.silu(a)
        elif self.act == "gelu":
            a = F.gelu(a)
        else:
            a = F.relu(a)
        y = torch.bmm(a * g, self.w_out.index_select(0, tile_expert)).view(n_tiles * b, d)
        per_assign = xf.new_empty(total, d)
        per_assign.index_copy_(0, order, y.index_select(0, slot))
        out = (per_assign.view(m, k, d) * top_p.unsqueeze(-1)).sum(dim=1)
        return out.view(shape)


class _Layer(nn.Module):
    def __init__(self, cfg: YourMT3Config, heads: int):
        super().__init__()
        d = cfg.d_latent
        self.attention = _Attention(d, d, cfg.qk_channels, cfg.v_channels, cfg.v_channels, heads,
                                    False, cfg.query_residual, cfg.rms_norm, cfg.enc_eps)
        self.norm = _Norm(d, cfg.rms_norm, cfg.enc_eps)
        self.moe = _MoE(d, cfg.moe_hidden, cfg.n_experts, cfg.moe_topk, cfg.hidden_act)

    def forward(self, z: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        u = self.attention(z, z, cos, sin)
        return u + self.moe(self.norm(u))


class _Block(nn.Module):
    def __init__(self, cfg: YourMT3Config):
        super().__init__()
        self.sca = _Attention(cfg.d_latent, cfg.kv_dim, cfg.qk_channels, cfg.v_channels,
                              cfg.d_latent, cfg.sca_heads, True, cfg.sca_query_residual,
                              cfg.rms_norm, cfg.enc_eps)
        self.local = nn.ModuleList([_Layer(cfg, cfg.self_heads) for _ in range(cfg.n_local)])
        self.temporal = nn.ModuleList([_Layer(cfg, cfg.self_heads) for _ in range(cfg.n_temporal)])

    def forward(self, z: Tensor, kv: Tensor, b: int, t: int, tables: List[Tensor]) -> Tensor:
        kk, d = z.size(1), z.size(2)
        z = self.sca(z, kv, tables[0], tables[1])
        for layer in self.local:
            z = layer(z, tables[2], tables[3])
        z = z.view(b, t, kk, d).transpose(1, 2).reshape(b * kk, t, d)
        for layer in self.temporal:
            z = layer(z, tables[4], tables[5])
        return z.view(b, kk, t, d).transpose(1, 2).reshape(b * t, kk, d)


class _ResBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN (+ shortcut) -> ReLU -> avg-pool (1, 2); BN folded."""

    has_shortcut: bool

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.has_shortcut = cin != cout
        self.w1 = nn.Parameter(torch.zeros(cout, cin, 3, 3))
        self.b1 = nn.Parameter(torch.zeros(cout))
        self.w2 = nn.Parameter(torch.zeros(cout, cout, 3, 3))
        self.b2 = nn.Parameter(torch.zeros(cout))
        self.ws = nn.Parameter(torch.zeros(cout, cin, 1, 1) if self.has_shortcut else torch.zeros(0))
        self.bs = nn.Parameter(torch.zeros(cout) if self.has_shortcut else torch.zeros(0))

    def forward(self, x: Tensor) -> Tensor:
        # channels-last (NHWC) activations: oneDNN's direct convolutions,
        # 1.2x the NCHW rate in fp32 here and 4-5x in bf16 (AMX); the
        # conversions are no-ops once the input is in that layout
        x = x.contiguous(memory_format=torch.channels_last)
        a = F.relu(F.conv2d(x, self.w1, self.b1, padding=1)).contiguous(memory_format=torch.channels_last)
        y = F.conv2d(a, self.w2, self.b2, padding=1)
        if self.has_shortcut:
            y = y + F.conv2d(x, self.ws, self.bs)
        else:
            y = y + x
        return F.avg_pool2d(F.relu(y), kernel_size=[1, 2], stride=[1, 2])


class YourMT3Net(nn.Module):
    """The whole network with the engine's TorchScript methods.

    encode(features[B,T,F]) -> (cross_k, cross_v) [L, B*C, H, T, Dh], row b*C + c
    step(tokens[N], pos, self_k, self_v, cross_k, cross_v) -> next ids [N]
    step_logits(...) -> logits [N, V]
    step_groups(tokens[N], sizes, positions, self_k, ...) -> next ids [N] (continuous batching)
    encoder_hidden(features) -> Perceiver-TF output (B, T, K, D)
    memory(features) -> bridge output (B, C, T, d_model)
    """

    channels: int
    n_layers: int
    n_heads: int
    d_kv: int
    dec_eps: float
    head_scale: float
    rope_kinds: List[str]
    rope_freqs: List[List[float]]
    qpacked: List[torch.classes.quantized.LinearPackedParamsBase]

    def __init__(self, cfg: YourMT3Config):
        super().__init__()
        self.qpacked = []  # int8 decoder weights, filled by prepack_int8() (dtype "int8")
        self.channels = cfg.channels
        self.n_layers = cfg.n_layers
        self.n_heads = cfg.n_heads
        self.d_kv = cfg.d_kv
        self.dec_eps = cfg.dec_eps
        self.head_scale = cfg.d_model ** -0.5 if cfg.tie_scale else 1.0
        self.rope_kinds = [cfg.rope_type_sca, cfg.rope_type_latent, cfg.rope_type_temporal]
        self.pre = nn.ModuleList(
            [_ResBlock(1 if i == 0 else cfg.conv_ch, cfg.conv_ch) for i in range(cfg.n_pre_blocks)]
        )
        self.latents = nn.Parameter(torch.zeros(cfg.num_latents, cfg.d_latent))
        self.rope_freqs = [[0.0] * cfg.rope_len for _ in range(3)]  # sca, latent, temporal
        self.blocks = nn.ModuleList([_Block(cfg) for _ in range(cfg.n_blocks)])
        self.bridge = nn.Parameter(torch.zeros(cfg.d_model, cfg.group * cfg.d_latent))
        D, inner, L = cfg.d_model, cfg.n_heads * cfg.d_kv, cfg.n_layers
        self.embed = nn.Parameter(torch.zeros(cfg.vocab, D))
        self.register_buffer("pe", torch.zeros(cfg.max_len, D))
        self.ln_self = nn.Parameter(torch.ones(L, D))
        self.w_qkv = nn.Parameter(torch.zeros(L, 3 * inner, D))
        self.w_o = nn.Parameter(torch.zeros(L, D, inner))
        self.ln_cross = nn.Parameter(torch.ones(L, D))
        self.w_cq = nn.Parameter(torch.zeros(L, inner, D))
        self.w_ckv = nn.Parameter(torch.zeros(2 * L * inner, D))  # all layers' cross k then v
        self.w_co = nn.Parameter(torch.zeros(L, D, inner))
        self.ln_ff = nn.Parameter(torch.ones(L, D))
        self.w_i = nn.Parameter(torch.zeros(L, 2 * cfg.d_ff, D))  # [wi_0 | wi_1]
        self.w_fo = nn.Parameter(torch.zeros(L, D, cfg.d_ff))
        self.ln_final = nn.Parameter(torch.ones(D))
        self.lm_head = nn.Parameter(torch.zeros(cfg.vocab, D))

    # ---------------------------------------------------------------- encoder
    @torch.jit.export
    def encoder_hidden(self, features: Tensor) -> Tensor:
        if features.dim() != 3:
            raise RuntimeError("features must be (B, frames, bins)")
        b, t, _ = features.shape
        x = features.unsqueeze(1)
        for blk in self.pre:
            x = blk(x)
        cc, fp = x.size(1), x.size(3)
        kv = x.permute(0, 2, 1, 3).reshape(b * t, cc, fp)  # tokens = conv channels
        kk, d = self.latents.size(0), self.latents.size(1)
        z = self.latents.unsqueeze(0).expand(b * t, kk, d)
        dev = features.device
        c0, s0 = _rope_table(self.rope_freqs[0], self.rope_kinds[0], kk, dev)
        c1, s1 = _rope_table(self.rope_freqs[1], self.rope_kinds[1], kk, dev)
        c2, s2 = _rope_table(self.rope_freqs[2], self.rope_kinds[2], t, dev)
        tables = [c0, s0, c1, s1, c2, s2]
        for blk in self.blocks:
            z = blk(z, kv, b, t, tables)
        return z.view(b, t, kk, d)

    @torch.jit.export
    def memory(self, features: Tensor) -> Tensor:
        h = self.encoder_hidden(features)
        b, t, kk, d = h.shape
        h = h.reshape(b, t, self.channels, (kk // self.channels) * d).transpose(1, 2)
        return F.linear(h, self.bridge)

    @torch.jit.export
    def encode(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        mem = self.memory(features)
        b, c, t, dm = mem.shape
        n = b * c
        kv = F.linear(mem.reshape(n, t, dm), self.w_ckv)
        kv = kv.view(n, t, 2, self.n_layers, self.n_heads, self.d_kv).permute(2, 3, 0, 4, 1, 5)
        kv = kv.contiguous()
        return kv[0], kv[1]

    def forward(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        return self.encode(features)

    # ---------------------------------------------------------------- decoder
    def _lin(self, x: Tensor, w: Tensor, idx: int) -> Tensor:
        """x @ w.T for a decoder step, through the int8 copy when there is one."""
        if len(self.qpacked) > 0:
            return linear_int8(x, self.qpacked[idx])
        return F.linear(x, w)

    @torch.jit.export
    def prepack_int8(self) -> int:
        """CPU only, opt-in (dtype "int8"), called once by the engine right
        after loading: int8 copies of the decoder step's linear weights
        (``_groups.quantize_linear``; index 6*l + 0..5: self q/k/v, self out,
        cross q, cross out, gated input, output; then the LM head).  The
        encoder and the cross K/V stay fp32.  Returns the number quantized."""
        out: List[torch.classes.quantized.LinearPackedParamsBase] = []
        for l in range(self.n_layers):
            for w in (self.w_qkv[l], self.w_o[l], self.w_cq[l], self.w_co[l], self.w_i[l], self.w_fo[l]):
                out.append(quantize_linear(w))
        out.append(quantize_linear(self.lm_head))
        self.qpacked = out
        return len(out)

    def _decoder_hidden(self, tokens: Tensor, sizes: List[int], poss: List[int], self_k: Tensor,
                        self_v: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Cached decoder step for N rows in contiguous groups (group g: the next
        sizes[g] rows, all at position poss[g]); self-attention of each group over
        exactly its positions 0..poss[g] in one ``attend_rows`` call per layer
        (each row computed alone), everything else on all rows at once."""
        n = tokens.size(0)
        check_groups(n, self_k.size(3), self.pe.size(0), sizes, poss)
        h_, dh = self.n_heads, self.d_kv
        x = F.embedding(tokens, self.embed) + group_positions(self.pe, sizes, poss)
        lens = [p + 1 for p in poss]  # group g attends to its positions 0..poss[g]
        t_enc = cross_k.size(3)
        for l in range(self.n_layers):
            h = _rms(x, self.ln_self[l], self.dec_eps)
            q, k, v = self._lin(h, self.w_qkv[l], 6 * l).view(n, 3, h_, dh).unbind(1)
            r0 = 0
            for gi in range(len(sizes)):  # this position's keys/values into each group's cache rows
                sz = sizes[gi]
                self_k[l].narrow(0, r0, sz).select(2, poss[gi]).copy_(k.narrow(0, r0, sz))
                self_v[l].narrow(0, r0, sz).select(2, poss[gi]).copy_(v.narrow(0, r0, sz))
                r0 += sz
            ctx = attend_rows(q, self_k[l], self_v[l], sizes, lens)
            x = x + self._lin(ctx, self.w_o[l], 6 * l + 1)
            h = _rms(x, self.ln_cross[l], self.dec_eps)
            q = self._lin(h, self.w_cq[l], 6 * l + 2).view(n, h_, dh)
            ctx = attend_rows(q, cross_k[l], cross_v[l], [n], [t_enc])
            x = x + self._lin(ctx, self.w_co[l], 6 * l + 3)
            h = _rms(x, self.ln_ff[l], self.dec_eps)
            a, g = self._lin(h, self.w_i[l], 6 * l + 4).chunk(2, dim=-1)
            x = x + self._lin(F.gelu(a, approximate="tanh") * g, self.w_fo[l], 6 * l + 5)
        return _rms(x, self.ln_final, self.dec_eps)

    @torch.jit.export
    def step_logits(self, tokens: Tensor, pos: int, self_k: Tensor, self_v: Tensor,
                    cross_k: Tensor, cross_v: Tensor) -> Tensor:
        h = self._decoder_hidden(tokens, [tokens.size(0)], [pos], self_k, self_v, cross_k, cross_v)
        return self._lin(h * self.head_scale, self.lm_head, 6 * self.n_layers)

    @torch.jit.export
    def step(self, tokens: Tensor, pos: int, self_k: Tensor, self_v: Tensor,
             cross_k: Tensor, cross_v: Tensor) -> Tensor:
        logits = self.step_logits(tokens, pos, self_k, self_v, cross_k, cross_v)
        return torch.argmax(logits, dim=-1)

    @torch.jit.export
    def step_groups(self, tokens: Tensor, sizes: List[int], poss: List[int], self_k: Tensor,
                    self_v: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Greedy next ids [N] for rows in groups at different positions
        (continuous batching); see _decoder_hidden."""
        h = self._decoder_hidden(tokens, sizes, poss, self_k, self_v, cross_k, cross_v)
        return torch.argmax(self._lin(h * self.head_scale, self.lm_head, 6 * self.n_layers), dim=-1)

    @torch.jit.ignore
    def decode_full(self, tokens: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Uncached decoder over whole rows (N, S) at positions 0..S-1 (causal): logits (N, S, V).
        The plain-PyTorch baseline: recomputes every position each time it is called."""
        n, s = tokens.shape
        h_, dh = self.n_heads, self.d_kv
        x = F.embedding(tokens, self.embed) + self.pe[:s]
        mask = torch.full((s, s), float("-inf"), device=tokens.device).triu(1)
        for l in range(self.n_layers):
            h = _rms(x, self.ln_self[l], self.dec_eps)
            q, k, v = F.linear(h, self.w_qkv[l]).view(n, s, 3, h_, dh).permute(2, 0, 3, 1, 4).unbind(0)
            p = torch.softmax((q @ k.transpose(-1, -2)).float() + mask, dim=-1).to(v.dtype)
            x = x + F.linear((p @ v).transpose(1, 2).reshape(n, s, h_ * dh), self.w_o[l])
            h = _rms(x, self.ln_cross[l], self.dec_eps)
            q = F.linear(h, self.w_cq[l]).view(n, s, h_, dh).transpose(1, 2)
            p = torch.softmax((q @ cross_k[l].transpose(-1, -2)).float(), dim=-1).to(v.dtype)
            x = x + F.linear((p @ cross_v[l]).transpose(1, 2).reshape(n, s, h_ * dh), self.w_co[l])
            h = _rms(x, self.ln_ff[l], self.dec_eps)
            a, g = F.linear(h, self.w_i[l]).chunk(2, dim=-1)
            x = x + F.linear(F.gelu(a, approximate="tanh") * g, self.w_fo[l])
        return F.linear(_rms(x, self.ln_final, self.dec_eps) * self.head_scale, self.lm_head)

    # ------------------------------------------------------------- weights
    @torch.no_grad()
    def load_upstream(self, sd: Dict[str, Tensor], cfg: YourMT3Config) -> None:
        """Fill the parameters from an upstream state_dict (already checked)."""

        def g(key: str) -> Tensor:
            return sd[key].detach().to(torch.float32)

        for i, blk in enumerate(self.pre):
            p = f"pre_encoder.0.blocks.{i}."
            for conv, bn, w, b in (("conv1", "bn1", blk.w1, blk.b1), ("conv2", "bn2", blk.w2, blk.b2)):
                wt = sd[p + conv + ".weight"].double()
                scale = sd[p + bn + ".weight"].double() / torch.sqrt(sd[p + bn + ".running_var"].double() + 1e-5)
                w.copy_((wt * scale.view(-1, 1, 1, 1)).float())
                b.copy_((sd[p + bn + ".bias"].double() - sd[p + bn + ".running_mean"].double() * scale).float())
            if blk.has_shortcut:
                blk.ws.copy_(g(p + "shortcut.weight"))
                blk.bs.copy_(g(p + "shortcut.bias"))
        self.latents.copy_(g("encoder.latent_array.latents"))
        self.rope_freqs = [g(f"encoder.rotary_emb_{name}.freqs").tolist()
                           for name in ("sca", "latent", "temporal")]

        def norm(mod: _Norm, key: str):
            mod.weight.copy_(g(key + ".weight"))
            if not cfg.rms_norm:
                mod.bias.copy_(g(key + ".bias"))

        def attn(mod: _Attention, p: str):
            norm(mod.norm1, p + "self.layernorm1")
            if mod.cross:
                norm(mod.norm2, p + "self.layernorm2")
            for lin, name in ((mod.query, "query"), (mod.key, "key"), (mod.value, "value")):
                lin.weight.copy_(g(p + f"self.{name}.weight"))
                lin.bias.copy_(g(p + f"self.{name}.bias"))
            mod.dense.weight.copy_(g(p + "output.dense.weight"))
            mod.dense.bias.copy_(g(p + "output.dense.bias"))

        for i, blk in enumerate(self.blocks):
            attn(blk.sca, f"encoder.blocks.{i}.spectral_cross_attention.")
            for kind, layers in (("local_transformer", blk.local), ("temporal_transformer", blk.temporal)):
                for j, layer in enumerate(layers):
                    p = f"encoder.blocks.{i}.{kind}.{j}."
                    attn(layer.attention, p + "attention.")
                    norm(layer.norm, p + "layernorm")
                    layer.moe.router.copy_(g(p + "mlp.gate.weight"))
                    for e in range(cfg.n_experts):
                        q = p + f"mlp.experts.{e}."
                        layer.moe.w_in[e].copy_(torch.cat([g(q + "w1.weight"), g(q + "gate.weight")], 0).t())
                        layer.moe.w_out[e].copy_(g(q + "w2.weight").t())
        self.bridge.copy_(g("pre_decoder.0.linear.weight"))
        self.embed.copy_(g("embed_tokens.weight"))
        self.pe.copy_(g("decoder.decoder.additive_pe.weight")[: self.pe.size(0)])
        ks, vs = [], []
        for l in range(cfg.n_layers):
            p = f"decoder.decoder.block.{l}.layer."
            self.ln_self[l].copy_(g(p + "0.layer_norm.weight"))
            self.w_qkv[l].copy_(torch.cat([g(p + f"0.SelfAttention.{w}.weight") for w in "qkv"], 0))
            self.w_o[l].copy_(g(p + "0.SelfAttention.o.weight"))
            self.ln_cross[l].copy_(g(p + "1.layer_norm.weight"))
            self.w_cq[l].copy_(g(p + "1.EncDecAttention.q.weight"))
            ks.append(g(p + "1.EncDecAttention.k.weight"))
            vs.append(g(p + "1.EncDecAttention.v.weight"))
            self.w_co[l].copy_(g(p + "1.EncDecAttention.o.weight"))
            self.ln_ff[l].copy_(g(p + "2.layer_norm.weight"))
            self.w_i[l].copy_(torch.cat([g(p + "2.DenseReluDense.wi_0.weight"),
                                         g(p + "2.DenseReluDense.wi_1.weight")], 0))
            self.w_fo[l].copy_(g(p + "2.DenseReluDense.wo.weight"))
        self.w_ckv.copy_(torch.cat(ks + vs, 0))
        self.ln_final.copy_(g("decoder.decoder.final_layer_norm.weight"))
        self.lm_head.copy_(g("lm_head.lm_head.weight"))


def _check_shared_freqs(sd: Dict[str, Tensor], cfg: YourMT3Config) -> None:
    pairs = [("sca", f"encoder.blocks.{i}.spectral_cross_attention.self.rotary_emb.freqs")
             for i in range(cfg.n_blocks)]
    for i in range(cfg.n_blocks):
        for kind, name, n in (("local_transformer", "latent", cfg.n_local),
                              ("temporal_transformer", "temporal", cfg.n_temporal)):
            pairs += [(name, f"encoder.blocks.{i}.{kind}.{j}.attention.self.rotary_emb.freqs") for j in range(n)]
    bad = [k for name, k in pairs if not torch.equal(sd[k], sd[f"encoder.rotary_emb_{name}.freqs"])]
    if bad:
        raise CheckpointError(f"rotary frequency copies differ from the shared encoder tables: {_list_some(bad)}")


def build_model(checkpoint) -> Tuple[YourMT3Net, YourMT3Config]:
    """Load a checkpoint safely and strictly into an eval-mode YourMT3Net (fp32, CPU)."""
    sd, hparams = load_checkpoint(checkpoint)
    return build_model_from_state_dict(sd, hparams, source=os.fspath(checkpoint))


def build_model_from_state_dict(sd: Dict[str, Tensor], hparams: Optional[dict],
                                source: str = "state_dict") -> Tuple[YourMT3Net, YourMT3Config]:
    sd = _normalise_keys(sd)
    cfg = infer_config(sd, hparams)
    check_state_dict(sd, cfg, source=source)
    _check_shared_freqs(sd, cfg)
    net = YourMT3Net(cfg)
    net.load_upstream(sd, cfg)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net, cfg


# =============================================================================
# Export
# =============================================================================


def export_meta(cfg: YourMT3Config, source_sha256: str = "") -> Dict[str, Any]:
    """The validated mt3_infer.json of the engine contract (format_version 1)."""
    return _common.build_meta(
        family=FAMILY,
        frames=cfg.frames,
        feature_bins=cfg.feature_bins,
        channels=cfg.channels,
        n_layers=cfg.n_layers,
        n_heads=cfg.n_heads,
        d_kv=cfg.d_kv,
        memory_len=cfg.frames,
        max_len=cfg.max_len,
        vocab_size=cfg.vocab,
        max_new_tokens=MAX_NEW_TOKENS,
        check_first_eos=False,
        source_sha256=source_sha256,
        start_id=START_ID,
        eos_id=EOS_ID,
        pad_id=PAD_ID,
        model="yptf_moe_nops",
        yourmt3_exporter=EXPORTER_VERSION,
        encoder_norm="rms_norm" if cfg.rms_norm else "layer_norm",
        config=asdict(cfg),
    )


def script_model(net: YourMT3Net) -> torch.jit.ScriptModule:
    require_ops()
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(net.eval())


def export_checkpoint(checkpoint, out, *, sha256: Optional[str] = None) -> Dict[str, Any]:
    """Export a YourMT3 ``last.ckpt`` to a TorchScript artifact at ``out``.

    The checkpoint is read without executing pickled code and checked strictly
    (CheckpointError on any problem).  The artifact is written atomically and
    carries ``mt3_infer.json``; the metadata dict is returned.  ``sha256`` may
    pass a checksum already computed by the caller.
    """
    checkpoint = os.fspath(checkpoint)
    net, cfg = build_model(checkpoint)
    st = os.stat(checkpoint)
    meta = export_meta(cfg, sha256 or _common.sha256_file(checkpoint))
    # as export_mt3: lets a cache check skip re-hashing an unchanged source
    meta["source_size"] = int(st.st_size)
    meta["source_mtime_ns"] = int(st.st_mtime_ns)
    scripted = script_model(net)
    meta["encoder_kib_per_segment"] = _common.encoder_kib_per_segment(scripted, cfg.frames, cfg.feature_bins)
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        _common.save_scripted(scripted, os.fspath(out), meta)
    return meta


# =============================================================================
# Python greedy loops (tests, benchmark baseline; the C loop does this in production)
# =============================================================================


@torch.no_grad()
def greedy_decode(model, features: Tensor, max_new_tokens: int = MAX_NEW_TOKENS,
                  channels: int = 13, check_first_eos: bool = False) -> Tensor:
    """Cached greedy decode with the spec's stopping rule (section 5).

    ``model`` is a YourMT3Net or its scripted form.  Returns int64 (B, C, L):
    column 0 is the first generated token; PAD after a row's EOS; L = 1 +
    iterations run (<= max_new_tokens).  Finished rows leave the batch (exact:
    rows are independent).  The first token is never tested for EOS unless
    ``check_first_eos``.
    """
    ck, cv = model.encode(features)
    L, n, H, S, Dh = ck.shape
    b = features.size(0)
    sk = ck.new_zeros(L, n, H, max_new_tokens, Dh)
    sv = ck.new_zeros(L, n, H, max_new_tokens, Dh)
    out = torch.full((n, max_new_tokens), PAD_ID, dtype=torch.long)
    rows = torch.arange(n)
    tok = torch.full((n,), START_ID, dtype=torch.long, device=ck.device)
    length = max_new_tokens
    for pos in range(max_new_tokens):
        tok = model.step(tok, pos, sk, sv, ck, cv)
        out[rows, pos] = tok.cpu()
        if pos == 0 and not check_first_eos:
            continue
        keep = tok != EOS_ID
        if not bool(keep.all()):
            if not bool(keep.any()):
                length = pos + 1
                break
            idx = keep.nonzero().squeeze(1)
            rows = rows[idx.cpu()]
            tok = tok.index_select(0, idx)
            sk, sv = sk.index_select(1, idx), sv.index_select(1, idx)
            ck, cv = ck.index_select(1, idx), cv.index_select(1, idx)
    return out[:, :length].reshape(b, n // b, length)


@torch.no_grad()
def greedy_decode_uncached(net: YourMT3Net, features: Tensor,
                           max_new_tokens: int = MAX_NEW_TOKENS) -> Tensor:
    """Baseline: the same modules, no KV cache, every step recomputes all positions
    of all rows (like upstream, which also keeps finished rows)."""
    ck, cv = net.encode(features)
    n = ck.size(1)
    b = features.size(0)
    seq = torch.full((n, 1), START_ID, dtype=torch.long)
    unfinished = torch.ones(n, dtype=torch.bool)
    outs = []
    for i in range(max_new_tokens):
        y = net.decode_full(seq, ck, cv)[:, -1].argmax(-1)
        rec = torch.where(unfinished, y, torch.full_like(y, PAD_ID))
        outs.append(rec)
        seq = torch.cat([seq, y.unsqueeze(1)], 1)
        if i > 0:
            unfinished &= rec != EOS_ID
            if not bool(unfinished.any()):
                break
    return torch.stack(outs, 1).reshape(b, n // b, len(outs))
