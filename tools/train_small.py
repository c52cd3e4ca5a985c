"""Train the bundled ``mt3_small`` network: MT3's architecture (T5
encoder-decoder over ``mt3_reference`` log-mel frames, the MT3 codec) with
smaller dimensions, on the synthetic shards of ``tools/synth/dataset.py``.

    python tools/train_small.py --data DATA --out RUN [--steps N] [--batch-size B]

CPU by default (``--device cuda`` where a GPU is lent).  Resumable: every
``--ckpt-every`` steps (and on Ctrl-C / SIGTERM) ``RUN/last.pt`` holds the
model, optimiser, step and data position; running the same command again
continues from it.  The batch order is a function of (``--seed``, step), so a
resumed run sees the same batches as an uninterrupted one.  ``RUN/log.csv``
is the learning curve (train loss, held-out loss and token accuracy).
``--export DIR`` writes ``DIR/mt3.pth`` + ``DIR/config.json`` (the upstream
MT3 layout the package's exporter reads) from ``RUN/last.pt`` and stops;
``--ship`` exports it into the package (``mt3_infer/models/``).

Loss: the decoder's token cross-entropy (what MT3 trains) plus, with weight
``--aux-weight``, a training-only frame loss on the encoder output: a linear
head predicts, per frame, the pitches sounding, the pitches starting and the
drum keys hit (384 sigmoid outputs, targets from the token rows).  It gives
the encoder a dense signal from the first step, so the decoder's
cross-attention has pitch features to align to; the head is not part of the
exported network, which stays exactly MT3's architecture.  (Without it, the
same recipe sat at a token loss of ~3.0 from step 600 to 1200: the decoder
learned the token grammar but not the audio.)

Exact recipe of the shipped model: ``tools/README.md``.
"""
from __future__ import annotations

import argparse
import csv
import glob
import json
import math
import os
import signal
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from mt3_infer import _core  # noqa: E402
from mt3_infer.export.mt3 import MT3, MT3Config  # noqa: E402
from synth import tokens  # noqa: E402

#: The shipped dimensions (23.4 MB of float32 weights, under the 25 MB budget).
SMALL = dict(d_model=192, n_heads=3, d_kv=64, d_ff=768, n_enc_layers=5, n_dec_layers=3)
TINY = dict(d_model=32, n_heads=2, d_kv=16, d_ff=64, n_enc_layers=1, n_dec_layers=1)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------

class Shards:
    """All segments of a dataset directory, memory-mapped."""

    def __init__(self, root: str):
        dirs = sorted(d for d in glob.glob(os.path.join(root, "shard_*"))
                      if os.path.exists(os.path.join(d, "shard.json")))
        if not dirs:
            raise SystemExit(f"no complete shard_*/ under {root!r}: run tools/synth/dataset.py first")
        self.feats, self.toks, self.offs, self.segs, self.index = [], [], [], [], []
        for s, d in enumerate(dirs):
            f = np.load(os.path.join(d, "features.npy"), mmap_mode="r")
            self.feats.append(f)
            self.toks.append(np.load(os.path.join(d, "tokens.npy")))
            self.offs.append(np.load(os.path.join(d, "offsets.npy")))
            self.segs.append(np.load(os.path.join(d, "segments.npy"))["segment"])
            self.index += [(s, i) for i in range(f.shape[0])]
        self.lengths = np.array([self.offs[s][i + 1] - self.offs[s][i] for s, i in self.index])
        # ms from segment i's exact audio start (2.048 s x i) to its token start (floored to 10 ms)
        n_seg = int(max(int(g.max()) for g in self.segs)) + 1
        self.shift_ms = tokens.segment_steps(n_seg) * 10.0 - 2048.0 * np.arange(n_seg)

    def __len__(self):
        return len(self.index)

    def batch(self, ids, frame_targets=False):
        """(features float32 (B,256,512), decoder input (B,L), targets (B,L)
        with -100 pads[, frame targets (B,256,AUX_DIM)])."""
        rows = [self.index[i] for i in ids]
        x = np.stack([self.feats[s][i] for s, i in rows]).astype(np.float32)
        L = int(max(self.offs[s][i + 1] - self.offs[s][i] for s, i in rows))
        inp = np.zeros((len(rows), L), np.int64)
        tgt = np.full((len(rows), L), -100, np.int64)
        aux = np.zeros((len(rows), x.shape[1], AUX_DIM), np.float32) if frame_targets else None
        tau = np.full((len(rows), L), np.nan, np.float32) if frame_targets else None
        for b, (s, i) in enumerate(rows):
            t = self.toks[s][self.offs[s][i]:self.offs[s][i + 1]].astype(np.int64)
            tgt[b, : len(t)] = t
            inp[b, 1: len(t)] = t[:-1]  # start token 0, then the targets shifted right
            if frame_targets:
                tau[b, : len(t)] = frame_labels(t, float(self.shift_ms[self.segs[s][i]]), aux[b])
        out = (torch.from_numpy(x), torch.from_numpy(inp), torch.from_numpy(tgt))
        return out + (torch.from_numpy(aux), torch.from_numpy(tau)) if frame_targets else out


