"""The MT3 network (MR-MT3 and MT3-PyTorch share it and the weight file
``mt3.pth``), its strict loader and its TorchScript export.

Two module trees live here:

* :class:`MT3` — the reference network, written from the spec
  (``specs/mt3-family.md`` §3) with the checkpoint's attribute names so that
  ``load_state_dict(strict=True)`` works on ``mt3.pth`` as is (193 keys,
  including the two aliases).  Plain eager PyTorch; :meth:`MT3.greedy` is
  the anchor's generation loop (no cache: the whole decoder, cross-attention
  projections included, re-runs over the full prefix for every token).
* :class:`MT3Runtime` — the same weights rearranged for inference and
  compiled with ``torch.jit.script``: fused Q/K/V and gate projections,
  cross-attention K/V computed once per segment, and a decoder step that
  writes a preallocated self-attention cache in place.  It implements the
  artifact contract of ``csrc/engine/engine.h`` (format_version 1).

One exported file serves both MT3 adapters: the encoder accepts any number
of frames T with 1 <= T <= ``frames`` (257), so MR-MT3 feeds 256 and
MT3-PyTorch 257 (the engine's ``encode_frames``).  ``meta["min_frames"]``
records the lower bound.
"""

import json
import os
import warnings
from dataclasses import asdict, dataclass, replace
from typing import Dict, List, Optional, Tuple, Union

from ..exceptions import CheckpointError
from ._groups import attend, attend_rows, check_groups, group_positions, linear_int8, quantize_linear, require_ops
from .common import (
    build_meta,
    check_state_dict,
    encoder_kib_per_segment,
    load_torch_file,
    require_torch,
    save_scripted,
    sha256_file,
)

torch = require_torch()
nn = torch.nn
Tensor = torch.Tensor

FAMILY = "mt3"
ADAPTERS = ("mr_mt3", "mt3_pytorch")


@dataclass(frozen=True)
class MT3Config:
    """Network dimensions; the defaults are the shipped ``mt3.pth``."""

    d_model: int = 512
    n_heads: int = 6
    d_kv: int = 64
    d_ff: int = 1024
    n_enc_layers: int = 8
    n_dec_layers: int = 8
    vocab_size: int = 1536
    input_dim: int = 512  # mel bins per frame
    eps: float = 1e-6
    max_frames: int = 257  # encoder positions the export accepts (MR-MT3 256, MT3-PyTorch 257)
    max_len: int = 1024  # decoder positions (start token + 1023 generated tokens)
    max_new_tokens: int = 1024

    @property
    def inner(self) -> int:
        return self.n_heads * self.d_kv

    def to_json(self) -> Dict:
        return asdict(self)


# ---------------------------------------------------------------------------
# Key/shape manifest (spec §3.3)
# ---------------------------------------------------------------------------

def mt3_manifest(cfg: MT3Config = MT3Config()) -> Dict[str, Tuple[int, ...]]:
    """Every key of ``mt3.pth`` with its shape (193 keys at full size)."""
    d, a, f, v, x = cfg.d_model, cfg.inner, cfg.d_ff, cfg.vocab_size, cfg.input_dim
    m: Dict[str, Tuple[int, ...]] = {}
    m["proj.weight"] = (d, x)
    m["encoder.embed_tokens.weight"] = (d, x)
    m["encoder.pos_emb.inv_freq"] = (d // 2,)
    for i in range(cfg.n_enc_layers):
        p = f"encoder.block.{i}.layer"
        for n in ("q", "k", "v"):
            m[f"{p}.0.SelfAttention.{n}.weight"] = (a, d)
        m[f"{p}.0.SelfAttention.o.weight"] = (d, a)
        m[f"{p}.0.layer_norm.weight"] = (d,)
        m[f"{p}.1.DenseReluDense.wi_0.weight"] = (f, d)
        m[f"{p}.1.DenseReluDense.wi_1.weight"] = (f, d)
        m[f"{p}.1.DenseReluDense.wo.weight"] = (d, f)
        m[f"{p}.1.layer_norm.weight"] = (d,)
    m["encoder.final_layer_norm.weight"] = (d,)
    m["decoder_embed_tokens.weight"] = (v, d)
    m["decoder.embed_tokens.weight"] = (v, d)
    m["decoder.pos_emb.inv_freq"] = (d // 2,)
    for i in range(cfg.n_dec_layers):
        p = f"decoder.block.{i}.layer"
        for n in ("q", "k", "v"):
            m[f"{p}.0.SelfAttention.{n}.weight"] = (a, d)
        m[f"{p}.0.SelfAttention.o.weight"] = (d, a)
        m[f"{p}.0.layer_norm.weight"] = (d,)
        for n in ("q", "k", "v"):
            m[f"{p}.1.EncDecAttention.{n}.weight"] = (a, d)
        m[f"{p}.1.EncDecAttention.o.weight"] = (d, a)
        m[f"{p}.1.layer_norm.weight"] = (d,)
        m[f"{p}.2.DenseReluDense.wi_0.weight"] = (f, d)
        m[f"{p}.2.DenseReluDense.wi_1.weight"] = (f, d)
        m[f"{p}.2.DenseReluDense.wo.weight"] = (d, f)
        m[f"{p}.2.layer_norm.weight"] = (d,)
    m["decoder.final_layer_norm.weight"] = (d,)
    m["lm_head.weight"] = (v, d)
    return m


# Keys that share storage with another key in the upstream file.
ALIASES = {
    "encoder.embed_tokens.weight": "proj.weight",
    "decoder.embed_tokens.weight": "decoder_embed_tokens.weight",
}


# ---------------------------------------------------------------------------
# Shared maths
# ---------------------------------------------------------------------------

def rms_norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """T5 RMSNorm: weight * (x * rsqrt(mean(x^2) + eps)), variance in float32."""
    var = x.float().pow(2).mean(-1, keepdim=True)
    y = x * torch.rsqrt(var + eps)
    return weight * y.to(weight.dtype)


def gelu_new(x: Tensor) -> Tensor:
    """The tanh approximation of GELU (HF ``gelu_new``)."""
    return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))


