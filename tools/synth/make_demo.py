"""Write ``examples/demo.mid`` and render it to ``examples/demo.wav``.

    python tools/synth/make_demo.py [--seed 9100000000] [--seconds 20]

The piece is held-out solo piano material (a seed outside every training
set), written as MIDI by the package's own writer, then rendered *from the
MIDI file* by the FluidSynth command-line player with FluidR3_GM at 16 kHz
and mixed to mono 16-bit WAV.  Both files are committed; ``make demo``
transcribes the WAV and scores it against the MIDI.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import wave

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))

from synth import material, render  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=9_100_000_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--out", default=os.path.join(ROOT, "examples"))
    a = ap.parse_args(argv)
    from mt3_infer.codec import notes_to_midi

    arr, info = material.make_clip(a.seed, duration=a.seconds, scenario="solo_piano")
    mid_path = os.path.join(a.out, "demo.mid")
    with open(mid_path, "wb") as fh:
        fh.write(notes_to_midi(arr, "pretty", auto_filter=False))
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "demo_stereo.wav")
        subprocess.run(["fluidsynth", "-ni", "-q", "-r", "16000", "-g", "0.6", "-F", raw, "-T", "wav",
                        "-O", "s16", render.SOUNDFONTS["fluidr3"], mid_path], check=True)
        with wave.open(raw, "rb") as w:
            ch, sr = w.getnchannels(), w.getframerate()
            x = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, ch).astype(np.float64)
    assert sr == 16000, sr
    mono = x.mean(axis=1)
    mono = mono[: int((a.seconds + 1.0) * sr)]
    peak = np.abs(mono).max()
    mono = np.round(mono * (0.7 * 32767 / peak)).astype(np.int16)
    wav_path = os.path.join(a.out, "demo.wav")
    with wave.open(wav_path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(mono.tobytes())
    print(f"{mid_path}: {len(arr)} notes; {wav_path}: {len(mono) / 16000:.1f} s")


if __name__ == "__main__":
    main()
