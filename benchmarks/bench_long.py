"""Long recordings: peak RSS and wall time in bounded memory (issue 12).

    .venv/bin/python benchmarks/bench_long.py [--seconds 3600] [--baseline-seconds 600]
        [--tokens 8] [--threads N] [--models mr_mt3,mt3_pytorch,yourmt3,mt3_small] [--workdir DIR]
        [--yourmt3-dims small|full] [--no-mixed] [--mixed-only] [--batch 8]

In one run, on this machine:

1. writes a synthetic recording of --seconds as a 16-bit stereo 44.1 kHz WAV
   (tones with a slow tremolo plus a little noise), in blocks;
2. for each model, in a fresh child process (which never imports torch, so
   its peak RSS is the adapter's own): ``mt3_infer.transcribe(path)`` — the
   file is read and mixed to mono block by block, resampled to 16 kHz, and
   transcribed at the default ``max_memory_mb`` (2048), every segment capped
   at --tokens tokens (random weights rarely emit EOS; the same cap on both
   sides);
3. the baseline, in the same run: the whole-file loop (features of every
   segment at once, one decoder batch of all segments: ``max_memory_mb`` set
   past the machine) on the first --baseline-seconds, the longest it can hold
   here, beside the default loop on the same audio; their MIDI must be equal.

Weights: full-size random MT3 (45.9 M parameters; mr_mt3 and mt3_pytorch share
the export), YourMT3 at the tests' small dimensions (full feature geometry),
or with --yourmt3-dims full at its real size (536 MB checkpoint; the encoder
costs ~100 GFLOP per segment: an hour is ~1800 segments, about half an hour
per pass on 2 cores), and the bundled mt3_small (its own EOS; --tokens still caps
it).  Printed per run: audio seconds, wall seconds, real-time factor, peak
RSS, segments, the window/batch the budget chose, and the decoder padding
fraction (batch slots left idle by rows that ended while their batch ran on).

4. a mixed-length workload: the bundled mt3_small (its own EOS, no cap) on
   examples/demo.wav alternating with near-silence, so rows end anywhere
   from the first token to the 1024 cap; continuous batching (finished rows'
   slots take the next segments) against drain-only batches at the same
   --batch (equal decoder memory), each in its own process: wall time,
   engine steps, row-steps, padding, and the throughput ratio (same MIDI).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

RATE = 44100


def write_recording(path, seconds, seed=0):
    """Stereo 16-bit WAV of `seconds`, written 10 s at a time."""
    rng = np.random.default_rng(seed)
    freqs = (220.0, 277.2, 329.6, 440.0, 659.3)
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        total = int(seconds * RATE)
        for start in range(0, total, 10 * RATE):
            n = min(10 * RATE, total - start)
            t = (start + np.arange(n)) / RATE
            x = np.zeros(n)
            for k, f in enumerate(freqs):
                x += 0.08 * np.sin(2 * np.pi * f * t + k) * (0.5 + 0.5 * np.sin(2 * np.pi * (0.3 + 0.1 * k) * t))
            left = x + 0.01 * rng.standard_normal(n)
            right = 0.8 * x + 0.01 * rng.standard_normal(n)
            pcm = np.stack([left, right], axis=1).clip(-1, 1) * 32767
            w.writeframes(pcm.astype("<i2").tobytes())


def child(args):
    import mt3_infer
    from mt3_infer.adapters import MRMT3Adapter, MT3PyTorchAdapter, YourMT3Adapter
    from mt3_infer.adapters.mt3_small import MT3SmallAdapter

    cls = {"mr_mt3": MRMT3Adapter, "mt3_pytorch": MT3PyTorchAdapter, "yourmt3": YourMT3Adapter,
           "mt3_small": MT3SmallAdapter}[args.child]
    adapter = cls(num_threads=args.threads)
    adapter.load_model(args.export or None, device="cpu")
    kw = {} if args.budget_mb is None else {"max_memory_mb": args.budget_mb}
    t = time.perf_counter()
    audio, sr = mt3_infer.load_audio(args.audio)  # 16 kHz mono, read block by block
    if args.limit:
        audio = audio[: int(args.limit * sr)]
    data, stats = adapter.transcribe_stats(audio, sr, max_new_tokens=args.tokens, **kw)
    stats["seconds"] = time.perf_counter() - t
    stats["audio_seconds"] = len(audio) / sr
    stats["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    stats["torch_imported"] = "torch" in sys.modules
    if args.midi_out:
        with open(args.midi_out, "wb") as f:
            f.write(data)
    print("RESULT " + json.dumps(stats))


def mixed_child(args):
    """Continuous vs drain-only batching on the mixed workload, one side per process."""
    from mt3_infer.adapters.mt3_small import MT3SmallAdapter

    audio = np.load(args.audio)
    adapter = MT3SmallAdapter(num_threads=args.threads)
    adapter.load_model()
    adapter.continuous_batching = not args.drain
    adapter.transcribe_bytes(audio[:16000], 16000, max_new_tokens=4)  # warm-up
    t = time.perf_counter()
    data, stats = adapter.transcribe_stats(audio, 16000, batch_size=args.batch or None)
    stats["seconds"] = time.perf_counter() - t
    stats["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    with open(args.midi_out, "wb") as f:
        f.write(data)
    print("RESULT " + json.dumps(stats))


def mixed_workload(seconds_of_music=240.0):
    """The bundled model's real lengths: examples/demo.wav (rendered music:
    rows run long) alternating with near-silence (rows end at once), 16 kHz."""
    import mt3_infer

    demo, _ = mt3_infer.load_audio(os.path.join(ROOT, "examples", "demo.wav"))
    rng = np.random.default_rng(5)
    parts, total = [], 0
    while total < seconds_of_music * 16000:
        parts.append(demo)
        total += len(demo)
        parts.append((1e-4 * rng.standard_normal(len(demo))).astype(np.float32))
    return np.concatenate(parts)


def run_mixed(args):
    audio = mixed_workload(args.mixed_music_seconds)
    d = tempfile.mkdtemp(dir=args.workdir)
    path = os.path.join(d, "mixed.npy")
    np.save(path, audio)
    runs = {"drain": [], "continuous": []}
    for rep in range(args.repeat):  # the sides alternate, so a slow spell of the machine hits both
        for side in ("drain", "continuous"):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", "mixed", "--audio", path, "--threads",
                   str(args.threads), "--batch", str(args.batch), "--midi-out", os.path.join(d, side + ".mid")]
            if side == "drain":
                cmd.append("--drain")
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line_ = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
            if line_ is None:
                raise RuntimeError(f"mixed child {side} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
            runs[side].append(json.loads(line_[7:]))
    res = {side: sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2] for side, rs in runs.items()}  # median
    same = open(os.path.join(d, "drain.mid"), "rb").read() == open(os.path.join(d, "continuous.mid"), "rb").read()
    secs = len(audio) / 16000
    bs = args.batch or f"the plan's default ({res['drain']['batch']} at max_memory_mb 2048)"
    print(f"\nmixed-length workload: mt3_small on {secs:.0f} s (examples/demo.wav alternating with "
          f"near-silence), batch_size {bs} on both sides (equal decoder memory), no token cap")
    print(f"{'batching':<12}{'wall s':>8}{'RTF':>7}{'steps':>8}{'row-steps':>11}{'tok/s':>8}{'padding':>9}"
          f"{'RSS MB':>8}")
    for side in ("drain", "continuous"):
        r = res[side]
        print(f"{side:<12}{r['seconds']:>8.1f}{secs / r['seconds']:>7.1f}{r['steps']:>8}{r['row_steps']:>11}"
              f"{r['row_steps'] / r['seconds']:>8.0f}{r['padding']:>9.3f}{r['peak_rss_mb']:>8.0f}")
    if args.repeat > 1:
        print(f"(median of {args.repeat} runs per side, alternating; all wall s: drain "
              + ", ".join(f"{r['seconds']:.1f}" for r in runs["drain"]) + "; continuous "
              + ", ".join(f"{r['seconds']:.1f}" for r in runs["continuous"]) + ")")
    print(f"throughput continuous / drain-only: {res['drain']['seconds'] / res['continuous']['seconds']:.2f}x, "
          f"MIDI {'identical' if same else 'DIFFERENT'}")


def run_child(name, export, args, audio, limit=0.0, budget_mb=None, midi_out=""):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, "--export", export or "",
           "--audio", audio, "--tokens", str(args.tokens), "--threads", str(args.threads),
           "--limit", str(limit), "--midi-out", midi_out]
    if budget_mb is not None:
        cmd += ["--budget-mb", str(budget_mb)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(f"child {name} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")


def line(label, r):
    return (f"{label:<34}{r['audio_seconds']:>8.0f}{r['seconds']:>9.1f}{r['audio_seconds'] / r['seconds']:>8.1f}"
            f"{r['peak_rss_mb']:>10.0f}{r['segments']:>6}{r['window']:>7}{r['batch']:>6}{r['padding']:>9.3f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=3600.0)
    p.add_argument("--baseline-seconds", type=float, default=600.0)
    p.add_argument("--tokens", type=int, default=8, help="max_new_tokens per segment (every run)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--models", default="mr_mt3,mt3_pytorch,yourmt3,mt3_small")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "mt3_infer_bench_long"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--export", help=argparse.SUPPRESS)
    p.add_argument("--audio", help=argparse.SUPPRESS)
    p.add_argument("--limit", type=float, default=0.0, help=argparse.SUPPRESS)
    p.add_argument("--budget-mb", type=int, help=argparse.SUPPRESS)
    p.add_argument("--midi-out", default="", help=argparse.SUPPRESS)
    p.add_argument("--drain", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--yourmt3-dims", choices=("small", "full"), default="small",
                   help="random YourMT3 weights at the tests' small dimensions (default) or full size "
                        "(~100 GFLOP per segment: about half an hour per hour of audio on 2 cores)")
    p.add_argument("--no-mixed", action="store_true", help="skip the mixed-length comparison")
    p.add_argument("--batch", type=int, default=8,
                   help="batch_size of the mixed-length comparison (0: the memory plan's default)")
    p.add_argument("--mixed-only", action="store_true", help="run only the mixed-length comparison")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per side of the mixed-length comparison (median; wall times on a shared "
                        "2-core VM vary by ~15%% run to run)")
    p.add_argument("--mixed-music-seconds", type=float, default=240.0,
                   help="music in the mixed workload (as much near-silence again)")
    args = p.parse_args()
    if args.child == "mixed":
        return mixed_child(args)
    if args.child:
        return child(args)
    if args.mixed_only:
        os.makedirs(args.workdir, exist_ok=True)
        return run_mixed(args)

    import fixtures_mt3 as fm
    import fixtures_yourmt3 as fy

    from mt3_infer.export import mt3 as M
    from mt3_infer.export import yourmt3 as Y

    os.makedirs(args.workdir, exist_ok=True)
    models = args.models.split(",")
    exports = {"mt3_small": ""}
    if {"mr_mt3", "mt3_pytorch"} & set(models):
        ckpt = os.path.join(args.workdir, "mt3.pth")
        if not os.path.exists(ckpt):
            fm.write_checkpoint(args.workdir, fm.FULL, seed=0, config_json=False)
        exports["mr_mt3"] = exports["mt3_pytorch"] = os.path.join(args.workdir, "mt3.mt3i.pt")
        M.export_mt3(ckpt, exports["mr_mt3"])
    if "yourmt3" in models:
        full = args.yourmt3_dims == "full"
        yck = os.path.join(args.workdir, "last_full.ckpt" if full else "last.ckpt")
        # full: the real network's dimensions (spec 1.5); small: the tests' dims, full feature geometry
        ydims = fy.FULL if full else dict(fy.SMALL, kv=128, frames=110)
        fy.save_lightning_checkpoint(yck, fy.random_state_dict(ydims, True, seed=1),
                                     fy.make_hparams(ydims, True))
        exports["yourmt3"] = os.path.join(args.workdir, "last_full.mt3i.pt" if full else "last.mt3i.pt")
        Y.export_checkpoint(yck, exports["yourmt3"])
    audio = os.path.join(args.workdir, f"recording_{int(args.seconds)}s.wav")
    if not os.path.exists(audio):
        t = time.perf_counter()
        write_recording(audio, args.seconds)
        print(f"wrote {audio} ({os.path.getsize(audio) / 1e6:.0f} MB) in {time.perf_counter() - t:.0f} s")
    print(f"load average at start: {os.getloadavg()}; threads {args.threads}; cap {args.tokens} "
          f"tokens/segment; recording {args.seconds:g} s, 44.1 kHz stereo 16-bit WAV")
    print(f"{'run':<34}{'audio s':>8}{'wall s':>9}{'RTF':>8}{'RSS MB':>10}{'seg':>6}{'window':>7}"
          f"{'batch':>6}{'padding':>9}")
    for name in models:
        exp = exports[name]
        r = run_child(name, exp, args, audio)
        print(line(f"{name}: whole recording, default", r), flush=True)
        if args.baseline_seconds > 0:
            d = tempfile.mkdtemp(dir=args.workdir)
            a = run_child(name, exp, args, audio, limit=args.baseline_seconds, budget_mb=1 << 20,
                          midi_out=os.path.join(d, "whole.mid"))
            b = run_child(name, exp, args, audio, limit=args.baseline_seconds,
                          midi_out=os.path.join(d, "windowed.mid"))
            same = open(os.path.join(d, "whole.mid"), "rb").read() == open(os.path.join(d, "windowed.mid"), "rb").read()
            print(line(f"{name}: first {args.baseline_seconds:g} s, whole-file loop", a))
            print(line(f"{name}: first {args.baseline_seconds:g} s, default", b)
                  + f"   RSS ratio whole/default {a['peak_rss_mb'] / b['peak_rss_mb']:.2f}, "
                  f"MIDI {'identical' if same else 'DIFFERENT'}", flush=True)
    if not args.no_mixed:
        run_mixed(args)


if __name__ == "__main__":
    main()
