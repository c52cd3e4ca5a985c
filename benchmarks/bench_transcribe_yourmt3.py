"""YourMT3 end to end: the native adapter vs an uncached plain-PyTorch greedy decode.

A full-size random-weight YourMT3 checkpoint (the Lightning ``last.ckpt``
layout of specs/yourmt3.md §4.8, built by tests/fixtures_yourmt3.py) is
exported once; then, on the same SECONDS of 16 kHz audio and the same token cap
per channel (random weights rarely emit EOS, so every row runs to the cap):

* ours: ``YourMT3Adapter.transcribe_stats`` — C audio/features, the exported
  TorchScript network through libtorch with a key/value cache and the C greedy
  loop (finished rows leave the batch), C notes + MIDI; batches of 8.
* baseline: the same modules in eager PyTorch (``export.yourmt3.build_model``),
  ``greedy_decode_uncached`` in batches of 8 (every step recomputes the whole
  prefix of every row, like upstream's decoder without its cache), on features
  from ``mt3_infer.compute_features``, then ``codec.tokens_to_midi``.

Each side runs in its own subprocess (peak RSS per side).  Prints seconds,
real-time factor (audio seconds / wall seconds), tokens per channel, the
network share, peak RSS and the ratio baseline / ours (> 1: ours faster), plus
whether both wrote the same MIDI bytes (a sanity check; random-weight logits
can meet near-ties).

Run: .venv/bin/python benchmarks/bench_transcribe_yourmt3.py [--seconds 30] [--tokens 32] [--threads N]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))


def audio_clip(seconds, seed=0, sr=16000):
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = 0.2 * np.sin(2 * np.pi * 440.0 * t) * (1 + np.sin(2 * np.pi * 0.7 * t)) + 0.05 * rng.standard_normal(n)
    return x.astype(np.float32)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def side_ours(args):
    from mt3_infer.adapters import YourMT3Adapter

    a = YourMT3Adapter(num_threads=args.threads)
    t0 = time.perf_counter()
    a.load_model(args.export, device="cpu")
    t_load = time.perf_counter() - t0
    a.transcribe_bytes(audio_clip(0.5, 1), 16000, max_new_tokens=2)  # one-time libtorch set-up
    audio = audio_clip(args.seconds)
    t0 = time.perf_counter()
    data, st = a.transcribe_stats(audio, 16000, max_new_tokens=args.tokens)
    wall = time.perf_counter() - t0
    with open(args.midi_out, "wb") as f:
        f.write(data)
    return {"wall": wall, "load": t_load, "network": st["t_network"], "features": st["t_features"],
            "segments": st["segments"], "tokens_per_channel": st["token_length"],
            "row_steps": st["row_steps"], "rss_mb": peak_rss_mb()}


def side_baseline(args):
    import torch

    from mt3_infer import codec, compute_features
    from mt3_infer.export import yourmt3 as Y

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    net, _ = Y.build_model(args.ckpt)
    net.eval()
    t_load = time.perf_counter() - t0
    with torch.no_grad():
        Y.greedy_decode_uncached(net, torch.from_numpy(
            compute_features(audio_clip(0.5, 1), 16000, preset="yourmt3")), 2)
    audio = audio_clip(args.seconds)
    t0 = time.perf_counter()
    feats = torch.from_numpy(compute_features(audio, 16000, preset="yourmt3"))
    t1 = time.perf_counter()
    parts = []
    with torch.no_grad():
        for i in range(0, feats.shape[0], 8):
            parts.append(Y.greedy_decode_uncached(net, feats[i:i + 8], args.tokens))
    t2 = time.perf_counter()
    L = max(p.shape[2] for p in parts)
    ids = np.zeros((feats.shape[0], 13, L), np.int64)
    s = 0
    for p in parts:
        ids[s:s + p.shape[0], :, :p.shape[2]] = p.numpy()
        s += p.shape[0]
    data, _ = codec.tokens_to_midi(ids, "yourmt3")
    wall = time.perf_counter() - t0
    with open(args.midi_out, "wb") as f:
        f.write(data)
    rows = int(ids.shape[0] * 13)
    return {"wall": wall, "load": t_load, "network": t2 - t1, "features": t1 - t0,
            "segments": int(feats.shape[0]), "tokens_per_channel": int(L),
            "row_steps": rows * int(L), "rss_mb": peak_rss_mb()}


def run_side(side, args, ckpt, export, midi_out):
    cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--ckpt", ckpt, "--export", export,
           "--midi-out", midi_out, "--seconds", str(args.seconds), "--tokens", str(args.tokens),
           "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{side} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tokens", type=int, default=32, help="token cap per channel (both sides)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--side", choices=["ours", "baseline"])
    p.add_argument("--ckpt")
    p.add_argument("--export")
    p.add_argument("--midi-out")
    args = p.parse_args()
    if args.side:
        res = side_ours(args) if args.side == "ours" else side_baseline(args)
        print(json.dumps(res))
        return

    import warnings

    import fixtures_yourmt3 as fx

    from mt3_infer.export import yourmt3 as Y

    warnings.simplefilter("ignore", DeprecationWarning)
    with tempfile.TemporaryDirectory() as d:
        ckpt = os.path.join(d, "last.ckpt")
        t0 = time.perf_counter()
        sd = fx.random_state_dict(fx.FULL, True, seed=1)
        fx.save_lightning_checkpoint(ckpt, sd, fx.make_hparams(fx.FULL, True))
        del sd
        t_build = time.perf_counter() - t0
        export = os.path.join(d, "last.mt3i.pt")
        t0 = time.perf_counter()
        Y.export_checkpoint(ckpt, export)
        t_export = time.perf_counter() - t0
        print(f"YourMT3 full size, random weights: checkpoint {os.path.getsize(ckpt) / 1e6:.0f} MB "
              f"(built in {t_build:.1f} s), export {t_export:.1f} s; {args.seconds:.0f} s of audio, "
              f"cap {args.tokens} tokens per channel, {args.threads} threads, CPU")
        res = {}
        for side in ("ours", "baseline"):
            res[side] = run_side(side, args, ckpt, export, os.path.join(d, side + ".mid"))
        same = open(os.path.join(d, "ours.mid"), "rb").read() == open(os.path.join(d, "baseline.mid"), "rb").read()
    print(f"{'side':<10}{'seconds':>9}{'RTF(x)':>8}{'network s':>11}{'features s':>12}{'tok/ch':>8}"
          f"{'row-steps':>11}{'seg':>5}{'peak RSS MB':>13}{'load s':>8}")
    for side in ("ours", "baseline"):
        r = res[side]
        print(f"{side:<10}{r['wall']:>9.2f}{args.seconds / r['wall']:>8.2f}{r['network']:>11.2f}"
              f"{r['features']:>12.3f}{r['tokens_per_channel']:>8d}{r['row_steps']:>11d}{r['segments']:>5d}"
              f"{r['rss_mb']:>13.0f}{r['load']:>8.2f}")
    o, b = res["ours"], res["baseline"]
    print(f"speed ratio baseline/ours: end to end {b['wall'] / o['wall']:.2f}x, "
          f"network {b['network'] / o['network']:.2f}x (tokens per channel: ours {o['tokens_per_channel']}, "
          f"baseline {b['tokens_per_channel']}); same MIDI bytes: {same}")


if __name__ == "__main__":
    main()
