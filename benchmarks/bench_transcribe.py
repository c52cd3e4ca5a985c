"""End-to-end transcription speed of the two MT3 adapters vs the anchor's algorithm.

    .venv/bin/python benchmarks/bench_transcribe.py [--seconds 30] [--tokens 256]
        [--threads N] [--baseline-segments K|all|0] [--workdir DIR] [--repeat R]

What it does, in one run, on this machine:

1. builds a full-size random-weight ``mt3.pth`` in the upstream layout (193
   keys, 45.9 M parameters; kept in --workdir) and exports it once;
2. transcribes --seconds of synthetic audio with ``MRMT3Adapter`` and
   ``MT3PyTorchAdapter`` (each in a fresh child process that never imports
   torch, so its peak RSS is the adapter's own), with every segment capped
   at --tokens tokens (random weights rarely emit EOS, so every segment runs
   to the cap; both sides use the same cap);
3. runs the anchor's algorithm on the same weights, features and cap: the
   plain-PyTorch module, no KV cache, the whole decoder (cross-attention
   projections included) re-run over the full prefix for every token —
   MR-MT3 batches every segment, MT3-PyTorch one segment at a time.  With
   --baseline-segments K it runs on the first K segments and scales to all
   (cost is linear in segments; labelled as such);
4. checks that the tokens agree on the baseline's segments;
5. measures this machine's fp32 GEMM peak (torch, same thread count) and
   reports the achieved fraction of the compute-bound limit of
   specs/performance-anchors.md §5.7: FLOPs of the work done (§5.2-5.4:
   encoder, cross K/V once, cached decoder steps) divided by 100 and 50
   GFLOP/s (the spec's 2-core range) and by the measured peak.

Every speed figure is printed with its tokens per segment.
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
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

PRESET = {"mr_mt3": "mr_mt3", "mt3_pytorch": "mt3_pytorch"}
FRAMES = {"mr_mt3": 256, "mt3_pytorch": 257}


def synth_audio(seconds, sr=16000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = np.zeros_like(t)
    for k, f in enumerate((220.0, 277.2, 329.6, 440.0, 659.3)):
        x += 0.08 * np.sin(2 * np.pi * f * t + k) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.3 + 0.1 * k) * t))
    x += 0.01 * rng.standard_normal(len(t))
    return x.astype(np.float32)


# ---------------------------------------------------------------------------
# FLOP accounting (specs/performance-anchors.md §5, generalised to T frames)
# ---------------------------------------------------------------------------
D, H, DK, F, V, L = 512, 6, 64, 1024, 1536, 8
A = H * DK


def encoder_flops(T):
    per_layer = 2 * T * D * 3 * A + 2 * 2 * H * T * T * DK + 2 * T * A * D + 2 * T * 3 * D * F
    return 2 * T * D * D + L * per_layer


def cross_kv_flops(T):
    return L * 2 * T * D * 2 * A


def decoder_token_flops(t, T):
    """One cached step at position t (attends to t + 1 cached keys)."""
    per_layer = (2 * D * 3 * A + 2 * 2 * A * (t + 1) + 2 * A * D + 2 * D * A + 2 * 2 * A * T
                 + 2 * A * D + 2 * 3 * D * F)
    return L * per_layer + 2 * D * V


def work_flops(n_segments, tokens_per_segment, T):
    dec = sum(decoder_token_flops(t, T) for t in range(int(round(tokens_per_segment))))
    return n_segments * (encoder_flops(T) + cross_kv_flops(T) + dec)


def gemm_peak(threads):
    import torch

    torch.set_num_threads(threads)
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t) / 1e9)
    return best


# ---------------------------------------------------------------------------
# child: one adapter, fresh process, no torch
# ---------------------------------------------------------------------------

def child(args):
    from mt3_infer.adapters import MRMT3Adapter, MT3PyTorchAdapter

    audio = np.load(args.audio)
    cls = MRMT3Adapter if args.child == "mr_mt3" else MT3PyTorchAdapter
    t = time.perf_counter()
    adapter = cls(num_threads=args.threads)
    adapter.load_model(args.export, device="cpu")
    t_load = time.perf_counter() - t
    adapter.transcribe_bytes(audio[:16000], 16000, max_new_tokens=4)  # warm-up
    runs = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        c = time.process_time()
        data, stats = adapter.transcribe_stats(audio, 16000, max_new_tokens=args.tokens)
        stats["seconds"] = time.perf_counter() - t
        stats["cpu_seconds"] = time.process_time() - c
        stats["midi_bytes"] = len(data)
        runs.append(stats)
    best = min(runs, key=lambda s: s["seconds"])
    best["load_seconds"] = t_load
    best["all_seconds"] = [r["seconds"] for r in runs]
    best["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    best["torch_imported"] = "torch" in sys.modules
    print("RESULT " + json.dumps(best))


def run_child(name, export, audio_path, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--export", export,
           "--audio", audio_path, "--tokens", str(args.tokens), "--threads", str(args.threads),
           "--repeat", str(args.repeat)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {name} failed:\n{out.stdout}\n{out.stderr}")


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--tokens", type=int, default=256, help="max_new_tokens per segment (both sides)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--baseline-segments", default="2",
                   help="segments the uncached baseline runs on (scaled to all); 'all' or 0 (skip)")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mt3_infer_bench"))
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)

    # Both sides run with the OpenMP spin setting the engine applies by
    # default (see csrc/core/engine_loader.c); torch reads it when it loads.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ["GOMP_SPINCOUNT"] = "10000"
    import torch

    import fixtures_mt3 as fx
    from mt3_infer import _engine, compute_features
    from mt3_infer.export import mt3 as M

    torch.set_num_threads(args.threads)
    os.makedirs(args.workdir, exist_ok=True)
    ckpt = os.path.join(args.workdir, "mt3.pth")
    export = os.path.join(args.workdir, "mt3.mt3i.pt")
    print(f"load average at start: {os.getloadavg()}; threads {args.threads}; "
          f"audio {args.seconds:g} s; cap {args.tokens} tokens/segment")
    if not os.path.exists(ckpt):
        fx.write_checkpoint(args.workdir, fx.FULL, seed=0, config_json=False)
    t = time.perf_counter()
    M.export_mt3(ckpt, export)
    print(f"export of the full-size checkpoint: {time.perf_counter() - t:.1f} s")
    audio = synth_audio(args.seconds)
    audio_path = os.path.join(args.workdir, "audio.npy")
    np.save(audio_path, audio)

    peak = gemm_peak(args.threads)
    print(f"fp32 GEMM peak (2048^3, torch, {args.threads} threads): {peak:.1f} GFLOP/s")

    results = {}
    for name in ("mr_mt3", "mt3_pytorch"):
        r = run_child(name, export, audio_path, args)
        results[name] = r
        segs = r["segments"]
        tps = r["row_steps"] / segs
        T = FRAMES[name]
        flops = work_flops(segs, tps, T)
        r["tokens_per_segment"] = tps
        r["work_gflop"] = flops / 1e9
        print(f"\n== {name}: {segs} segments, {tps:.1f} tokens/segment")
        print(f"   total {r['seconds']:.2f} s wall, {r['cpu_seconds']:.2f} s CPU over {args.threads} "
              f"thread(s) (load {r['load_seconds']:.2f} s, not included) -> "
              f"real-time factor {args.seconds / r['seconds']:.2f}x ({tps:.0f} tokens/segment)")
        print(f"   stages: audio {r['t_audio']:.3f} s, features {r['t_features']:.3f} s, "
              f"network {r['t_network']:.2f} s, notes+MIDI {r['t_notes']:.4f} s")
        print(f"   {r['row_steps'] / r['seconds']:.1f} tokens/s ({tps:.0f} tokens/segment); "
              f"peak RSS {r['peak_rss_mb']:.0f} MB; torch imported by the adapter process: "
              f"{r['torch_imported']}")
        for g, label in ((100.0, "spec 100 GFLOP/s"), (50.0, "spec 50 GFLOP/s"), (peak, "measured peak")):
            limit = flops / (g * 1e9)
            print(f"   compute-bound limit at {label}: {limit:.2f} s -> achieved "
                  f"{100 * limit / r['seconds']:.0f} % ({tps:.0f} tokens/segment)")
        print(f"   achieved {flops / r['seconds'] / 1e9:.1f} GFLOP/s on {r['work_gflop']:.0f} GFLOP of work")

    bs = args.baseline_segments
    if bs != "0":
        ref = M.load_mt3(ckpt)
        engine_model, _ = _engine.load_engine_model(export, "cpu", num_threads=args.threads)
        for name in ("mr_mt3", "mt3_pytorch"):
            feats = compute_features(audio, 16000, preset=PRESET[name])
            S = feats.shape[0]
            k = S if bs == "all" else min(S, int(bs))
            x = torch.from_numpy(feats[:k])
            t = time.perf_counter()
            with torch.inference_mode():
                if name == "mr_mt3":  # the anchor batches every segment
                    ids = ref.greedy(x, args.tokens)[:, 1:]
                else:  # the anchor runs one segment at a time
                    rows = [ref.greedy(x[i:i + 1], args.tokens)[:, 1:] for i in range(k)]
                    n = max(r.shape[1] for r in rows)
                    ids = torch.stack([torch.nn.functional.pad(r[0], (0, n - r.shape[1])) for r in rows])
            dt = time.perf_counter() - t
            scaled = dt * S / k
            tps = float((ids != 0).sum(dim=1).float().mean()) if ids.numel() else 0.0
            ours = engine_model.decode(feats[:k], max_new_tokens=args.tokens)[:, 0, :]
            same = ours.shape[1] == ids.shape[1] and bool((ours == ids.numpy()).all())
            r = results[name]
            ratio = scaled / r["seconds"]
            print(f"\n== baseline (anchor algorithm, no KV cache) for {name}: {k} of {S} segments in "
                  f"{dt:.1f} s -> {scaled:.1f} s for all {S} "
                  f"({'measured' if k == S else 'scaled linearly'}), {args.tokens} tokens/segment cap, "
                  f"{tps:.0f} tokens/segment generated")
            print(f"   speed-up of mt3-infer {name}: {ratio:.1f}x at {r['tokens_per_segment']:.0f} "
                  f"tokens/segment; tokens identical on the baseline's segments: {same}")
            r["baseline_seconds_scaled"] = scaled
            r["baseline_segments_run"] = k
            r["speedup"] = ratio
            r["tokens_identical"] = same
    print(f"\nload average at end: {os.getloadavg()}")
    print("JSON " + json.dumps({"threads": args.threads, "seconds_audio": args.seconds,
                                "tokens_cap": args.tokens, "gemm_peak_gflops": peak,
                                "results": results}))


if __name__ == "__main__":
    main()
