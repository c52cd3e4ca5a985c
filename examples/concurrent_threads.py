"""Several threads transcribing with one loaded model at the same time (the
native pipeline releases the GIL; each call has its own decoding state).

    python examples/concurrent_threads.py a.wav b.wav c.wav [--model fast] [--checkpoint PATH]
"""
import argparse
from concurrent.futures import ThreadPoolExecutor

import mt3_infer


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--model", default="default")
    ap.add_argument("--checkpoint")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args(argv)

    model = mt3_infer.load_model(args.model, checkpoint_path=args.checkpoint, device=args.device)

    def work(path):
        audio, sr = mt3_infer.load_audio(path)  # float32 mono at 16 kHz
        return path, model.transcribe(audio, sr=sr)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for path, midi in pool.map(work, args.files):
            n = sum(1 for tr in midi.tracks for m in tr if m.type == "note_on" and m.velocity > 0)
            print(f"{path}: {n} notes")


if __name__ == "__main__":
    main()
