"""YourMT3 test fixtures, written from shared/specs/yourmt3.md independently of
mt3_infer.export.yourmt3:

* ``manifest(dims, rms)``: the state_dict key/shape list of spec 4.8;
* ``random_state_dict`` / ``make_hparams`` / ``save_lightning_checkpoint``:
  a random-weight checkpoint in the real Lightning layout (hyper_parameters
  with a pickled ``utils.task_manager.TaskManager`` and a Lightning
  ``AttributeDict``, optimizer / scheduler / callback state);
* ``Reference``: a plain functional PyTorch implementation of the network
  (spec 4.1-4.5), with an uncached greedy decode (spec 5) that recomputes the
  whole prefix at every step.
"""
from __future__ import annotations

import collections
import contextlib
import math
import sys
import types
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# Full-size dimensions of spec 1.5 and a small variant for fast tests.
FULL = dict(
    conv_ch=128, n_pre=3, kv=128, K=26, D=128, heads=8, blocks=3, n_local=2, n_temporal=2,
    experts=8, hidden=512, rope_len=2, C=13, dm=512, dheads=6, dkv=64, dff=1024, layers=8,
    vocab=596, pe_rows=1034, frames=110,
)
SMALL = dict(
    conv_ch=8, n_pre=3, kv=8, K=26, D=64, heads=8, blocks=3, n_local=2, n_temporal=2,
    experts=8, hidden=32, rope_len=2, C=13, dm=32, dheads=2, dkv=16, dff=48, layers=2,
    vocab=596, pe_rows=1034, frames=12,
)

PIXEL_FREQS = [math.pi, 5 * math.pi]
LANG_FREQS = [1.0, 0.01]


