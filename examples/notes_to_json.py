"""Get notes as data (not MIDI) and write them as JSON and CSV.

    python examples/notes_to_json.py song.wav [--model fast] [--checkpoint PATH]

``transcribe_notes`` returns a NumPy structured array with fields onset,
offset (seconds), pitch, velocity, program and is_drum.
"""
import argparse
from pathlib import Path

import numpy as np

import mt3_infer
from mt3_infer.cli import write_notes_csv, write_notes_json


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("audio")
    ap.add_argument("--model", default="default")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    notes = mt3_infer.transcribe_notes(args.audio, model=args.model, checkpoint_path=args.checkpoint,
                                       device=args.device)
    base = Path(args.audio)
    write_notes_json(notes, base.with_suffix(".notes.json"), source=str(base), model=args.model)
    write_notes_csv(notes, base.with_suffix(".notes.csv"))
    drums = int(np.count_nonzero(notes["is_drum"]))
    programs = sorted(set(int(p) for p in notes["program"][~notes["is_drum"]]))
    print(f"{len(notes)} notes ({drums} drum hits), programs {programs}")
    print(f"wrote {base.with_suffix('.notes.json')} and {base.with_suffix('.notes.csv')}")


if __name__ == "__main__":
    main()
