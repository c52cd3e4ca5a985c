"""Transcribe every WAV file of a folder with one loaded model (MT3Session),
then free it.

    python examples/batch_session.py FOLDER [--model fast] [--checkpoint PATH]
"""
import argparse
from pathlib import Path

import mt3_infer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--model", default="default")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)

    files = sorted(Path(args.folder).glob("*.wav"))
    with mt3_infer.MT3Session(args.model, device=args.device, checkpoint_path=args.checkpoint) as session:
        print(f"{session.model} ready on {session.device}")
        for f in files:
            audio, sr = mt3_infer.load_audio(f)   # float32 mono at 16 kHz
            midi = session.infer(audio, sr=sr)
            midi.save(str(f.with_suffix(".mid")))
            print(f"  {f.name} -> {f.with_suffix('.mid').name}")
    print(f"session {session.status}: {len(files)} file(s)")


if __name__ == "__main__":
    main()