# Auxiliary frame targets (training only; the head is not part of the shipped
# network): per encoder frame, which pitches sound at the window centre, which
# pitches and which drum keys start near it.
AUX_DIM = 3 * 128
_EV = {name: i for i, name in enumerate(_core.EVENT_TYPE_NAMES)}  # the C codec's event types
_EV_SHIFT, _EV_PITCH, _EV_VELOCITY, _EV_TIE, _EV_DRUM = (
    _EV["shift"], _EV["pitch"], _EV["velocity"], _EV["tie"], _EV["drum"])
FRAME_MS, WINDOW_MS = 8.0, 128.0


def frame_labels(row: np.ndarray, shift_ms: float, out: np.ndarray) -> np.ndarray:
    """Fill ``out`` (frames, AUX_DIM) from one token row of segment i.

    Event times are steps from the segment's start floored to 10 ms; frame t
    of the segment's features covers audio [8t, 8t + 128) ms from 2.048 s x
    i, so an event at step v lies at 10 v + ``shift_ms`` on that axis, with
    ``shift_ms`` = floored start - exact start (Shards.shift_ms).  Active: onset <= frame centre < offset (notes of
    the tie section from 0).  Onsets: frames whose centre is within 12 ms.

    Returns, per token of the row, the encoder frame whose window centre is
    the time of the event that token belongs to (NaN for EOS): what the
    guided-attention loss pulls the decoder's cross-attention towards."""
    types, values = _core.vocab_decode("mt3", row)
    frames = out.shape[0]
    centres = np.arange(frames) * FRAME_MS + WINDOW_MS / 2
    now, vel, in_tie = 0.0, 1, True
    open_at = {}
    when = np.full(len(row), np.nan, np.float32)
    for k, (ty, v) in enumerate(zip(types.tolist(), values.tolist())):
        if ty == _EV_SHIFT:
            now = 10.0 * v + shift_ms
        if row[k] != 1:  # not EOS
            when[k] = (max(now, 0.0) - WINDOW_MS / 2) / FRAME_MS
        if ty == _EV_TIE:
            in_tie = False
        elif ty == _EV_VELOCITY:
            vel = v
        elif ty == _EV_PITCH:
            if in_tie:
                open_at[v] = -1e9
            elif vel > 0:
                open_at[v] = now
                out[np.abs(centres - now) <= 12.0, 128 + v] = 1.0
            elif v in open_at:
                out[(centres >= open_at.pop(v)) & (centres < now), v] = 1.0
        elif ty == _EV_DRUM and not in_tie:
            out[np.abs(centres - now) <= 12.0, 256 + v] = 1.0
    for p, start in open_at.items():
        out[centres >= start, p] = 1.0
    return when


def record_cross_attention(model: MT3) -> list:
    """The decoder's cross-attention modules, set to keep their softmax
    weights (``.last_w``, (B, heads, tokens, frames)) for the guided-attention loss."""
    mods = [blk.layer[1].EncDecAttention for blk in model.decoder.block]
    for att in mods:
        att.keep_weights = True
    return mods


