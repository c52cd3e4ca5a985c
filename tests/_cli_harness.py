"""Test harness for running ``mt3_infer.cli.main`` in a subprocess with a stand-in
adapter and/or redirected registry files (tests/test_cli.py).

    python tests/_cli_harness.py [mt3-infer arguments...]
    python tests/_cli_harness.py --example examples/x.py [arguments...]

Environment:
  HARNESS_FAKE_ADAPTER=1   every model resolves to FakeAdapter (below)
  HARNESS_FAKE_SLEEP=S     FakeAdapter.transcribe sleeps S seconds (Ctrl-C tests)
  HARNESS_REGISTRY=JSON    {"model id": {"file name": [sha256, size]}} overrides
"""
import json
import os
import sys
import time

import mido
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from mt3_infer.base import MT3Base  # noqa: E402
from mt3_infer.exceptions import CheckpointError  # noqa: E402

NOTES_DTYPE = [("onset", "f8"), ("offset", "f8"), ("pitch", "i4"), ("velocity", "i4"),
               ("program", "i4"), ("is_drum", "?")]


class FakeAdapter(MT3Base):
    """One note per whole second of audio: onset i, offset i + 0.5,
    pitch 60 + i % 12, velocity 100, program i % 3, drum on every 4th."""

    def __init__(self, num_threads=None):
        super().__init__()
        self.num_threads = num_threads

    def load_model(self, checkpoint_path=None, device="auto"):
        if not checkpoint_path or not os.path.exists(checkpoint_path):
            raise CheckpointError(f"Checkpoint not found: {checkpoint_path}")
        self._model_loaded = True

    def _notes(self, audio, sr):
        audio = self._check_input(audio, sr)
        sleep = float(os.environ.get("HARNESS_FAKE_SLEEP", "0"))
        if sleep:
            time.sleep(sleep)
        n = int(audio.shape[0] // sr)
        notes = np.zeros(n, dtype=NOTES_DTYPE)
        for i in range(n):
            notes[i] = (float(i), i + 0.5, 60 + i % 12, 100, i % 3, i % 4 == 3)
        return notes

    def preprocess(self, audio, sr):  # 0.2.0 stage hooks, unused: transcribe is overridden
        raise NotImplementedError

    forward = decode = preprocess

    def transcribe_notes(self, audio, sr=16000, batch_size=None):
        return self._notes(audio, sr)

    def transcribe(self, audio, sr=16000, batch_size=None):
        notes = self._notes(audio, sr)
        mid = mido.MidiFile(ticks_per_beat=480)
        tr = mido.MidiTrack()
        tr.append(mido.MetaMessage("track_name", name=f"bs={batch_size} nt={self.num_threads} sr={sr}"))
        events = []
        for n in notes:
            ch = 9 if n["is_drum"] else 0
            events.append((n["onset"], 1, mido.Message("note_on", note=int(n["pitch"]), velocity=100, channel=ch)))
            events.append((n["offset"], 0, mido.Message("note_off", note=int(n["pitch"]), velocity=0, channel=ch)))
        events.sort(key=lambda e: (e[0], e[1]))
        t = 0
        for sec, _, msg in events:
            tick = int(round(sec * 960))
            tr.append(msg.copy(time=tick - t))
            t = tick
        mid.tracks.append(tr)
        return mid


def install():
    import mt3_infer.api as api
    from mt3_infer import registry

    if os.environ.get("HARNESS_FAKE_ADAPTER"):
        api._import_adapter = lambda mid: FakeAdapter
    over = os.environ.get("HARNESS_REGISTRY")
    if over:
        for mid, files in json.loads(over).items():
            for spec in registry._entry(mid)["checkpoint"]["files"]:
                if spec["name"] in files:
                    spec["sha256"], spec["size"] = files[spec["name"]]


if __name__ == "__main__":
    install()
    if sys.argv[1:2] == ["--example"]:  # run an examples/ script with the patches
        import runpy

        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        sys.exit(0)
    from mt3_infer.cli import main

    sys.exit(main(sys.argv[1:]))