def manifest(dims: dict, rms: bool) -> "collections.OrderedDict[str, Tuple[Tuple[int, ...], str]]":
    """key -> (shape, kind) with kind in {param, buffer, freqs, count, window}."""
    m = collections.OrderedDict()
    m["spectrogram.stft.window"] = ((2048,), "window")
    c = dims["conv_ch"]
    for i in range(dims["n_pre"]):
        b = f"pre_encoder.0.blocks.{i}"
        m[f"{b}.conv1.weight"] = ((c, 1 if i == 0 else c, 3, 3), "param")
        m[f"{b}.conv2.weight"] = ((c, c, 3, 3), "param")
        if i == 0:
            m[f"{b}.shortcut.weight"] = ((c, 1, 1, 1), "param")
            m[f"{b}.shortcut.bias"] = ((c,), "param")
        for bn in ("bn1", "bn2"):
            m[f"{b}.{bn}.weight"] = ((c,), "param")
            m[f"{b}.{bn}.bias"] = ((c,), "param")
            m[f"{b}.{bn}.running_mean"] = ((c,), "buffer")
            m[f"{b}.{bn}.running_var"] = ((c,), "buffer")
            m[f"{b}.{bn}.num_batches_tracked"] = ((), "count")
    K, D, kv, E, H = dims["K"], dims["D"], dims["kv"], dims["experts"], dims["hidden"]
    m["encoder.latent_array.latents"] = ((K, D), "param")
    for r in ("sca", "latent", "temporal"):
        m[f"encoder.rotary_emb_{r}.freqs"] = ((dims["rope_len"],), "freqs")

    def ln(key, n):
        m[key + ".weight"] = ((n,), "param")
        if not rms:
            m[key + ".bias"] = ((n,), "param")

    def attn(prefix, kvd, rname):
        for w, n_in in (("query", D), ("key", kvd), ("value", kvd)):
            m[f"{prefix}.self.{w}.weight"] = ((D, n_in), "param")
            m[f"{prefix}.self.{w}.bias"] = ((D,), "param")
        m[f"{prefix}.self.rotary_emb.freqs"] = ((dims["rope_len"],), "freqs:" + rname)
        m[f"{prefix}.output.dense.weight"] = ((D, D), "param")
        m[f"{prefix}.output.dense.bias"] = ((D,), "param")

    for i in range(dims["blocks"]):
        s = f"encoder.blocks.{i}.spectral_cross_attention"
        ln(f"{s}.self.layernorm1", D)
        ln(f"{s}.self.layernorm2", kv)
        attn(s, kv, "sca")
        for kind, n, rname in (("local_transformer", dims["n_local"], "latent"),
                               ("temporal_transformer", dims["n_temporal"], "temporal")):
            for j in range(n):
                p = f"encoder.blocks.{i}.{kind}.{j}"
                ln(f"{p}.attention.self.layernorm1", D)
                attn(f"{p}.attention", D, rname)
                ln(f"{p}.layernorm", D)
                m[f"{p}.mlp.gate.weight"] = ((E, D), "param")
                for e in range(E):
                    m[f"{p}.mlp.experts.{e}.w1.weight"] = ((H, D), "param")
                    m[f"{p}.mlp.experts.{e}.gate.weight"] = ((H, D), "param")
                    m[f"{p}.mlp.experts.{e}.w2.weight"] = ((D, H), "param")
    dm, inner, dff = dims["dm"], dims["dheads"] * dims["dkv"], dims["dff"]
    m["pre_decoder.0.linear.weight"] = ((dm, (K // dims["C"]) * D), "param")
    m["decoder.decoder.additive_pe.weight"] = ((dims["pe_rows"], dm), "pe")
    for l in range(dims["layers"]):
        b = f"decoder.decoder.block.{l}.layer"
        m[f"{b}.0.layer_norm.weight"] = ((dm,), "param")
        for w in "qkv":
            m[f"{b}.0.SelfAttention.{w}.weight"] = ((inner, dm), "param")
        m[f"{b}.0.SelfAttention.o.weight"] = ((dm, inner), "param")
        m[f"{b}.1.layer_norm.weight"] = ((dm,), "param")
        for w in "qkv":
            m[f"{b}.1.EncDecAttention.{w}.weight"] = ((inner, dm), "param")
        m[f"{b}.1.EncDecAttention.o.weight"] = ((dm, inner), "param")
        m[f"{b}.2.layer_norm.weight"] = ((dm,), "param")
        m[f"{b}.2.DenseReluDense.wi_0.weight"] = ((dff, dm), "param")
        m[f"{b}.2.DenseReluDense.wi_1.weight"] = ((dff, dm), "param")
        m[f"{b}.2.DenseReluDense.wo.weight"] = ((dm, dff), "param")
    m["decoder.decoder.final_layer_norm.weight"] = ((dm,), "param")
    m["lm_head.lm_head.weight"] = ((dims["vocab"], dm), "param")
    m["embed_tokens.weight"] = ((dims["vocab"], dm), "param")
    return m


def sinusoid_table(rows: int, d: int) -> torch.Tensor:
    """Spec 4.5: first half sin, second half cos, 10000^(2i/d), float64 -> fp32."""
    s = np.arange(rows, dtype=np.float64)[:, None]
    i = np.arange(d // 2, dtype=np.float64)[None, :]
    ang = s / np.power(10000.0, 2.0 * i / d)
    return torch.from_numpy(np.concatenate([np.sin(ang), np.cos(ang)], axis=1)).float()


def random_state_dict(dims: dict, rms: bool, seed: int = 0, eos_bias: float = 0.0):
    """Random weights with sane scales.  ``eos_bias`` > 0 tilts the EOS row of
    the LM head towards the mean hidden direction so that rows end early."""
    g = torch.Generator().manual_seed(seed)
    sd = collections.OrderedDict()
    for key, (shape, kind) in manifest(dims, rms).items():
        if kind == "window":
            n = torch.arange(2048, dtype=torch.float64)
            sd[key] = (0.5 - 0.5 * torch.cos(2 * math.pi * n / 2048)).float()
        elif kind == "count":
            sd[key] = torch.tensor(1234, dtype=torch.int64)
        elif kind.startswith("freqs"):
            which = kind.split(":")[-1] if ":" in kind else key.split("rotary_emb_")[1].split(".")[0]
            sd[key] = torch.tensor(LANG_FREQS if which == "temporal" else PIXEL_FREQS, dtype=torch.float32)
        elif kind == "pe":
            sd[key] = sinusoid_table(*shape)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) * 0.5 + 0.75
        elif key.endswith("running_mean"):
            sd[key] = torch.randn(shape, generator=g) * 0.1
        elif "layernorm" in key or "layer_norm" in key or ".bn" in key:
            if key.endswith(".bias"):
                sd[key] = torch.randn(shape, generator=g) * 0.1
            else:
                sd[key] = 1.0 + torch.randn(shape, generator=g) * 0.1
        elif key.endswith(".bias"):
            sd[key] = torch.randn(shape, generator=g) * 0.05
        elif key == "encoder.latent_array.latents" or key == "embed_tokens.weight":
            sd[key] = torch.randn(shape, generator=g)
        else:
            fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
            sd[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    # Routers with a wide spread: clear top-2 choices (no fp32 near-ties).
    for key in sd:
        if key.endswith("mlp.gate.weight"):
            sd[key] = sd[key] * 4.0
    if eos_bias:
        lm = sd["lm_head.lm_head.weight"]
        lm[1] = lm[1] * 0.0 + eos_bias * lm.mean(0) / (lm.mean(0).norm() + 1e-12)
    # Shared rotary tables: the per-attention copies are the same values.
    return sd


# ---------------------------------------------------------------------------
# Lightning layout
# ---------------------------------------------------------------------------


class AttributeDict(dict):
    """Pickled as lightning.fabric.utilities.data.AttributeDict."""


class TaskManager:
    """Pickled as utils.task_manager.TaskManager (ignored by inference)."""

    def __init__(self):
        self.task_name = "mc13_full_plus_256"
        self.max_shift_steps = 206
        self.tokenizer = NoteEventTokenizer()


class NoteEventTokenizer:
    def __init__(self):
        self.codec = FastCodec()


class FastCodec:
    def __init__(self):
        self.num_classes = 596
        self.event_ranges = [("shift", 0, 205), ("pitch", 0, 127)]


_FAKE_MODULES = {
    "utils": None,
    "utils.task_manager": {"TaskManager": TaskManager},
    "utils.tokenizer": {"NoteEventTokenizer": NoteEventTokenizer},
    "utils.event_codec": {"FastCodec": FastCodec},
    "lightning": None,
    "lightning.fabric": None,
    "lightning.fabric.utilities": None,
    "lightning.fabric.utilities.data": {"AttributeDict": AttributeDict},
}


@contextlib.contextmanager
def fake_upstream_modules():
    """Make the classes above picklable under their upstream module names."""
    saved = {name: sys.modules.get(name) for name in _FAKE_MODULES}
    try:
        for name, members in _FAKE_MODULES.items():
            mod = types.ModuleType(name)
            mod.__path__ = []
            for cls_name, cls in (members or {}).items():
                setattr(mod, cls_name, cls)
                cls.__module__ = name
                cls.__qualname__ = cls_name
            sys.modules[name] = mod
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old


def make_hparams(dims: dict, rms: bool) -> dict:
    """Resolved hyper_parameters as Lightning stores them (spec 1.4-1.6)."""
    pcfg = {
        "num_latents": dims["K"], "d_latent": dims["D"], "d_model": dims["D"], "num_blocks": dims["blocks"],
        "num_local_transformers_per_block": dims["n_local"],
        "num_temporal_transformers_per_block": dims["n_temporal"],
        "sca_use_query_residual": True, "dropout_rate": 0.1, "position_encoding_type": "rope",
        "attention_to_channel": True, "layer_norm_type": "rms_norm" if rms else "layer_norm",
        "ff_layer_type": "moe", "ff_widening_factor": dims["hidden"] // dims["D"],
        "moe_num_experts": dims["experts"], "moe_topk": 2, "hidden_act": "silu",
        "rotary_type_sca": "pixel", "rotary_type_latent": "pixel", "rotary_type_temporal": "lang",
        "rotary_apply_to_keys": False, "rotary_partial_pe": False, "rope_partial_pe": True,
        "num_max_positions": dims["frames"], "vocab_size": dims["vocab"], "tie_word_embeddings": True,
    }
    dcfg = {
        "d_model": dims["dm"], "num_heads": dims["dheads"], "num_layers": dims["layers"],
        "dropout_rate": 0.05, "position_encoding_type": "sinusoidal", "ff_widening_factor": 2,
        "ff_layer_type": "t5_gmlp", "num_channels": dims["C"], "num_max_positions": dims["pe_rows"],
        "vocab_size": dims["vocab"], "tie_word_embeddings": True,
    }
    model_cfg = {
        "encoder_type": "perceiver-tf", "decoder_type": "multi-t5", "pre_encoder_type": "conv",
        "pre_decoder_type": "mc_shared_linear", "conv_out_channels": dims["conv_ch"],
        "t5_basename": "google/t5-v1_1-small", "pretrained": False,
        "use_task_conditional_encoder": True, "use_task_conditional_decoder": True,
        "d_feat": dims["kv"], "tie_word_embeddings": True, "vocab_size": dims["vocab"],
        "num_max_positions": dims["pe_rows"],
        "encoder": {"perceiver-tf": pcfg}, "decoder": {"multi-t5": dcfg},
        "feat_length": dims["frames"], "event_length": 1024, "init_factor": 1.0,
    }
    audio_cfg = {
        "codec": "spec", "hop_length": 300, "audio_backend": "torchaudio", "sample_rate": 16000,
        "input_frames": 32767, "n_fft": 2048, "n_mels": 512, "f_min": 50.0, "f_max": 8000.0,
    }
    return {
        "audio_cfg": audio_cfg, "model_cfg": model_cfg,
        "shared_cfg": {"TOKENIZER": {"max_shift_steps": 206, "shift_step_ms": 10}},
        "pretrained": False, "optimizer_name": "adamwscale", "scheduler_name": "cosine",
        "base_lr": 0.01, "max_steps": 300000, "weight_decay": 0.0, "init_factor": 1.0,
        "eval_subtask_key": "default", "write_output_dir": None, "onset_tolerance": 0.05,
        "eval_vocab": [{"Piano": np.arange(0, 8), "Drums": np.array([128])}],
        "eval_drum_vocab": {36: np.int64(36)},
    }


def save_lightning_checkpoint(path, sd: Dict[str, torch.Tensor], hparams: Optional[dict],
                              extra: Optional[dict] = None, prefix: str = "") -> str:
    """torch.save a dict shaped like a Lightning 2.x ``last.ckpt``."""
    with fake_upstream_modules():
        hp = AttributeDict(hparams or {})
        if hparams is not None:
            hp["task_manager"] = TaskManager()
        first = next(iter(sd.values()))
        ckpt = {
            "epoch": 12, "global_step": 123456, "pytorch-lightning_version": "2.2.1",
            "state_dict": collections.OrderedDict((prefix + k, v) for k, v in sd.items()),
            "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 12}}}},
            "callbacks": {"ModelCheckpoint{'monitor': 'validation/macro_onset_f', 'mode': 'max'}": {
                "best_model_score": torch.tensor(0.71), "best_model_path": "/tmp/x.ckpt", "dirpath": "/tmp"}},
            "optimizer_states": [{"state": {0: {"step": torch.tensor(5.0), "exp_avg": torch.zeros_like(first)}},
                                  "param_groups": [{"lr": 0.01, "params": [0]}]}],
            "lr_schedulers": [{"base_lrs": [0.01], "last_epoch": 5, "_step_count": 6}],
            "hparams_name": "kwargs", "hyper_parameters": hp,
        }
        if hparams is None:
            del ckpt["hyper_parameters"]
        if extra:
            ckpt.update(extra)
        torch.save(ckpt, path)
    return str(path)


def make_checkpoint(path, dims: dict = SMALL, rms: bool = True, seed: int = 0, eos_bias: float = 0.0):
    sd = random_state_dict(dims, rms, seed, eos_bias)
    save_lightning_checkpoint(path, sd, make_hparams(dims, rms))
    return sd


def spec_param_count(dims: dict, rms: bool) -> Dict[str, int]:
    """Unique trainable-or-frozen parameters per component, as counted in spec 4.9
    (BN running statistics, the STFT window and rotary copies excluded)."""
    counts = collections.Counter()
    for key, (shape, kind) in manifest(dims, rms).items():
        if kind in ("buffer", "count", "window") or kind.startswith("freqs:"):
            continue
        n = int(np.prod(shape)) if shape else 1
        if key.startswith("pre_encoder"):
            counts["pre_encoder"] += n
        elif key.startswith("encoder"):
            counts["encoder"] += n
        elif key.startswith("pre_decoder"):
            counts["bridge"] += n
        elif key.startswith("decoder"):
            counts["decoder"] += n
        else:
            counts["embed_head"] += n
    return dict(counts)


# ---------------------------------------------------------------------------
# Plain functional reference (spec 4.1-4.5, 5), independent of the exporter
# ---------------------------------------------------------------------------


class Reference:
    """Functional YourMT3 forward from a raw upstream state_dict."""

    def __init__(self, sd: Dict[str, torch.Tensor], dims: dict, rms: bool):
        self.sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
        self.d = dims
        self.rms = rms

    # -- encoder pieces
    def norm(self, x, key):
        w = self.sd[key + ".weight"]
        if self.rms:
            return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))
        mu = x.mean(-1, keepdim=True)
        var = (x - mu).pow(2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + 1e-5) * w + self.sd[key + ".bias"]

    def bn(self, x, key):
        s = self.sd
        inv = 1.0 / torch.sqrt(s[key + ".running_var"] + 1e-5)
        return ((x - s[key + ".running_mean"].view(1, -1, 1, 1)) * inv.view(1, -1, 1, 1)
                * s[key + ".weight"].view(1, -1, 1, 1) + s[key + ".bias"].view(1, -1, 1, 1))

    def pre_encoder(self, spec):  # (B, T, F) -> (B, C, T, F/8)
        x = spec.unsqueeze(1)
        for i in range(self.d["n_pre"]):
            p = f"pre_encoder.0.blocks.{i}"
            a = torch.relu(self.bn(F.conv2d(x, self.sd[p + ".conv1.weight"], padding=1), p + ".bn1"))
            b = self.bn(F.conv2d(a, self.sd[p + ".conv2.weight"], padding=1), p + ".bn2")
            if i == 0:
                sc = F.conv2d(x, self.sd[p + ".shortcut.weight"], self.sd[p + ".shortcut.bias"])
            else:
                sc = x
            y = torch.relu(b + sc)
            x = 0.5 * (y[..., 0::2] + y[..., 1::2])
        return x

    @staticmethod
    def rope_q(q, freqs, positions):
        """q (..., L, dh): interleaved pairs (0,1), (2,3), ... rotated by p*f_j."""
        out = q.clone()
        for j, f in enumerate(freqs.tolist()):
            theta = positions.float() * torch.tensor(f, dtype=torch.float32)
            c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
            a, b = q[..., 2 * j:2 * j + 1], q[..., 2 * j + 1:2 * j + 2]
            out[..., 2 * j:2 * j + 1] = a * c - b * s
            out[..., 2 * j + 1:2 * j + 2] = b * c + a * s
        return out

    def attention(self, p, z, kv, freqs, positions):
        s, H = self.sd, self.d["heads"]
        q = z @ s[p + ".self.query.weight"].T + s[p + ".self.query.bias"]
        k = kv @ s[p + ".self.key.weight"].T + s[p + ".self.key.bias"]
        v = kv @ s[p + ".self.value.weight"].T + s[p + ".self.value.bias"]
        n, lq, dq = q.shape
        dh = dq // H
        q = q.view(n, lq, H, dh).transpose(1, 2)
        k = k.view(n, -1, H, dh).transpose(1, 2)
        v = v.view(n, -1, H, dh).transpose(1, 2)
        q = self.rope_q(q, freqs, positions)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        ctx = (att @ v).transpose(1, 2).reshape(n, lq, -1)
        return ctx @ s[p + ".output.dense.weight"].T + s[p + ".output.dense.bias"]

    def moe(self, p, x):
        s, E = self.sd, self.d["experts"]
        flat = x.reshape(-1, x.shape[-1])
        probs = torch.softmax(flat @ s[p + ".mlp.gate.weight"].T, dim=-1)
        w, idx = torch.topk(probs, 2, dim=-1)
        w = w / w.sum(-1, keepdim=True)
        out = torch.zeros_like(flat)
        for e in range(E):  # expert order, as upstream accumulates
            for slot in range(2):
                rows = (idx[:, slot] == e).nonzero().squeeze(1)
                if rows.numel() == 0:
                    continue
                u = flat[rows]
                h = F.silu(u @ s[p + f".mlp.experts.{e}.w1.weight"].T) * (u @ s[p + f".mlp.experts.{e}.gate.weight"].T)
                y = h @ s[p + f".mlp.experts.{e}.w2.weight"].T
                out.index_add_(0, rows, y * w[rows, slot:slot + 1])
        return out.view(x.shape)

    def layer(self, p, z, freqs, positions):
        h = self.norm(z, p + ".attention.self.layernorm1")
        u = z + self.attention(p + ".attention", h, h, freqs, positions)
        return u + self.moe(p, self.norm(u, p + ".layernorm"))

    def encoder(self, spec):  # -> (B, T, K, D)
        B, T, _ = spec.shape
        conv = self.pre_encoder(spec)  # (B, C, T, F')
        kv = conv.permute(0, 2, 1, 3).reshape(B * T, conv.shape[1], conv.shape[3])
        K = self.d["K"]
        z = self.sd["encoder.latent_array.latents"].unsqueeze(0).repeat(B * T, 1, 1)
        pix = torch.linspace(-1, 1, K)
        lang = torch.arange(T)
        f_sca = self.sd["encoder.rotary_emb_sca.freqs"]
        f_lat = self.sd["encoder.rotary_emb_latent.freqs"]
        f_tmp = self.sd["encoder.rotary_emb_temporal.freqs"]
        D = z.shape[-1]
        for i in range(self.d["blocks"]):
            p = f"encoder.blocks.{i}"
            sca = p + ".spectral_cross_attention"
            z = z + self.attention(sca, self.norm(z, sca + ".self.layernorm1"),
                                   self.norm(kv, sca + ".self.layernorm2"), f_sca, pix)
            for j in range(self.d["n_local"]):
                z = self.layer(f"{p}.local_transformer.{j}", z, f_lat, pix)
            z = z.view(B, T, K, D).permute(0, 2, 1, 3).reshape(B * K, T, D)
            for j in range(self.d["n_temporal"]):
                z = self.layer(f"{p}.temporal_transformer.{j}", z, f_tmp, lang)
            z = z.view(B, K, T, D).permute(0, 2, 1, 3).reshape(B * T, K, D)
        return z.view(B, T, K, D)

    def memory(self, spec):  # -> (B, C, T, dm)
        h = self.encoder(spec)
        B, T, K, D = h.shape
        C = self.d["C"]
        pairs = torch.cat([h[:, :, r::K // C, :] for r in range(K // C)], dim=-1)  # latent k = G*c + r
        return pairs.permute(0, 2, 1, 3) @ self.sd["pre_decoder.0.linear.weight"].T

    # -- decoder, uncached
    def t5norm(self, x, key):
        return self.sd[key] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def decoder_logits(self, tokens, mem, all_positions: bool = False):
        """tokens (N, S) at positions 0..S-1, mem (N, T, dm) -> logits of the last
        position (N, V), or of every position (N, S, V)."""
        s = self.sd
        N, S = tokens.shape
        H, dk = self.d["dheads"], self.d["dkv"]
        x = s["embed_tokens.weight"][tokens] + s["decoder.decoder.additive_pe.weight"][:S]
        causal = torch.ones(S, S, dtype=torch.bool).tril()
        for l in range(self.d["layers"]):
            b = f"decoder.decoder.block.{l}.layer"
            h = self.t5norm(x, f"{b}.0.layer_norm.weight")
            q, k, v = (h @ s[f"{b}.0.SelfAttention.{w}.weight"].T for w in "qkv")
            q, k, v = (t.view(N, S, H, dk).transpose(1, 2) for t in (q, k, v))
            sc = (q @ k.transpose(-1, -2)).masked_fill(~causal, float("-inf"))
            ctx = (torch.softmax(sc, -1) @ v).transpose(1, 2).reshape(N, S, H * dk)
            x = x + ctx @ s[f"{b}.0.SelfAttention.o.weight"].T
            h = self.t5norm(x, f"{b}.1.layer_norm.weight")
            q = (h @ s[f"{b}.1.EncDecAttention.q.weight"].T).view(N, S, H, dk).transpose(1, 2)
            k = (mem @ s[f"{b}.1.EncDecAttention.k.weight"].T).view(N, -1, H, dk).transpose(1, 2)
            v = (mem @ s[f"{b}.1.EncDecAttention.v.weight"].T).view(N, -1, H, dk).transpose(1, 2)
            ctx = (torch.softmax(q @ k.transpose(-1, -2), -1) @ v).transpose(1, 2).reshape(N, S, H * dk)
            x = x + ctx @ s[f"{b}.1.EncDecAttention.o.weight"].T
            h = self.t5norm(x, f"{b}.2.layer_norm.weight")
            a = h @ s[f"{b}.2.DenseReluDense.wi_0.weight"].T
            gelu = 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a.pow(3))))
            x = x + (gelu * (h @ s[f"{b}.2.DenseReluDense.wi_1.weight"].T)) @ s[f"{b}.2.DenseReluDense.wo.weight"].T
        h = self.t5norm(x if all_positions else x[:, -1], "decoder.decoder.final_layer_norm.weight")
        return (h * self.d["dm"] ** -0.5) @ s["lm_head.lm_head.weight"].T

    @torch.no_grad()
    def greedy(self, spec, max_len: int = 256, return_gaps: bool = False):
        """Uncached greedy decode (spec 5): every step recomputes the whole prefix.
        Rows that recorded EOS stop being computed (exact, rows are independent).
        Returns (B, C, L) int64 and, if asked, the top-2 logit gap of every
        generated token (N, L)."""
        mem = self.memory(spec)
        B, C, T, dm = mem.shape
        N = B * C
        mem = mem.reshape(N, T, dm)
        seqs = torch.zeros(N, 1, dtype=torch.long)  # BOS = PAD = 0
        out = torch.zeros(N, max_len, dtype=torch.long)
        gaps = torch.full((N, max_len), float("inf"))
        unfinished = torch.ones(N, dtype=torch.bool)
        L = max_len
        for step in range(max_len):
            rows = unfinished.nonzero().squeeze(1)
            logits = self.decoder_logits(seqs[rows], mem[rows])
            top2 = logits.topk(2, dim=-1).values
            gaps[rows, step] = top2[:, 0] - top2[:, 1]
            y = logits.argmax(-1)
            out[rows, step] = y
            new = torch.zeros(N, 1, dtype=torch.long)
            new[rows, 0] = y
            seqs = torch.cat([seqs, new], dim=1)
            if step > 0:  # the first generated token is never tested for EOS
                unfinished[rows] = y != 1
            if not bool(unfinished.any()):
                L = step + 1
                break
        res = out[:, :L].reshape(B, C, L)
        return (res, gaps[:, :L]) if return_gaps else res


def shape_eos(sd, dims: dict, slow: float, fast: float):
    """Make EOS depend on the position only, so that random-weight rows end at
    varied lengths: two residual dimensions are reserved for the sinusoidal
    positions (no token embedding and no layer writes into them) and the EOS row
    of the LM head reads them: ``slow`` weighs a slowly rising sine (rows end
    after tens to hundreds of steps), ``fast`` the cos(s) dimension (EOS likely
    at position 0, where it must be ignored, and near s = 6, 13, 19, 25, ...)."""
    d = dims["dm"]
    i_slow = int(round(d / 2 * math.log(200.0) / math.log(10000.0)))
    i_fast = d // 2
    dims_reserved = [i_slow, i_fast]
    sd["embed_tokens.weight"][:, dims_reserved] = 0.0
    for key in list(sd):
        if key.endswith(("SelfAttention.o.weight", "EncDecAttention.o.weight", "DenseReluDense.wo.weight")):
            sd[key][dims_reserved, :] = 0.0
    lm = sd["lm_head.lm_head.weight"]
    lm[1] = 0.0
    lm[1, i_slow] = slow
    lm[1, i_fast] = fast
    return sd