def guided_attention_loss(mods: list, tau: "torch.Tensor", sigma: float = 6.0) -> "torch.Tensor":
    """Mean attention mass away from each token's event frame (Tachibana et
    al. 2017's guided attention): sum_j w_ij (1 - exp(-(j - tau_i)^2 / 2 sigma^2))."""
    frames = mods[0].last_w.shape[-1]
    j = torch.arange(frames, dtype=torch.float32, device=tau.device)
    valid = ~torch.isnan(tau)
    t = torch.where(valid, tau, torch.zeros_like(tau))
    g = 1.0 - torch.exp(-((j[None, None, :] - t[:, :, None]) ** 2) / (2 * sigma * sigma))  # B,L,F
    g = g * valid[:, :, None]
    total = 0.0
    for m in mods:
        total = total + (m.last_w.float() * g[:, None]).sum(-1).sum(1)  # B,L summed over heads
    denom = valid.sum() * len(mods) * mods[0].last_w.shape[1]
    return total.sum() / denom.clamp(min=1)


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int):
    """Batches of one epoch: a seeded permutation, sorted by length within
    windows of 64 batches (little padding), windows' batches shuffled."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, epoch]))
    perm = rng.permutation(len(lengths))
    win = batch_size * 64
    out = []
    for w in range(0, len(perm), win):
        chunk = perm[w: w + win]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [chunk[b: b + batch_size] for b in range(0, len(chunk) - batch_size + 1, batch_size)]
    order = rng.permutation(len(out))
    return [out[i] for i in order]


# ---------------------------------------------------------------------------
# model
# ---------------------------------------------------------------------------

def t5_init(model: MT3, seed: int) -> None:
    """Mesh-TensorFlow T5 initialisation (no 1/sqrt(d_kv) in attention, so q
    is scaled down instead)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.cfg
    d, a, f = cfg.d_model, cfg.inner, cfg.d_ff
    for name, p in model.named_parameters():
        if p.dim() == 1:
            torch.nn.init.ones_(p)
            continue
        if name.endswith((".q.weight",)):
            std = (d * cfg.d_kv) ** -0.5
        elif name.endswith((".k.weight", ".v.weight", "wi_0.weight", "wi_1.weight", "lm_head.weight")):
            std = d ** -0.5
        elif name.endswith(".o.weight"):
            std = a ** -0.5
        elif name.endswith("wo.weight"):
            std = f ** -0.5
        elif name == "proj.weight":
            std = cfg.input_dim ** -0.5 * 0.25  # log-mel inputs are O(5)
        else:  # decoder embedding
            std = 1.0
        with torch.no_grad():
            p.normal_(0.0, std, generator=g)


def build_model(dims: dict, seed: int) -> MT3:
    model = MT3(MT3Config(**dims))
    t5_init(model, seed)
    return model


def init_weights(model: MT3, artifact: str, dims: dict, run_dir: str) -> None:
    """Load an exported network's weights into ``model`` (a warm start):
    ``bundled`` names the shipped file.  The export is inverted exactly
    (reference_from_artifact); its dimensions must be ``dims``.  What it
    started from (file, sha256 and, for the shipped file, its training
    record) goes to ``RUN/init.json`` for the record ``--ship`` writes."""
    from mt3_infer.export.common import sha256_file
    from mt3_infer.export.mt3 import reference_from_artifact

    path = _bundled_path() if artifact == "bundled" else artifact
    src = reference_from_artifact(path)
    got = {k: getattr(src.cfg, k) for k in dims}
    if got != dims:
        raise SystemExit(f"--init-from {path}: dims {got}, not {dims}")
    model.load_state_dict(src.state_dict())
    sha = sha256_file(path)
    info = {"file": os.path.basename(path), "sha256": sha}
    record_path = _record_path()
    if artifact == "bundled" and os.path.exists(record_path):
        with open(record_path) as fh:
            old = json.load(fh)
        if old.get("sha256") == sha:
            info["training"] = old.get("training")
            info["accuracy"] = old.get("accuracy")
    tmp = os.path.join(run_dir, "init.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(info, fh, indent=1)
    os.replace(tmp, os.path.join(run_dir, "init.json"))
    print(f"initialised from {path} (sha256 {sha[:12]}…)", flush=True)


def loss_fn(model: MT3, x, inp, tgt, aux_head=None, frames=None, aux_weight=0.0):
    """Token CE (+ the frame loss when ``aux_weight``): (loss, logits, aux or None)."""
    enc = model.encode(x)
    logits = model.decode_logits(enc, inp)
    loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), tgt.reshape(-1),
                           ignore_index=-100)
    if aux_head is not None and aux_weight > 0:
        # summed over the 384 labels, mean over frames: per frame, the same scale as one token's CE
        aux = F.binary_cross_entropy_with_logits(aux_head(enc).float(), frames, reduction="sum") \
            / (frames.shape[0] * frames.shape[1])
        return loss, logits, aux
    return loss, logits, None


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.no_grad()
def evaluate(model, data: Shards, ids, bs, autocast):
    model.eval()
    tot, n, correct = 0.0, 0, 0
    for b in range(0, len(ids), bs):
        x, inp, tgt = data.batch(ids[b: b + bs])
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
            loss, logits, _ = loss_fn(model, x, inp, tgt)
        m = tgt != -100
        tot += float(loss) * int(m.sum())
        n += int(m.sum())
        correct += int(((logits.argmax(-1) == tgt) & m).sum())
    model.train()
    return tot / max(1, n), correct / max(1, n)


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

