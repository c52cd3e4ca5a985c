"""Transcribe one audio file to MIDI.

    python examples/transcribe_file.py song.wav [-o song.mid] [--model fast]
                                       [--checkpoint PATH] [--device cpu]

Without --checkpoint the registry copy is used (downloaded and verified on
first use; set MT3_OFFLINE=1 to forbid that).  --checkpoint accepts an
exported model (.pt) or an original checkpoint.
"""
import argparse
from pathlib import Path

import mt3_infer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("audio")
    ap.add_argument("-o", "--output")
    ap.add_argument("--model", default="default")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    audio, sr = mt3_infer.load_audio(args.audio, sr=16000)  # float32 mono at 16 kHz
    model = mt3_infer.load_model(args.model, checkpoint_path=args.checkpoint, device=args.device)
    midi = model.transcribe(audio, sr=sr)                   # a mido.MidiFile
    out = Path(args.output or Path(args.audio).with_suffix(".mid"))
    midi.save(str(out))
    n = sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0)
    print(f"{args.audio}: {len(audio) / sr:.1f}s -> {out} ({n} notes, {len(midi.tracks)} track(s))")


if __name__ == "__main__":
    main()
