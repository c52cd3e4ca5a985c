"""Random-weight ``mt3.pth`` files in the upstream layout.

The key/shape list is written here from the spec's manifest
(specs/mt3-family.md §3.3), independently of mt3_infer.export.mt3, so the
strict loader is checked against the spec and not against itself.  Tensors
are float32; the two aliased keys share storage with their twins as in the
real file (``torch.save`` of a state dict where ``encoder.embed_tokens`` *is*
``proj``).
"""
import json
import os

import numpy as np

FULL = dict(d_model=512, n_heads=6, d_kv=64, d_ff=1024, n_enc=8, n_dec=8, vocab=1536, input_dim=512)
SMALL = dict(d_model=64, n_heads=2, d_kv=16, d_ff=96, n_enc=2, n_dec=2, vocab=1536, input_dim=512)


# Small random models whose greedy outputs end with EOS in some rows and run
# to the cap in others (picked by looking at which tokens random rows emit).
EOS_MIX = [dict(seed=1, cross_gain=3.0, eos_after=1342, eos_gain=8.0),
           dict(seed=3, cross_gain=3.0, eos_after=332, eos_gain=8.0)]
# A random model that emits many note events (for end-to-end MIDI tests).
MUSICAL = dict(seed=3, cross_gain=3.0, eos_after=186, eos_gain=8.0, musical=0.2)
# Random models without the EOS tweak (rows run to the token cap).
NO_EOS = [dict(seed=1, cross_gain=3.0), dict(seed=4, cross_gain=3.0)]