def export_upstream(model: MT3, out_dir: str) -> str:
    """``out_dir/mt3.pth`` (every key of the upstream layout, aliases
    included) and ``out_dir/config.json`` (T5Config keys)."""
    os.makedirs(out_dir, exist_ok=True)
    cfg = model.cfg
    state = {k: v.detach().float().contiguous().clone() for k, v in model.state_dict().items()}
    tmp = os.path.join(out_dir, "mt3.pth.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(out_dir, "mt3.pth"))
    conf = {"d_model": cfg.d_model, "num_heads": cfg.n_heads, "d_kv": cfg.d_kv, "d_ff": cfg.d_ff,
            "num_layers": cfg.n_enc_layers, "num_decoder_layers": cfg.n_dec_layers,
            "vocab_size": cfg.vocab_size, "layer_norm_epsilon": cfg.eps,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
            "model_type": "t5", "is_encoder_decoder": True}
    with open(os.path.join(out_dir, "config.json"), "w") as fh:
        json.dump(conf, fh, indent=1)
    return out_dir


def _models_dir() -> str:
    return os.path.join(os.path.dirname(HERE), "mt3_infer", "models")


def _bundled_path() -> str:
    return os.path.join(_models_dir(), "mt3_small.mt3i.pt")


def _record_path() -> str:
    return os.path.join(_models_dir(), "mt3_small.json")


def install_bundled(model: MT3) -> tuple:
    """Export ``model`` (through the upstream layout, as users' checkpoints
    go) to the package's bundled file, atomically; returns (path, sha256, size)."""
    import tempfile

    from mt3_infer.export.common import sha256_file
    from mt3_infer.export.mt3 import export_mt3

    os.makedirs(_models_dir(), exist_ok=True)
    target = _bundled_path()
    with tempfile.TemporaryDirectory() as tmp:
        export_upstream(model, tmp)
        export_mt3(os.path.join(tmp, "mt3.pth"), target + ".tmp")
    os.chmod(target + ".tmp", 0o644)
    os.replace(target + ".tmp", target)
    return target, sha256_file(target), os.path.getsize(target)


def write_record(record: dict) -> None:
    tmp = _record_path() + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, _record_path())


def reexport_bundled() -> str:
    """Re-export the shipped network with this exporter (same weights, bit for
    bit: reference_from_artifact inverts the export) and update the file's
    sha256/size in its record; training fields are kept."""
    from mt3_infer.export.mt3 import reference_from_artifact

    path = _bundled_path()
    model = reference_from_artifact(path)
    with open(_record_path()) as fh:
        record = json.load(fh)
    _, sha, size = install_bundled(model)
    record["sha256"], record["size"] = sha, size
    write_record(record)
    return f"re-exported {path} ({size:,} bytes, sha256 {sha})"


