"""Transcribe examples/demo.wav with the bundled model and score it.

    python examples/demo.py [--out demo.mid] [--plot demo.png]     (or: make demo)

Uses the network shipped inside the package (model "mt3_small", alias
"offline"): nothing is downloaded and torch is not imported.  Writes the
transcription as MIDI and prints the note count, the real-time factor and the
onset F1 (mir_eval, 50 ms) against examples/demo.mid, the MIDI file the demo
audio was rendered from (tools/synth/make_demo.py); with the plot extra
(``pip install 'mt3-infer[plot]'``) also a piano roll of the transcription
against that reference (matched, extra and missed notes) over the audio's
spectrogram, beside the MIDI (demo.png).
"""
import argparse
import os
import time

import numpy as np

import mt3_infer
from mt3_infer.utils.midi import midi_to_notes

HERE = os.path.dirname(os.path.abspath(__file__))


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
    ap.add_argument("--plot", default=None,
                    help="piano-roll picture against the reference (.png or .svg; default: beside --out, "
                         "'' for none; needs the plot extra)")
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
    ref = midi_to_notes(a.reference)
    ref = ref[~ref["is_drum"]]
    f1 = onset_f1(np.stack([ref["onset"], ref["offset"], ref["pitch"]], axis=1), est)
    print(f"wrote {a.out}: {len(notes)} notes from {seconds:.1f} s of audio")
    print(f"real-time factor: {seconds / wall:.1f}x ({wall:.2f} s)")
    if f1 is None:
        print("onset F1: install mir_eval to score against", a.reference)
    else:
        print(f"onset F1 vs {os.path.relpath(a.reference)}: {f1:.3f}")
    plot = os.path.splitext(a.out)[0] + ".png" if a.plot is None else a.plot
    if plot:
        try:
            mt3_infer.save_plot(notes, plot, reference=a.reference, audio=audio, sr=sr,
                                title=f"bundled model on {os.path.basename(a.audio)} vs {os.path.basename(a.reference)}")
            print(f"wrote {plot}: piano roll against the reference")
        except mt3_infer.DependencyError as exc:
            print(f"no picture: {exc}")


if __name__ == "__main__":
    main()
