"""Soak: resident memory over many calls and many load/free cycles.

    .venv/bin/python benchmarks/bench_soak.py [--calls 500] [--cycles 200] [--warmup 100]
        [--every 25] [--every-cycles 10] [--threads 2]

On the bundled model (``mt3_small``), in this process (nothing else loaded):

1. ``--calls`` transcriptions on one adapter, rotating through four inputs of
   different lengths, rates and options (2.5 s and 4 s at 16 kHz, 3 s at
   44.1 kHz stereo, 1.2 s at 22.05 kHz with a 64-token cap; bytes, notes and
   MIDI-object results), the resident set size (VmRSS) read every --every
   calls;
2. ``--cycles`` load/free cycles (a fresh adapter: ``load_model`` then
   ``unload``), one short transcription every 10th cycle, RSS every
   --every-cycles cycles.

Printed: each curve, and its growth after --warmup calls (cycles: the same
share of them) as the median slope over all pairs of samples (Theil-Sen,
robust to one allocator hiccup) in kB per 100 calls -- the bound of issue 16
is 1 MB per 100 calls.
"""
import argparse
import gc
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))


def rss_kb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def clip(seconds, sr, seed, channels=1):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * (220 + 110 * seed) * t) * (t % 0.5 < 0.3) + 0.01 * rng.standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x, x[::-1]], 1) if channels == 2 else x


def inputs():
    return [
        (clip(2.5, 16000, 1), 16000, {}, "bytes"),
        (clip(4.0, 16000, 2), 16000, {}, "notes"),
        (clip(3.0, 44100, 3, channels=2), 44100, {}, "midi"),
        (clip(1.2, 22050, 4), 22050, {"max_new_tokens": 64}, "bytes"),
    ]


def call(adapter, item):
    audio, sr, kw, kind = item
    if kind == "bytes":
        return adapter.transcribe_bytes(audio, sr, **kw)
    if kind == "notes":
        return adapter.transcribe_notes(audio, sr, **kw)
    return adapter.transcribe(audio, sr, **kw)


def slope_per_100(xs, ys):
    """Growth of ys (kB) per 100 units of xs: the median of the slopes of all
    pairs of samples (Theil-Sen), which one allocator hiccup cannot move."""
    pairs = [(ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(i + 1, len(xs))
             if xs[j] != xs[i]]
    return float(np.median(pairs) * 100) if pairs else float("nan")


def soak_calls(n, every, threads):
    from mt3_infer.adapters import MT3SmallAdapter

    a = MT3SmallAdapter(num_threads=threads)
    a.load_model()
    items = inputs()
    xs, ys = [0], [rss_kb()]
    t = time.perf_counter()
    for i in range(1, n + 1):
        call(a, items[i % len(items)])
        if i % every == 0:
            gc.collect()
            xs.append(i)
            ys.append(rss_kb())
    a.unload()
    return xs, ys, time.perf_counter() - t


def soak_cycles(n, every, threads):
    from mt3_infer.adapters import MT3SmallAdapter

    item = inputs()[0]
    xs, ys = [0], [rss_kb()]
    t = time.perf_counter()
    for i in range(1, n + 1):
        a = MT3SmallAdapter(num_threads=threads)
        a.load_model()
        if i % 10 == 0:
            call(a, item)
        a.unload()
        del a
        if i % every == 0:
            gc.collect()
            xs.append(i)
            ys.append(rss_kb())
    return xs, ys, time.perf_counter() - t


def report(name, unit, xs, ys, warmup, seconds):
    step = xs[1] - xs[0] if len(xs) > 1 else 0
    print(f"{name}: {xs[-1]} {unit} in {seconds:.0f} s; RSS (MB) every {step} {unit}:")
    print("   " + " ".join(f"{y / 1024:.1f}" for y in ys))
    keep = [(x, y) for x, y in zip(xs, ys) if x >= warmup]
    s = slope_per_100([x for x, _ in keep], [y for _, y in keep])
    print(f"   growth after {warmup} {unit}: {s:+.0f} kB per 100 {unit} (bound: 1024 kB) -> "
          f"{'within' if s <= 1024 else 'OVER'} the bound; first->last {(ys[-1] - ys[0]) / 1024:+.1f} MB")
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=500)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--every-cycles", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    if not os.path.exists("/proc/self/status"):
        sys.exit("needs /proc/self/status (Linux)")
    import mt3_infer

    print(f"mt3_infer {mt3_infer.__version__}, bundled model, {a.threads} threads; RSS at start "
          f"{rss_kb() / 1024:.1f} MB")
    xs, ys, sec = soak_calls(a.calls, a.every, a.threads)
    report("transcribe calls on one adapter", "calls", xs, ys, a.warmup, sec)
    xs, ys, sec = soak_cycles(a.cycles, a.every_cycles, a.threads)
    report("load/free cycles", "cycles", xs, ys, a.warmup * a.cycles // max(a.calls, 1), sec)


if __name__ == "__main__":
    main()