def ship(model: MT3, run_dir: str, step: int, train_args: dict) -> str:
    """Export ``model`` to the package's bundled file and write its record."""
    target, sha, size = install_bundled(model)
    wall = None
    log_path = os.path.join(run_dir, "log.csv")
    if os.path.exists(log_path):
        with open(log_path) as fh:
            rows = list(csv.DictReader(fh))
        wall = float(rows[-1]["wall_s"]) if rows else None
    data_info = {}
    if train_args.get("data") and os.path.exists(os.path.join(train_args["data"], "dataset.json")):
        with open(os.path.join(train_args["data"], "dataset.json")) as fh:
            data_info = json.load(fh)
    record = {
        "file": os.path.basename(target), "sha256": sha, "size": size,
        "dims": SMALL if model.cfg.d_model == SMALL["d_model"] else None,
        "parameters": sum(p.numel() for p in model.parameters()),
        "training": {"steps": step, "batch_size": train_args.get("batch_size"),
                     "lr": train_args.get("lr"), "warmup": train_args.get("warmup"),
                     "seed": train_args.get("seed"), "precision": train_args.get("precision"),
                     "wall_s_logged": wall,
                     "data": {k: data_info.get(k) for k in ("command", "clips", "seed", "segments",
                                                             "audio_hours")}},
    }
    init_path = os.path.join(run_dir, "init.json")
    if os.path.exists(init_path):  # a warm start (--init-from): what this run continued
        with open(init_path) as fh:
            record["training"]["init_from"] = json.load(fh)
    write_record(record)
    return f"shipped step {step}: {target} ({record['size']:,} bytes, sha256 {record['sha256']})"


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="dataset directory (tools/synth/dataset.py --out)")
    ap.add_argument("--val-data", help="held-out dataset directory (loss / accuracy in log.csv)")
    ap.add_argument("--out", help="run directory (checkpoints, log.csv)")
    ap.add_argument("--dims", default="small", choices=("small", "tiny"))
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--aux-weight", type=float, default=1.0,
                    help="weight of the training-only frame loss on the encoder (0 = off)")
    ap.add_argument("--guide-weight", type=float, default=1.0,
                    help="weight of the training-only guided cross-attention loss (0 = off)")
    ap.add_argument("--guide-from", type=int, default=0,
                    help="first step with the guided-attention loss (the shipped run: see tools/README.md)")
    ap.add_argument("--stop-at", type=int, default=0,
                    help="stop (and checkpoint) at this step, keeping the --steps schedule")
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                    help="bf16 autocast (fp32 master weights); auto = bf16 where the CPU has "
                         "native bf16 (AVX512-BF16/AMX) or on CUDA")
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--max-minutes", type=float, default=0, help="stop (and checkpoint) after this long")
    ap.add_argument("--init-from", metavar="ARTIFACT",
                    help="start a new run (no RUN/last.pt yet) from the weights of an exported network "
                         "(`bundled` = the shipped mt3_small.mt3i.pt) instead of a fresh T5 init; the "
                         "optimiser, the schedule and the frame head start fresh")
    ap.add_argument("--export", metavar="DIR", help="write DIR/mt3.pth + config.json from RUN/last.pt and stop")
    ap.add_argument("--ship", action="store_true",
                    help="export RUN/last.pt into the package (mt3_infer/models/mt3_small.mt3i.pt + "
                         ".json with its sha256, size and the training record) and stop")
    ap.add_argument("--reexport-bundled", action="store_true",
                    help="re-export the shipped mt3_infer/models/mt3_small.mt3i.pt with this exporter "
                         "(same weights; after an exporter change) and update its record's sha256/size")
    a = ap.parse_args(argv)
    if a.reexport_bundled:
        print(reexport_bundled())
        return 0
    if not a.out:
        ap.error("--out is required")

    dims = SMALL if a.dims == "small" else TINY
    os.makedirs(a.out, exist_ok=True)
    last = os.path.join(a.out, "last.pt")
    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    model = build_model(dims, a.seed).to(device)
    # training-only frame head on the encoder output (dropped at export)
    aux_head = torch.nn.Linear(dims["d_model"], AUX_DIM).to(device)
    params = list(model.parameters()) + (list(aux_head.parameters()) if a.aux_weight > 0 else [])
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01)
    step = 0
    ck = {}
    if os.path.exists(last):
        ck = torch.load(last, map_location=device, weights_only=False)
        if ck["dims"] != dims:
            raise SystemExit(f"{last} has dims {ck['dims']}, not {dims}: use another --out")
        model.load_state_dict(ck["model"])
        if "aux" in ck:
            aux_head.load_state_dict(ck["aux"])
        opt.load_state_dict(ck["opt"])
        step = int(ck["step"])
        print(f"resumed from {last} at step {step}", flush=True)
    elif a.init_from:
        init_weights(model, a.init_from, dims, a.out)
    if a.export:
        export_upstream(model.cpu(), a.export)
        print(f"wrote {a.export}/mt3.pth and config.json (step {step})")
        return 0
    if a.ship:
        if not os.path.exists(last):
            raise SystemExit(f"nothing to ship: {last} does not exist")
        print(ship(model.cpu(), a.out, step, ck.get("args", {})))
        return 0
    if not a.data:
        ap.error("--data is required for training")

    if a.precision == "auto":
        bf16 = device.type == "cuda" or bool(getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported",
                                                     lambda: False)())
    else:
        bf16 = a.precision == "bf16"
    data = Shards(a.data)
    val = Shards(a.val_data) if a.val_data else None
    val_ids = np.arange(min(len(val), 512)) if val else None
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{len(data)} training segments, model {n_params / 1e6:.2f} M parameters {dims}, "
          f"bf16 autocast {bf16}, threads {torch.get_num_threads()}", flush=True)

    stop = {"flag": False}

    def on_signal(signum, frame):
        stop["flag"] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def save():
        tmp = last + ".tmp"
        torch.save({"model": model.state_dict(), "aux": aux_head.state_dict(), "opt": opt.state_dict(),
                    "step": step, "dims": dims, "args": vars(a)}, tmp)
        os.replace(tmp, last)

    log_path = os.path.join(a.out, "log.csv")
    header = ["step", "wall_s", "lr", "train_loss", "aux_loss", "guide_loss", "val_loss",
              "val_token_acc", "segments_per_s"]
    if os.path.exists(log_path):
        with open(log_path) as fh:
            old = fh.readline().strip().split(",")
        if old != header:  # a log of an older version of this script: keep it beside
            k = 1
            while os.path.exists(os.path.join(a.out, f"log_part{k}.csv")):
                k += 1
            os.replace(log_path, os.path.join(a.out, f"log_part{k}.csv"))
    new_log = not os.path.exists(log_path)
    logf = open(log_path, "a", newline="")
    log = csv.writer(logf)
    if new_log:
        log.writerow(header)
    per_epoch = len(data) // a.batch_size
    t_start = time.time()
    t_log, run_loss, run_aux, run_guide, run_n = time.time(), 0.0, 0.0, 0.0, 0
    epoch_cache = {}
    guided = record_cross_attention(model)
    model.train()
    while step < a.steps and not stop["flag"] and not (a.stop_at and step >= a.stop_at):
        epoch, within = divmod(step, per_epoch)
        if epoch not in epoch_cache:
            epoch_cache = {epoch: epoch_batches(data.lengths, a.batch_size, a.seed, epoch)}
        use_guide = a.guide_weight > 0 and step >= a.guide_from
        use_aux = a.aux_weight > 0 or use_guide
        batch = data.batch(epoch_cache[epoch][within], frame_targets=use_aux)
        x, inp, tgt = (t.to(device) for t in batch[:3])
        frames = batch[3].to(device) if use_aux else None
        tau = batch[4].to(device) if use_aux else None
        for g in opt.param_groups:
            g["lr"] = lr_at(step, a.lr, a.warmup, a.steps)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss, _, aux = loss_fn(model, x, inp, tgt, aux_head, frames, a.aux_weight)
        total = loss + a.aux_weight * aux if aux is not None else loss
        guide = guided_attention_loss(guided, tau) if use_guide else None
        if guide is not None:
            total = total + a.guide_weight * guide
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        run_loss += float(loss.detach())
        run_aux += float(aux.detach()) if aux is not None else 0.0
        run_guide += float(guide.detach()) if guide is not None else 0.0
        run_n += 1
        if step % a.log_every == 0 or step == a.steps:
            vl, va = ("", "")
            if val is not None and (step % a.eval_every == 0 or step == a.steps):
                vl, va = evaluate(model, val, val_ids, a.batch_size, bf16)
                vl, va = round(vl, 4), round(va, 4)
            rate = run_n * a.batch_size / (time.time() - t_log)
            log.writerow([step, round(time.time() - t_start, 1), f"{lr_at(step, a.lr, a.warmup, a.steps):.2e}",
                          round(run_loss / run_n, 4), round(run_aux / run_n, 4), round(run_guide / run_n, 4),
                          vl, va, round(rate, 1)])
            logf.flush()
            print(f"step {step}  loss {run_loss / run_n:.4f}  aux {run_aux / run_n:.4f}  "
                  f"guide {run_guide / run_n:.4f}  val {vl} acc {va}  "
                  f"{rate:.1f} seg/s", flush=True)
            t_log, run_loss, run_aux, run_guide, run_n = time.time(), 0.0, 0.0, 0.0, 0
        if step % a.ckpt_every == 0:
            save()
        if a.max_minutes and time.time() - t_start > a.max_minutes * 60:
            break
    save()
    logf.close()
    print(f"stopped at step {step}; checkpoint {last}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