def sinusoid_table(inv_freq: Tensor, n: int) -> Tensor:
    """PE[p] = [sin(p*w), cos(p*w)] with p*w formed in float32 (spec §3.2)."""
    pos = torch.arange(n, dtype=torch.float32)
    ang = torch.outer(pos, inv_freq.float())
    return torch.cat([torch.sin(ang), torch.cos(ang)], dim=-1)


def default_inv_freq(d_model: int) -> Tensor:
    """Nominal values 10000^(-2i/d) (the checkpoint stores its own copy)."""
    return 1.0 / (10000.0 ** (torch.arange(0, d_model, 2, dtype=torch.float32) / d_model))


# ---------------------------------------------------------------------------
# Reference module (checkpoint layout)
# ---------------------------------------------------------------------------

class _Norm(nn.Module):
    def __init__(self, d: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return rms_norm(x, self.weight, self.eps)


class _Attention(nn.Module):
    def __init__(self, cfg: MT3Config):
        super().__init__()
        a, d = cfg.inner, cfg.d_model
        self.n_heads, self.d_kv = cfg.n_heads, cfg.d_kv
        self.q = nn.Linear(d, a, bias=False)
        self.k = nn.Linear(d, a, bias=False)
        self.v = nn.Linear(d, a, bias=False)
        self.o = nn.Linear(a, d, bias=False)
        # set True to keep the softmax weights of the last call in .last_w
        # (B, heads, t, s); tools/train_small.py's guided-attention loss reads them
        self.keep_weights = False
        self.last_w: Optional[Tensor] = None

    def forward(self, x: Tensor, mem: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, t, _ = x.shape
        s = mem.shape[1]
        q = self.q(x).view(b, t, self.n_heads, self.d_kv).transpose(1, 2)
        k = self.k(mem).view(b, s, self.n_heads, self.d_kv).transpose(1, 2)
        v = self.v(mem).view(b, s, self.n_heads, self.d_kv).transpose(1, 2)
        scores = torch.matmul(q, k.transpose(3, 2))  # no 1/sqrt(d_kv) scaling
        if mask is not None:
            scores = scores + mask
        w = torch.softmax(scores.float(), dim=-1).type_as(scores)
        if self.keep_weights:
            self.last_w = w
        out = torch.matmul(w, v).transpose(1, 2).reshape(b, t, -1)
        return self.o(out)


class _GatedFF(nn.Module):
    def __init__(self, cfg: MT3Config):
        super().__init__()
        self.wi_0 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wi_1 = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(gelu_new(self.wi_0(x)) * self.wi_1(x))


class _SelfAttnLayer(nn.Module):
    def __init__(self, cfg: MT3Config):
        super().__init__()
        self.SelfAttention = _Attention(cfg)
        self.layer_norm = _Norm(cfg.d_model, cfg.eps)

    def forward(self, h: Tensor, mask: Optional[Tensor]) -> Tensor:
        a = self.layer_norm(h)
        return h + self.SelfAttention(a, a, mask)


class _CrossAttnLayer(nn.Module):
    def __init__(self, cfg: MT3Config):
        super().__init__()
        self.EncDecAttention = _Attention(cfg)
        self.layer_norm = _Norm(cfg.d_model, cfg.eps)

    def forward(self, h: Tensor, enc: Tensor) -> Tensor:
        return h + self.EncDecAttention(self.layer_norm(h), enc, None)


class _FFLayer(nn.Module):
    def __init__(self, cfg: MT3Config):
        super().__init__()
        self.DenseReluDense = _GatedFF(cfg)
        self.layer_norm = _Norm(cfg.d_model, cfg.eps)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.DenseReluDense(self.layer_norm(h))


class _Block(nn.Module):
    def __init__(self, cfg: MT3Config, decoder: bool):
        super().__init__()
        if decoder:
            self.layer = nn.ModuleList([_SelfAttnLayer(cfg), _CrossAttnLayer(cfg), _FFLayer(cfg)])
        else:
            self.layer = nn.ModuleList([_SelfAttnLayer(cfg), _FFLayer(cfg)])


class _PosEmb(nn.Module):
    def __init__(self, d_model: int):
        super().__init__()
        self.register_buffer("inv_freq", default_inv_freq(d_model), persistent=True)


class _Stack(nn.Module):
    def __init__(self, cfg: MT3Config, embed: nn.Module, decoder: bool):
        super().__init__()
        self.embed_tokens = embed  # alias: same module object as the top-level one
        self.pos_emb = _PosEmb(cfg.d_model)
        n = cfg.n_dec_layers if decoder else cfg.n_enc_layers
        self.block = nn.ModuleList([_Block(cfg, decoder) for _ in range(n)])
        self.final_layer_norm = _Norm(cfg.d_model, cfg.eps)


class MT3(nn.Module):
    """Reference MT3 network in the layout of ``mt3.pth`` (spec §3)."""

    def __init__(self, cfg: MT3Config = MT3Config()):
        super().__init__()
        self.cfg = cfg
        self.proj = nn.Linear(cfg.input_dim, cfg.d_model, bias=False)
        self.encoder = _Stack(cfg, self.proj, decoder=False)
        self.decoder_embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.decoder = _Stack(cfg, self.decoder_embed_tokens, decoder=True)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    # -- encoder -----------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """features (B, T, input_dim) -> encoder states (B, T, d_model)."""
        t = x.shape[1]
        h = self.proj(x) + sinusoid_table(self.encoder.pos_emb.inv_freq, t).to(x.dtype)
        for blk in self.encoder.block:
            h = blk.layer[0](h, None)
            h = blk.layer[1](h)
        return self.encoder.final_layer_norm(h)

    # -- decoder (full prefix, no cache) ----------------------------------
    def decode_logits(self, enc: Tensor, ids: Tensor) -> Tensor:
        """Logits (B, t, V) for the whole prefix ``ids`` (B, t), causal mask as
        HF's extended attention mask: 0 where allowed, float32 min elsewhere."""
        t = ids.shape[1]
        h = self.decoder_embed_tokens(ids)
        h = h + sinusoid_table(self.decoder.pos_emb.inv_freq, t).to(h.dtype)
        allowed = torch.tril(torch.ones(t, t, dtype=torch.bool, device=ids.device))
        mask = torch.zeros(t, t, dtype=h.dtype, device=ids.device)
        mask = mask.masked_fill(~allowed, torch.finfo(h.dtype).min)[None, None]
        for blk in self.decoder.block:
            h = blk.layer[0](h, mask)
            h = blk.layer[1](h, enc)
            h = blk.layer[2](h)
        h = self.decoder.final_layer_norm(h)
        return self.lm_head(h)

    @torch.inference_mode()
    def greedy(self, x: Tensor, max_new_tokens: int = 1024, eos_id: int = 1, pad_id: int = 0,
               start_id: int = 0) -> Tensor:
        """The anchor's loop (spec §4.1): start 0, argmax of the last position
        over the full prefix, PAD after EOS, stop when all rows ended or after
        ``max_new_tokens`` tokens.  Returns ids (B, 1 + n_steps) with the start
        token in column 0."""
        enc = self.encode(x)
        b = x.shape[0]
        ids = torch.full((b, 1), start_id, dtype=torch.long, device=x.device)
        unfinished = torch.ones(b, dtype=torch.long, device=x.device)
        for _ in range(max_new_tokens):
            logits = self.decode_logits(enc, ids)[:, -1, :]
            nxt = torch.argmax(logits, dim=-1)
            nxt = nxt * unfinished + pad_id * (1 - unfinished)
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            unfinished = unfinished * (nxt != eos_id).long()
            if int(unfinished.max()) == 0:
                break
        return ids


# ---------------------------------------------------------------------------
# Runtime module (TorchScript, engine.h contract)
# ---------------------------------------------------------------------------

class _EncLayerRT(nn.Module):
    def __init__(self, d: int, a: int, f: int):
        super().__init__()
        self.ln0 = nn.Parameter(torch.ones(d))
        self.wqkv = nn.Parameter(torch.zeros(3 * a, d))
        self.wo = nn.Parameter(torch.zeros(d, a))
        self.ln1 = nn.Parameter(torch.ones(d))
        self.wi = nn.Parameter(torch.zeros(2 * f, d))
        self.wff = nn.Parameter(torch.zeros(d, f))


class _DecLayerRT(nn.Module):
    def __init__(self, d: int, a: int, f: int):
        super().__init__()
        self.ln0 = nn.Parameter(torch.ones(d))
        self.wqkv = nn.Parameter(torch.zeros(3 * a, d))
        self.wo = nn.Parameter(torch.zeros(d, a))
        self.ln1 = nn.Parameter(torch.ones(d))
        self.wq_c = nn.Parameter(torch.zeros(a, d))
        self.wo_c = nn.Parameter(torch.zeros(d, a))
        self.ln2 = nn.Parameter(torch.ones(d))
        self.wi = nn.Parameter(torch.zeros(2 * f, d))
        self.wff = nn.Parameter(torch.zeros(d, f))


class MT3Runtime(nn.Module):
    """Inference form of :class:`MT3` (see the module docstring).

    Methods (engine.h, format_version 1; C = 1 decoder row per segment):
      encode(features[B,T,F]) -> (cross_k, cross_v) each [L, B, H, T, Dh]
      step(tokens[N], pos, self_k, self_v, cross_k, cross_v) -> next ids [N]
      step_logits(...) -> logits [N, V]
      step_groups(tokens[N], sizes, positions, self_k, ...) -> next ids [N] (rows in groups
          at different positions: continuous batching)
      encoder_hidden(features) -> [B, T, D]
    """

    packed: List[torch.Tensor]
    qpacked: List[torch.classes.quantized.LinearPackedParamsBase]

    def __init__(self, cfg: MT3Config):
        super().__init__()
        d, a, f = cfg.d_model, cfg.inner, cfg.d_ff
        self.packed = []  # oneDNN-packed decoder weights, filled by prepack() at load time
        self.qpacked = []  # int8 decoder weights, filled by prepack_int8() (dtype "int8")
        self.n_heads = cfg.n_heads
        self.d_kv = cfg.d_kv
        self.inner = a
        self.d_ff = f
        self.eps = cfg.eps
        self.n_dec = cfg.n_dec_layers
        self.max_frames = cfg.max_frames
        self.max_len = cfg.max_len
        self.input_dim = cfg.input_dim
        self.vocab_size = cfg.vocab_size
        self.register_buffer("enc_pe", torch.zeros(cfg.max_frames, d))
        self.register_buffer("dec_pe", torch.zeros(cfg.max_len, d))
        self.w_proj = nn.Parameter(torch.zeros(d, cfg.input_dim))
        self.enc_layers = nn.ModuleList([_EncLayerRT(d, a, f) for _ in range(cfg.n_enc_layers)])
        self.enc_ln = nn.Parameter(torch.ones(d))
        # cross K/V projections of every decoder layer, stacked: [L*2*A, D]
        self.w_cross_kv = nn.Parameter(torch.zeros(cfg.n_dec_layers * 2 * a, d))
        self.embed = nn.Parameter(torch.zeros(cfg.vocab_size, d))
        self.dec_layers = nn.ModuleList([_DecLayerRT(d, a, f) for _ in range(cfg.n_dec_layers)])
        self.dec_ln = nn.Parameter(torch.ones(d))
        self.lm_head = nn.Parameter(torch.zeros(cfg.vocab_size, d))

    @classmethod
    def from_reference(cls, ref: MT3) -> "MT3Runtime":
        cfg = ref.cfg
        rt = cls(cfg)
        with torch.no_grad():
            rt.enc_pe.copy_(sinusoid_table(ref.encoder.pos_emb.inv_freq, cfg.max_frames))
            rt.dec_pe.copy_(sinusoid_table(ref.decoder.pos_emb.inv_freq, cfg.max_len))
            rt.w_proj.copy_(ref.proj.weight)
            for dst, blk in zip(rt.enc_layers, ref.encoder.block):
                sa, ff = blk.layer[0], blk.layer[1]
                att = sa.SelfAttention
                dst.ln0.copy_(sa.layer_norm.weight)
                dst.wqkv.copy_(torch.cat([att.q.weight, att.k.weight, att.v.weight], 0))
                dst.wo.copy_(att.o.weight)
                dst.ln1.copy_(ff.layer_norm.weight)
                dd = ff.DenseReluDense
                dst.wi.copy_(torch.cat([dd.wi_0.weight, dd.wi_1.weight], 0))
                dst.wff.copy_(dd.wo.weight)
            rt.enc_ln.copy_(ref.encoder.final_layer_norm.weight)
            kv = []
            for dst, blk in zip(rt.dec_layers, ref.decoder.block):
                sa, ca, ff = blk.layer[0], blk.layer[1], blk.layer[2]
                att = sa.SelfAttention
                dst.ln0.copy_(sa.layer_norm.weight)
                dst.wqkv.copy_(torch.cat([att.q.weight, att.k.weight, att.v.weight], 0))
                dst.wo.copy_(att.o.weight)
                cat_ = ca.EncDecAttention
                dst.ln1.copy_(ca.layer_norm.weight)
                dst.wq_c.copy_(cat_.q.weight)
                dst.wo_c.copy_(cat_.o.weight)
                kv += [cat_.k.weight, cat_.v.weight]
                dst.ln2.copy_(ff.layer_norm.weight)
                dd = ff.DenseReluDense
                dst.wi.copy_(torch.cat([dd.wi_0.weight, dd.wi_1.weight], 0))
                dst.wff.copy_(dd.wo.weight)
            rt.w_cross_kv.copy_(torch.cat(kv, 0))
            rt.embed.copy_(ref.decoder_embed_tokens.weight)
            rt.dec_ln.copy_(ref.decoder.final_layer_norm.weight)
            rt.lm_head.copy_(ref.lm_head.weight)
        return rt.eval()

    def _rms(self, x: Tensor, w: Tensor) -> Tensor:
        var = x.float().pow(2).mean(-1, keepdim=True)
        y = x * torch.rsqrt(var + self.eps)
        return w * y.to(w.dtype)

    def _gelu(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + torch.tanh(0.7978845608028654 * (x + 0.044715 * torch.pow(x, 3.0))))

    def _ff(self, a: Tensor, wi: Tensor, wff: Tensor) -> Tensor:
        g = torch.nn.functional.linear(a, wi)
        g0, g1 = g.split(self.d_ff, dim=-1)
        return torch.nn.functional.linear(self._gelu(g0) * g1, wff)

    def _lin(self, x: Tensor, w: Tensor, idx: int) -> Tensor:
        """x @ w.T for a decoder step, through the int8 or packed copy when there is one."""
        if len(self.qpacked) > 0:
            return linear_int8(x, self.qpacked[idx])
        if len(self.packed) > 0:
            return torch.ops.mkldnn._linear_pointwise(
                x, self.packed[idx], None, "none",
                torch.jit.annotate(List[Optional[Union[int, float, complex]]], []), "")
        return torch.nn.functional.linear(x, w)

    @torch.jit.export
    def prepack(self, batch_hint: int) -> int:
        """CPU only, called once by the engine right after loading (before the
        module is shared): keep oneDNN-blocked copies of the decoder weights,
        so a step's small-batch matrix products skip MKL's per-call packing.
        Same products, same shapes; only the summation order inside each dot
        product may differ (float rounding).  Returns the number packed."""
        out: List[Tensor] = []
        for layer in self.dec_layers:
            for w in (layer.wqkv, layer.wo, layer.wq_c, layer.wo_c, layer.wi, layer.wff):
                out.append(torch.ops.mkldnn._reorder_linear_weight(w, batch_hint))
        out.append(torch.ops.mkldnn._reorder_linear_weight(self.lm_head, batch_hint))
        self.packed = out
        return len(out)

    @torch.jit.export
    def prepack_int8(self) -> int:
        """CPU only, opt-in (dtype "int8"), called once by the engine right
        after loading: int8 copies of the decoder step's linear weights
        (``_groups.quantize_linear``), used with dynamically quantized
        activations (``_groups.linear_int8``).  The encoder and the cross K/V
        stay fp32.  Returns the number of weights quantized."""
        out: List[torch.classes.quantized.LinearPackedParamsBase] = []
        ws: List[Tensor] = []
        for layer in self.dec_layers:
            ws += [layer.wqkv, layer.wo, layer.wq_c, layer.wo_c, layer.wi, layer.wff]
        ws.append(self.lm_head)
        for w in ws:
            out.append(quantize_linear(w))
        self.packed = []
        self.qpacked = out
        return len(out)

    @torch.jit.export
    def encoder_hidden(self, features: Tensor) -> Tensor:
        """features [B, T, F] (1 <= T <= max_frames) -> final encoder states [B, T, D]."""
        if features.dim() != 3 or features.size(2) != self.input_dim:
            raise RuntimeError("encoder input must be [batch, frames, feature_bins]")
        b = features.size(0)
        t = features.size(1)
        if t < 1 or t > self.max_frames:
            raise RuntimeError("encoder input has too many frames for this export")
        h = torch.nn.functional.linear(features, self.w_proj) + self.enc_pe[:t]
        hd = self.n_heads
        dk = self.d_kv
        for layer in self.enc_layers:
            a = self._rms(h, layer.ln0)
            qkv = torch.nn.functional.linear(a, layer.wqkv).view(b, t, 3, hd, dk)
            q = qkv.select(2, 0).transpose(1, 2)
            k = qkv.select(2, 1).transpose(1, 2)
            v = qkv.select(2, 2).transpose(1, 2)
            o = attend(q, k, v).transpose(1, 2).reshape(b, t, self.inner)
            h = h + torch.nn.functional.linear(o, layer.wo)
            h = h + self._ff(self._rms(h, layer.ln1), layer.wi, layer.wff)
        return self._rms(h, self.enc_ln)

    @torch.jit.export
    def encode(self, features: Tensor) -> Tuple[Tensor, Tensor]:
        """features [B, T, F] -> cross keys and values, each [L, B, H, T, Dh]."""
        enc = self.encoder_hidden(features)
        b = enc.size(0)
        t = enc.size(1)
        kv = torch.nn.functional.linear(enc, self.w_cross_kv)  # [B, T, L*2*A]
        kv = kv.view(b, t, self.n_dec, 2, self.n_heads, self.d_kv).permute(3, 2, 0, 4, 1, 5)
        kv = kv.contiguous()  # [2, L, B, H, T, Dh]
        return kv[0], kv[1]

    def _rows_logits(self, tokens: Tensor, sizes: List[int], poss: List[int], self_k: Tensor,
                     self_v: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Cached decoder step for N rows in contiguous groups: group g is the
        next sizes[g] rows, all at position poss[g].  Row-wise operations run
        on all N rows at once; self-attention runs per group over exactly its
        positions 0..poss[g] (no padding or masking) in one
        ``attend_rows`` call per layer, which computes each row alone: a row's
        result is the same whatever the other rows of the step are."""
        n = tokens.size(0)
        check_groups(n, self_k.size(3), self.max_len, sizes, poss)
        hd = self.n_heads
        dk = self.d_kv
        x = torch.embedding(self.embed, tokens) + group_positions(self.dec_pe, sizes, poss)
        many = len(sizes) > 1
        lens = [p + 1 for p in poss]  # group g attends to its positions 0..poss[g]
        t_enc = cross_k.size(3)
        rows = torch.arange(n, device=tokens.device)
        at = rows  # each row's position (several groups): one cache write per layer for all rows
        if many:
            at = torch.cat([torch.full([sizes[g]], poss[g], dtype=torch.long, device=tokens.device)
                            for g in range(len(sizes))])
        i = 0
        for layer in self.dec_layers:
            base = 6 * i
            a = self._rms(x, layer.ln0)
            qkv = self._lin(a, layer.wqkv, base).view(n, 3, hd, dk)
            kc = self_k.select(0, i)
            vc = self_v.select(0, i)
            if many:
                kc.index_put_([rows, None, at], qkv.select(1, 1))
                vc.index_put_([rows, None, at], qkv.select(1, 2))
            else:
                kc.select(2, poss[0]).copy_(qkv.select(1, 1))
                vc.select(2, poss[0]).copy_(qkv.select(1, 2))
            o = attend_rows(qkv.select(1, 0), kc, vc, sizes, lens)
            x = x + self._lin(o, layer.wo, base + 1)
            a = self._rms(x, layer.ln1)
            q = self._lin(a, layer.wq_c, base + 2).view(n, hd, dk)
            o = attend_rows(q, cross_k.select(0, i), cross_v.select(0, i), [n], [t_enc])
            x = x + self._lin(o, layer.wo_c, base + 3)
            a = self._rms(x, layer.ln2)
            g = self._lin(a, layer.wi, base + 4)
            g0, g1 = g.split(self.d_ff, dim=-1)
            x = x + self._lin(self._gelu(g0) * g1, layer.wff, base + 5)
            i += 1
        h = self._rms(x, self.dec_ln)
        return self._lin(h, self.lm_head, 6 * self.n_dec)

    @torch.jit.export
    def step_logits(self, tokens: Tensor, pos: int, self_k: Tensor, self_v: Tensor,
                    cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """One cached decoder step for N rows at position ``pos``.  Writes this
        position's keys/values into self_k/self_v[:, :, :, pos] in place and
        attends to cache positions 0..pos.  Returns logits [N, V]."""
        return self._rows_logits(tokens, [tokens.size(0)], [pos], self_k, self_v, cross_k, cross_v)

    @torch.jit.export
    def step(self, tokens: Tensor, pos: int, self_k: Tensor, self_v: Tensor,
             cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Greedy next ids [N] (argmax, ties -> lowest id) of :meth:`step_logits`."""
        return torch.argmax(self.step_logits(tokens, pos, self_k, self_v, cross_k, cross_v), dim=-1)

    @torch.jit.export
    def step_groups(self, tokens: Tensor, sizes: List[int], poss: List[int], self_k: Tensor,
                    self_v: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tensor:
        """Greedy next ids [N] for rows in groups at different positions
        (continuous batching): group g is the next sizes[g] rows, at position
        poss[g]; each writes its keys/values at its own position."""
        return torch.argmax(self._rows_logits(tokens, sizes, poss, self_k, self_v, cross_k, cross_v), dim=-1)

    @torch.jit.export
    def step_top2(self, tokens: Tensor, sizes: List[int], poss: List[int], live_logp: Tensor, self_k: Tensor,
                  self_v: Tensor, cross_k: Tensor, cross_v: Tensor) -> Tuple[Tensor, Tensor]:
        """One step of beam search with one beam (t5x, specs/magenta-t5x.md
        §5.5), rows grouped as :meth:`step_groups`: the candidates'
        log-probabilities log_softmax(logits) + live_logp[row] in float32 and
        the two best of them per row, descending, ties -> the lower id (as
        ``lax.top_k``).  Returns (ids [N, 2] int64, values [N, 2] float32)."""
        logits = self._rows_logits(tokens, sizes, poss, self_k, self_v, cross_k, cross_v).float()
        lp = torch.log_softmax(logits, dim=-1) + live_logp.float().unsqueeze(1)
        i1 = torch.argmax(lp, dim=-1, keepdim=True)  # first maximum: the lowest id among ties
        v1 = lp.gather(1, i1)
        lp.scatter_(1, i1, float("-inf"))
        i2 = torch.argmax(lp, dim=-1, keepdim=True)
        v2 = lp.gather(1, i2)
        return torch.cat([i1, i2], 1), torch.cat([v1, v2], 1)

    def forward(self, features: Tensor) -> Tensor:
        return self.encoder_hidden(features)


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------

_CONFIG_JSON_KEYS = {
    "d_model": "d_model",
    "num_heads": "n_heads",
    "d_kv": "d_kv",
    "d_ff": "d_ff",
    "num_layers": "n_enc_layers",
    "num_decoder_layers": "n_dec_layers",
    "vocab_size": "vocab_size",
    "layer_norm_epsilon": "eps",
}


def config_from_json(path: str, base: MT3Config = MT3Config()) -> MT3Config:
    """An MT3Config from kunato's ``config.json`` (T5Config keys)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read model config {path!r}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"model config {path!r} is not a JSON object")
    kw = {}
    for src, dst in _CONFIG_JSON_KEYS.items():
        if src in raw:
            kw[dst] = float(raw[src]) if dst == "eps" else int(raw[src])
    if "num_layers" in raw and "num_decoder_layers" not in raw:
        kw["n_dec_layers"] = int(raw["num_layers"])
    ff = raw.get("feed_forward_proj", "gated-gelu")
    if ff not in ("gated-gelu", "gated-gelu_new"):
        raise CheckpointError(f"model config {path!r}: feed_forward_proj {ff!r} is not MT3's gated-gelu")
    if raw.get("tie_word_embeddings", False):
        raise CheckpointError(f"model config {path!r}: tied embeddings are not the MT3 layout")
    return replace(base, **kw)


def infer_config(state, base: MT3Config = MT3Config()) -> MT3Config:
    """Dimensions read from the tensors themselves (heads from ``base.d_kv``).
    Anything unreadable keeps the default, so the strict check reports it."""
    def shape(key):
        v = state.get(key) if hasattr(state, "get") else None
        return tuple(v.shape) if isinstance(v, Tensor) else None

    kw = {}
    s = shape("proj.weight")
    if s and len(s) == 2:
        kw["d_model"], kw["input_dim"] = s
    s = shape("encoder.block.0.layer.0.SelfAttention.q.weight")
    if s and len(s) == 2 and s[0] % base.d_kv == 0:
        kw["n_heads"] = s[0] // base.d_kv
    s = shape("encoder.block.0.layer.1.DenseReluDense.wi_0.weight")
    if s and len(s) == 2:
        kw["d_ff"] = s[0]
    s = shape("lm_head.weight")
    if s and len(s) == 2:
        kw["vocab_size"] = s[0]
    if hasattr(state, "keys"):
        for prefix, name in (("encoder.block.", "n_enc_layers"), ("decoder.block.", "n_dec_layers")):
            idx = set()
            for k in state.keys():
                if isinstance(k, str) and k.startswith(prefix):
                    head = k[len(prefix):].split(".", 1)[0]
                    if head.isdigit():
                        idx.add(int(head))
            if idx:
                kw[name] = max(idx) + 1
    return replace(base, **kw)


def resolve_checkpoint(path: str) -> Tuple[str, Optional[str]]:
    """(weights file, config.json or None) for a file or an anchor-style
    directory holding ``mt3.pth`` (and optionally ``config.json``)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        w = os.path.join(path, "mt3.pth")
        if not os.path.isfile(w):
            raise CheckpointError(
                f"checkpoint directory {path!r} has no mt3.pth; expected the MT3 weight file "
                "(and optionally config.json) inside it"
            )
        c = os.path.join(path, "config.json")
        return w, (c if os.path.isfile(c) else None)
    c = os.path.join(os.path.dirname(os.path.abspath(path)), "config.json")
    return path, (c if os.path.isfile(c) else None)


def load_mt3(checkpoint: str, config: Optional[MT3Config] = None) -> MT3:
    """Strictly load ``mt3.pth`` (file or directory) into :class:`MT3`.

    All keys of :func:`mt3_manifest` must be present with their shapes, no
    other key may appear, and the aliased keys must equal their twins;
    otherwise :class:`CheckpointError` lists what is wrong."""
    weights, cfg_json = resolve_checkpoint(checkpoint)
    state = load_torch_file(weights, "MT3 checkpoint")
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict) \
            and "proj.weight" not in state:
        raise CheckpointError(
            f"{weights!r} looks like a training checkpoint (it has a 'state_dict' entry), not "
            "the MT3 weight file mt3.pth; YourMT3 checkpoints need --model yourmt3"
        )
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{weights!r} does not hold a state dict (got {type(state).__name__}); expected mt3.pth"
        )
    if config is None:
        config = config_from_json(cfg_json) if cfg_json else infer_config(state)
    check_state_dict(state, mt3_manifest(config), "MT3 checkpoint", weights)
    for alias, twin in ALIASES.items():
        if not torch.equal(state[alias], state[twin]):
            raise CheckpointError(
                f"MT3 checkpoint {weights!r}: {alias} differs from {twin}; upstream stores them "
                "as one tensor, so the file is corrupt or not mt3.pth"
            )
    for k, v in state.items():
        if not torch.isfinite(v).all():
            raise CheckpointError(f"MT3 checkpoint {weights!r}: {k} holds NaN or Inf values")
    model = MT3(config)
    model.load_state_dict(state, strict=True)
    return model.eval()


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------

def script_module(rt: "MT3Runtime"):
    """torch.jit.script of a built :class:`MT3Runtime`."""
    require_ops()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated upstream
        return torch.jit.script(rt)


def script_runtime(model: MT3):
    """torch.jit.script of :class:`MT3Runtime` built from ``model``."""
    return script_module(MT3Runtime.from_reference(model.eval()))


def mt3_meta(cfg: MT3Config, source_sha256: str, *, family: str = FAMILY,
             adapters: Tuple[str, ...] = ADAPTERS, **extras) -> Dict:
    """``mt3_infer.json`` of an MT3-network export (``family``/``adapters``/
    ``extras``: the Magenta family's own values)."""
    return build_meta(
        family=family,
        frames=cfg.max_frames,
        feature_bins=cfg.input_dim,
        channels=1,
        n_layers=cfg.n_dec_layers,
        n_heads=cfg.n_heads,
        d_kv=cfg.d_kv,
        memory_len=cfg.max_frames,
        max_len=cfg.max_len,
        vocab_size=cfg.vocab_size,
        max_new_tokens=cfg.max_new_tokens,
        check_first_eos=True,
        source_sha256=source_sha256,
        min_frames=1,
        d_model=cfg.d_model,
        adapters=list(adapters),
        config=cfg.to_json(),
        **extras,
    )


def save_export(scripted, meta: Dict, st: os.stat_result, out: str) -> str:
    """Record the source file's size and mtime (``st``, taken before it was
    read, so a change during the export makes the artifact stale; lets a
    cache check skip re-hashing) and the encoder's working memory in
    ``meta``, then write the artifact ``out``."""
    meta["source_size"] = int(st.st_size)
    meta["source_mtime_ns"] = int(st.st_mtime_ns)
    meta["encoder_kib_per_segment"] = encoder_kib_per_segment(scripted, meta["frames"], meta["feature_bins"])
    return save_scripted(scripted, out, meta)


def export_mt3(checkpoint: str, out: str, config: Optional[MT3Config] = None) -> str:
    """Load ``checkpoint`` (mt3.pth or its directory) strictly and write the
    TorchScript artifact ``out``.  Returns the path written.  The metadata
    also records the source's size and mtime (``source_size``,
    ``source_mtime_ns``) so a cache check can skip re-hashing."""
    weights, _ = resolve_checkpoint(checkpoint)
    st = os.stat(weights)
    model = load_mt3(checkpoint, config)
    return save_export(script_runtime(model), mt3_meta(model.cfg, sha256_file(weights)), st, out)


def export_checkpoint(checkpoint: str, out: str) -> str:
    """The family's entry point (``registry.FAMILIES["mt3"]["exporter"]``,
    called by :func:`mt3_infer.export.export_checkpoint`): export
    ``checkpoint`` (mt3.pth or its directory) to ``out``."""
    return export_mt3(checkpoint, out)


def reference_from_artifact(path: str) -> MT3:
    """The plain eager :class:`MT3` holding the weights of an exported MT3
    artifact (the inverse of :meth:`MT3Runtime.from_reference`: fused Q/K/V,
    gate and cross K/V matrices split back, bit for bit).  Used to check the
    engine against plain PyTorch on a shipped network that has no ``mt3.pth``
    beside it.  Positions: the artifact's sinusoid tables must equal the ones
    the default ``inv_freq`` gives (true for networks trained here)."""
    from .common import read_artifact_meta

    meta = read_artifact_meta(path)
    if not meta or meta.get("family") != FAMILY:
        raise CheckpointError(f"{path!r} is not an exported MT3 artifact")
    cfg = replace(MT3Config(), **{k: v for k, v in meta["config"].items() if k in MT3Config.__annotations__})
    rt = torch.jit.load(path, map_location="cpu")
    p = {k: v.detach().clone() for k, v in rt.state_dict().items()}
    ref = MT3(cfg)
    a, f = cfg.inner, cfg.d_ff
    with torch.no_grad():
        for stack, table in ((ref.encoder, "enc_pe"), (ref.decoder, "dec_pe")):
            # Not bit-equal across CPUs: inv_freq = 10000^(-2i/d) comes from powf
            # (1-2 ulp apart between vector and scalar paths), the angle p*w is
            # rounded once more, and sin/cos add ~1 ulp.  Entry bound:
            # |angle| * 4 * 2^-24 + 8 * 2^-24; another inv_freq moves entries by O(1).
            n = p[table].shape[0]
            want = sinusoid_table(stack.pos_emb.inv_freq, n)
            ang = torch.outer(torch.arange(n, dtype=torch.float32), stack.pos_emb.inv_freq.float())
            bound = (torch.cat([ang, ang], dim=-1).abs() * 4.0 + 8.0) * 2.0 ** -24
            if not bool(((want - p[table]).abs() <= bound).all()):
                raise CheckpointError(f"{path!r}: position table {table} is not the default one")
        def self_attn(layer, q):  # norm + fused Q/K/V + output of one self-attention sublayer
            att = layer.SelfAttention
            layer.layer_norm.weight.copy_(p[q + "ln0"])
            for j, lin in enumerate((att.q, att.k, att.v)):
                lin.weight.copy_(p[q + "wqkv"][j * a:(j + 1) * a])
            att.o.weight.copy_(p[q + "wo"])

        def ff(layer, q, ln):  # norm + fused gate of one feed-forward sublayer
            dd = layer.DenseReluDense
            layer.layer_norm.weight.copy_(p[q + ln])
            dd.wi_0.weight.copy_(p[q + "wi"][:f])
            dd.wi_1.weight.copy_(p[q + "wi"][f:])
            dd.wo.weight.copy_(p[q + "wff"])

        ref.proj.weight.copy_(p["w_proj"])
        for i, blk in enumerate(ref.encoder.block):
            self_attn(blk.layer[0], f"enc_layers.{i}.")
            ff(blk.layer[1], f"enc_layers.{i}.", "ln1")
        ref.encoder.final_layer_norm.weight.copy_(p["enc_ln"])
        for i, blk in enumerate(ref.decoder.block):
            q = f"dec_layers.{i}."
            self_attn(blk.layer[0], q)
            cross = blk.layer[1].EncDecAttention
            blk.layer[1].layer_norm.weight.copy_(p[q + "ln1"])
            cross.q.weight.copy_(p[q + "wq_c"])
            cross.o.weight.copy_(p[q + "wo_c"])
            kv = p["w_cross_kv"][i * 2 * a:(i + 1) * 2 * a]
            cross.k.weight.copy_(kv[:a])
            cross.v.weight.copy_(kv[a:])
            ff(blk.layer[2], q, "ln2")
        ref.decoder_embed_tokens.weight.copy_(p["embed"])
        ref.decoder.final_layer_norm.weight.copy_(p["dec_ln"])
        ref.lm_head.weight.copy_(p["lm_head"])
    return ref.eval()


def greedy_cached(module, features: Tensor, max_new_tokens: int, eos_id: int = 1,
                  pad_id: int = 0, start_id: int = 0, check_first_eos: bool = True) -> Tensor:
    """Greedy decoding through a (scripted or eager) :class:`MT3Runtime`'s
    cache API, the same rules as the C loop.  Returns ids (B, n) of the
    generated tokens (start token excluded), PAD after EOS."""
    with torch.inference_mode():
        ck, cv = module.encode(features)
        l, n, h, _, dk = ck.shape
        sk = torch.zeros(l, n, h, max_new_tokens, dk, dtype=ck.dtype)
        sv = torch.zeros_like(sk)
        tok = torch.full((n,), start_id, dtype=torch.long)
        out = torch.full((n, max_new_tokens), pad_id, dtype=torch.long)
        active = torch.arange(n)
        steps = 0
        for pos in range(max_new_tokens):
            nxt = module.step(tok, pos, sk, sv, ck, cv)
            out[active, pos] = nxt
            steps = pos + 1
            done = nxt == eos_id
            if pos == 0 and not check_first_eos:
                done = torch.zeros_like(done)
            keep = (~done).nonzero().flatten()
            if keep.numel() == 0:
                break
            if keep.numel() != active.numel():
                active = active[keep]
                sk, sv = sk[:, keep].contiguous(), sv[:, keep].contiguous()
                ck, cv = ck[:, keep].contiguous(), cv[:, keep].contiguous()
                nxt = nxt[keep]
            tok = nxt
        return out[:, :steps]


__all__ = [
    "MT3Config",
    "MT3",
    "MT3Runtime",
    "mt3_manifest",
    "ALIASES",
    "load_mt3",
    "export_mt3",
    "export_checkpoint",
    "script_runtime",
    "mt3_meta",
    "greedy_cached",
    "reference_from_artifact",
    "config_from_json",
    "infer_config",
    "resolve_checkpoint",
]