def spec_manifest(dims=FULL):
    """[(key, shape)] in the order of the spec's table (193 keys at full size)."""
    d, a, f, v, x = (dims["d_model"], dims["n_heads"] * dims["d_kv"], dims["d_ff"],
                     dims["vocab"], dims["input_dim"])
    out = [("proj.weight", (d, x)), ("encoder.embed_tokens.weight", (d, x)),
           ("encoder.pos_emb.inv_freq", (d // 2,))]
    for i in range(dims["n_enc"]):
        p = f"encoder.block.{i}.layer."
        out += [(p + f"0.SelfAttention.{n}.weight", (a, d)) for n in "qkv"]
        out += [(p + "0.SelfAttention.o.weight", (d, a)), (p + "0.layer_norm.weight", (d,)),
                (p + "1.DenseReluDense.wi_0.weight", (f, d)),
                (p + "1.DenseReluDense.wi_1.weight", (f, d)),
                (p + "1.DenseReluDense.wo.weight", (d, f)), (p + "1.layer_norm.weight", (d,))]
    out += [("encoder.final_layer_norm.weight", (d,)), ("decoder_embed_tokens.weight", (v, d)),
            ("decoder.embed_tokens.weight", (v, d)), ("decoder.pos_emb.inv_freq", (d // 2,))]
    for i in range(dims["n_dec"]):
        p = f"decoder.block.{i}.layer."
        out += [(p + f"0.SelfAttention.{n}.weight", (a, d)) for n in "qkv"]
        out += [(p + "0.SelfAttention.o.weight", (d, a)), (p + "0.layer_norm.weight", (d,))]
        out += [(p + f"1.EncDecAttention.{n}.weight", (a, d)) for n in "qkv"]
        out += [(p + "1.EncDecAttention.o.weight", (d, a)), (p + "1.layer_norm.weight", (d,)),
                (p + "2.DenseReluDense.wi_0.weight", (f, d)),
                (p + "2.DenseReluDense.wi_1.weight", (f, d)),
                (p + "2.DenseReluDense.wo.weight", (d, f)), (p + "2.layer_norm.weight", (d,))]
    out += [("decoder.final_layer_norm.weight", (d,)), ("lm_head.weight", (v, d))]
    return out


def random_state(dims=SMALL, seed=0, eos_after=None, eos_gain=8.0, inv_freq_jitter=0.0,
                 cross_gain=1.0, musical=0.0):
    """A state dict of torch tensors with random weights.

    ``eos_after`` (a token id) replaces lm_head row 1 (EOS) by ``eos_gain``
    times that token's unit embedding, so that random models end some
    segments early (the presets below pick a token that about half of the
    rows emit); ``cross_gain`` scales the cross-attention output
    projections so that the tokens depend more on the input.
    ``inv_freq_jitter`` perturbs the stored positional frequencies (to prove
    the network uses the stored buffers)."""
    import torch

    rng = np.random.default_rng(seed)
    state = {}
    aliases = {"encoder.embed_tokens.weight": "proj.weight",
               "decoder.embed_tokens.weight": "decoder_embed_tokens.weight"}
    d = dims["d_model"]
    for key, shape in spec_manifest(dims):
        if key in aliases:
            continue
        if key.endswith("inv_freq"):
            val = 1.0 / (10000.0 ** (np.arange(0, d, 2, dtype=np.float64) / d))
            if inv_freq_jitter:
                val = val * (1.0 + inv_freq_jitter * rng.standard_normal(val.shape))
        elif key.endswith("layer_norm.weight"):
            val = 1.0 + 0.1 * rng.standard_normal(shape)
        elif key == "decoder_embed_tokens.weight":
            val = rng.standard_normal(shape)
        else:
            val = rng.standard_normal(shape) / np.sqrt(shape[1])
            if "EncDecAttention.o" in key:
                val = val * cross_gain
        state[key] = torch.from_numpy(np.ascontiguousarray(val, dtype=np.float32))
    if musical and dims["vocab"] == 1536:
        # Make note-producing ids likely (MT3 ids, specs/mt3-family.md §5):
        # shrink the output rows of everything but short shifts, pitches and
        # velocities, and point the tie row along the start token's embedding
        # so that most segments open with a tie (which closes the tie section;
        # without it no note starts).
        lm = state["lm_head.weight"]
        keep = np.zeros(1536, bool)
        keep[3:3 + 200] = True       # shifts 0..199 (10 ms steps)
        keep[1004:1132] = True       # pitches
        keep[1132:1134] = True       # velocity 0/1
        scale = np.where(keep, 1.0, musical).astype(np.float32)
        lm *= torch.from_numpy(scale)[:, None]
        emb0 = state["decoder_embed_tokens.weight"][0]
        lm[1134] = 8.0 * emb0 / emb0.norm()
    if eos_after is not None:
        # EOS row along the embedding of token `eos_after`: once a row has
        # emitted that token, EOS tends to win a step or so later.
        emb = state["decoder_embed_tokens.weight"][eos_after]
        state["lm_head.weight"][1] = eos_gain * emb / emb.norm()
    ordered = {}
    for key, _ in spec_manifest(dims):
        ordered[key] = state[aliases[key]] if key in aliases else state[key]
    return ordered


def kunato_config(dims=SMALL):
    """A config.json in kunato's T5Config form."""
    return {
        "d_ff": dims["d_ff"], "d_kv": dims["d_kv"], "d_model": dims["d_model"],
        "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1, "unk_token_id": 2,
        "feed_forward_proj": "gated-gelu", "layer_norm_epsilon": 1e-6,
        "num_heads": dims["n_heads"], "num_layers": dims["n_enc"],
        "num_decoder_layers": dims["n_dec"], "vocab_size": dims["vocab"],
        "tie_word_embeddings": False, "is_encoder_decoder": True,
    }


def write_checkpoint(folder, dims=SMALL, seed=0, config_json=True, name="mt3.pth", **kw):
    """Write ``folder/mt3.pth`` (and ``config.json``); returns the weight path."""
    import torch

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    torch.save(random_state(dims, seed, **kw), path)
    if config_json:
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(kunato_config(dims), f)
    return path


def random_features(n_segments, frames=256, bins=512, seed=0):
    """Log-mel-like random features, float32 [n_segments, frames, bins]."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n_segments, frames, bins)).astype(np.float32) * 2.0 - 6.0
    return np.ascontiguousarray(x)


# Top-2 logit gap below which two float32 evaluations of the same small model
# (cached/batched engine vs the uncached reference) may pick different tokens:
# each is within ~7e-4 of the exact logits (test_export_mt3._Rounding: the
# probabilistic float32 inner-product bound with lambda = 6 per product, the
# measured propagation gain <= 0.5), so they differ by <= 1.4e-3.
TIE_TOL = 1.5e-3


def reference_greedy(ref, x, cap, tie_tol=TIE_TOL):
    """The anchor's uncached greedy loop on the reference module, plus where
    each row first meets a near-tie (top-2 logit gap < tie_tol) — a place
    where float rounding of a differently ordered (cached, batched)
    computation may legitimately pick the other token.

    Returns (ids [B, n] without the start token, first_tie [B]: position of
    the first near-tie, or n when none)."""
    import torch

    xt = torch.from_numpy(np.ascontiguousarray(x))
    ids = ref.greedy(xt, cap)
    with torch.no_grad():
        logits = ref.decode_logits(ref.encode(xt), greedy_inputs(ids))
    gen = ids[:, 1:].numpy()
    return gen, first_near_tie(logits, gen, tie_tol)


def greedy_inputs(ids):
    """Decoder inputs that reproduce every generated position of ``ids``
    (start token first): all but the last column."""
    return ids[:, :-1] if ids.shape[1] > 1 else ids


def first_near_tie(logits, gen, tie_tol):
    """Per row, the first generated position (up to and including its EOS)
    whose top-2 logit gap is below ``tie_tol``; ``gen.shape[1]`` when none."""
    top2 = logits.topk(2, dim=-1).values
    gap = (top2[..., 0] - top2[..., 1]).numpy()
    n = gen.shape[1]
    first_tie = np.full(gen.shape[0], n)
    for b in range(gen.shape[0]):
        # only positions the row actually generated (before/at its EOS) count
        eos = np.nonzero(gen[b] == 1)[0]
        last = eos[0] + 1 if len(eos) else n
        ties = np.nonzero(gap[b, :last] < tie_tol)[0]
        if len(ties):
            first_tie[b] = ties[0]
    return first_tie


def assert_tokens_match(got, want, first_tie, min_clean):
    """Rows must agree entirely when the reference met no near-tie, and up to
    the first near-tie otherwise; at least ``min_clean`` rows must be clean."""
    got = np.asarray(got)
    assert got.shape[0] == want.shape[0]
    if (first_tie == want.shape[1]).all():
        assert got.shape == want.shape, (got.shape, want.shape)
    n = max(got.shape[1], want.shape[1])
    got = np.pad(got, ((0, 0), (0, n - got.shape[1])))
    want = np.pad(want, ((0, 0), (0, n - want.shape[1])))
    first_tie = np.where(first_tie >= want.shape[1], n, first_tie)
    clean = 0
    for b in range(want.shape[0]):
        k = first_tie[b]
        np.testing.assert_array_equal(got[b, :k], want[b, :k], err_msg=f"row {b} (first near-tie at {k})")
        if k == n:
            clean += 1
    assert clean >= min_clean, f"only {clean} rows without near-ties; need {min_clean}"
    return clean
