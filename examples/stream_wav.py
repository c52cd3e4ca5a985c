"""Stream a WAV file in 100 ms blocks and print notes as they are released.

    python examples/stream_wav.py [examples/demo.wav] [--model offline] [--block-ms 100]
                                  [--checkpoint PATH] [--realtime] [--max-new-tokens N]

Each block is pushed as if it came from a sound card; a note is printed once
it is final (it ended before the newest decoded segment), with the delay
between the moment its offset was pushed and the moment it was printed.
--realtime sleeps between blocks so the delays are those of a live input.
The notes printed over the whole stream are the offline transcription's.
"""
import argparse
import os
import time

import mt3_infer

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("audio", nargs="?", default=os.path.join(HERE, "demo.wav"))
    ap.add_argument("--model", default="offline")
    ap.add_argument("--checkpoint")
    ap.add_argument("--block-ms", type=float, default=100.0)
    ap.add_argument("--realtime", action="store_true")
    ap.add_argument("--max-new-tokens", type=int, help="decoding cap per segment (default: the model's)")
    args = ap.parse_args(argv)

    audio, sr = mt3_infer.load_audio(args.audio, sr=16000)  # the stream takes 16 kHz
    model = mt3_infer.load_model(args.model, checkpoint_path=args.checkpoint, device="cpu")
    block = max(1, int(sr * args.block_ms / 1000))
    pushed_at = {}  # sample count -> wall time it was pushed
    t0 = time.monotonic()
    n_notes, delays = 0, []

    def show(notes):
        nonlocal n_notes
        now = time.monotonic()
        for note in notes:
            end = min((int(note["offset"] * sr) // block + 1) * block, len(audio))  # block holding the offset
            pushed = pushed_at.get(end, now)
            delays.append(now - pushed)
            n_notes += 1
            print(f"{now - t0:7.2f}s  note {note['pitch']:3d} prog {note['program']:3d}"
                  f"{' drum' if note['is_drum'] else '     '}  {note['onset']:7.3f}-{note['offset']:7.3f}s"
                  f"  (+{now - pushed:.2f}s)")

    stream = model.stream(sr=sr, max_new_tokens=args.max_new_tokens)
    decode_s = []  # wall time of the pushes that completed (and decoded) a segment
    for start in range(0, len(audio), block):
        if args.realtime:
            time.sleep(max(0.0, t0 + start / sr - time.monotonic()))
        t = time.monotonic()
        if stream.push(audio[start:start + block]):
            decode_s.append(time.monotonic() - t)
        pushed_at[min(start + block, len(audio))] = time.monotonic()
        show(stream.pop_notes())
    show(stream.close())
    worst = max(delays) if delays else 0.0
    per = sum(decode_s) / len(decode_s) if decode_s else 0.0
    print(f"{n_notes} notes from {len(audio) / sr:.1f}s of audio in {args.block_ms:g} ms blocks; "
          f"{stream.segments} segments; decode of one segment {per:.2f}s on average "
          f"(latency: segment length 2.05s + one decode); longest delay from a note's end to its "
          f"release {worst:.2f}s")


if __name__ == "__main__":
    main()
