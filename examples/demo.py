"""Transcribe examples/demo.wav with the bundled model and score it.

    python examples/demo.py [--out demo.mid]     (or: make demo)

Uses the network shipped inside the package (model "mt3_small", alias
"offline"): nothing is downloaded and torch is not imported.  Writes the
transcription as MIDI and prints the note count, the real-time factor and the
onset F1 (mir_eval, 50 ms) against examples/demo.mid, the MIDI file the demo
audio was rendered from (tools/synth/make_demo.py).
"""
import argparse
import os
import time

import mido
import numpy as np

import mt3_infer

HERE = os.path.dirname(os.path.abspath(__file__))


def midi_notes(path):
    """(onset, offset, pitch) of every note of a MIDI file, in seconds."""
    active, notes, now = {}, [], 0.0
    for msg in mido.MidiFile(path):  # merged tracks, times in seconds
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            active[(msg.channel, msg.note)] = now
        elif msg.type in ("note_off", "note_on"):
            start = active.pop((msg.channel, msg.note), None)
            if start is not None:
                notes.append((start, now, msg.note))
    return np.array(sorted(notes), dtype=float).reshape(-1, 3)


def onset_f1(ref, est):
    try:
        import mir_eval
    except ImportError:
        return None
    if len(ref) == 0 or len(est) == 0:
        return 0.0

    def hz(p):
        return 440.0 * 2.0 ** ((p - 69.0) / 12.0)

    _, _, f, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref[:, :2], hz(ref[:, 2]), est[:, :2], hz(est[:, 2]), onset_tolerance=0.05, offset_ratio=None)
    return f


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--audio", default=os.path.join(HERE, "demo.wav"))
    ap.add_argument("--reference", default=os.path.join(HERE, "demo.mid"))
    ap.add_argument("--out", default="demo.mid")
    a = ap.parse_args()

    model = mt3_infer.load_model("offline")  # the bundled network, no download
    audio, sr = mt3_infer.load_audio(a.audio)
    t0 = time.perf_counter()
    midi, notes = model.transcribe_with_notes(audio, sr)
    wall = time.perf_counter() - t0
    tmp = a.out + ".tmp"
    midi.save(tmp)
    os.replace(tmp, a.out)  # written atomically

    seconds = len(audio) / sr
    est = np.stack([notes["onset"], notes["offset"], notes["pitch"]], axis=1)[~notes["is_drum"]]
    f1 = onset_f1(midi_notes(a.reference), est)
    print(f"wrote {a.out}: {len(notes)} notes from {seconds:.1f} s of audio")
    print(f"real-time factor: {seconds / wall:.1f}x ({wall:.2f} s)")
    if f1 is None:
        print("onset F1: install mir_eval to score against", a.reference)
    else:
        print(f"onset F1 vs {os.path.relpath(a.reference)}: {f1:.3f}")


if __name__ == "__main__":
    main()
