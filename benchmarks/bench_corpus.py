"""Corpus throughput: Ray Data (mt3_infer.corpus) vs the plain CLI multi-file run (issue 14).

    .venv/bin/python benchmarks/bench_corpus.py [--files 24] [--seconds 8] [--workers 2] [--tokens 0]

In one run, on this machine, with the bundled network (its own EOS; --tokens
caps it when > 0): --files clips of --seconds each cut from examples/demo.wav
(WAV, 16 kHz mono) are transcribed

1. by the CLI in one process (`mt3-infer FOLDER -o OUT -m offline`, all CPU
   threads, files sharing one decoder CLI_FILES_PER_CALL at a time), and
2. by `transcribe_corpus` on a local Ray with --workers actors of
   (CPUs // workers) threads each (Ray's startup and the model loads counted);

and prints files per hour and audio hours per hour for both, and whether
every MIDI file is byte-identical between the two.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)


def make_clips(folder, n, seconds):
    import mt3_infer

    audio, _ = mt3_infer.load_audio(os.path.join(ROOT, "examples", "demo.wav"))
    seg = int(seconds * 16000)
    os.makedirs(folder, exist_ok=True)
    for i in range(n):
        start = (i * 7919 * 16) % max(1, len(audio) - seg)
        x = audio[start:start + seg]
        with wave.open(os.path.join(folder, f"clip{i:03d}.wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes(np.clip(x * 32767, -32768, 32767).astype("<i2").tobytes())
    return n * seg / 16000.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--files", type=int, default=24)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tokens", type=int, default=0)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="mt3_bench_corpus_")
    try:
        src = os.path.join(work, "in")
        audio_s = make_clips(src, args.files, args.seconds)
        cpus = os.cpu_count() or 1
        tok = ["--max-new-tokens", str(args.tokens)] if args.tokens > 0 else []

        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "mt3_infer.cli", "transcribe", src, "-o", os.path.join(work, "cli"), "-m",
                            "offline", "-q", "--threads", str(cpus)] + tok, capture_output=True, text=True)
        cli_s = time.perf_counter() - t
        if r.returncode != 0:
            raise SystemExit(f"CLI run failed:\n{r.stderr[-3000:]}")

        from mt3_infer import corpus

        threads = max(1, cpus // args.workers)
        t = time.perf_counter()
        s = corpus.transcribe_corpus(src, os.path.join(work, "ray"), "offline", workers=args.workers,
                                     threads_per_worker=threads, progress=False,
                                     max_new_tokens=args.tokens or None)
        ray_s = time.perf_counter() - t
        if s.failed:
            raise SystemExit(f"corpus run: {s.errors}")
        same = all(open(os.path.join(work, "cli", f"clip{i:03d}.mid"), "rb").read()
                   == open(os.path.join(work, "ray", "midi", f"clip{i:03d}.mid"), "rb").read()
                   for i in range(args.files))
        print(f"corpus: {args.files} files x {args.seconds:.0f} s ({audio_s / 3600:.3f} h of audio), bundled "
              f"mt3_small, {cpus} CPUs" + (f", {args.tokens}-token cap" if args.tokens else ", no token cap"))
        print(f"{'run':<44}{'wall s':>8}{'files/h':>10}{'audio h/h':>11}")
        print(f"{'CLI, one process, ' + str(cpus) + ' threads':<44}{cli_s:>8.1f}{args.files / cli_s * 3600:>10.0f}"
              f"{audio_s / cli_s:>11.1f}")
        label = f"Ray Data, {args.workers} actors x {threads} thread(s)"
        print(f"{label:<44}{ray_s:>8.1f}{args.files / ray_s * 3600:>10.0f}{audio_s / ray_s:>11.1f}")
        print("(both: process/Ray startup and model loads included)")
        print(f"ratio Ray / CLI: {cli_s / ray_s:.2f}x; MIDI {'identical' if same else 'DIFFERENT'} on all files")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
