"""One transcription with the bundled network through every native path.

Part of `make asan`: there the C core is built with AddressSanitizer + UBSan
(LeakSanitizer on) and the libtorch engine is the regular one, so this drives
the whole pipeline — WAV reading, features, the engine seam, the decode loop
with continuous batching, notes, MIDI — under the sanitizers.  The checks
here are the package's own invariants, which a memory error would break:
the MIDI file's notes are the notes returned beside it, repeated and
concurrent calls give the same bytes, the streaming and many-input paths give
the offline notes, and the drain-only loop gives the continuous loop's bytes.
"""
import io
import os
import threading

import numpy as np
import pytest

import mt3_infer
from mt3_infer import _engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "examples", "demo.wav")

pytestmark = pytest.mark.skipif(_engine.engine_library_path() is None,
                                reason="needs the libtorch engine (a build with torch)")


@pytest.fixture(scope="module")
def small():
    return mt3_infer.load_model("offline", cache=False, auto_download=False, batch_size=3)


def _midi_notes(data: bytes):
    import mido

    mid = mido.MidiFile(file=io.BytesIO(data))
    return sum(1 for tr in mid.tracks for m in tr if m.type == "note_on" and m.velocity > 0)


def test_one_transcription_through_every_path(small):
    audio, sr = mt3_infer.load_audio(DEMO)  # native WAV read + mix + resample
    clip = audio[: 7 * sr]  # 4 segments at batch 3: one refill
    midi, notes = small.transcribe_with_notes(clip, sr, max_new_tokens=96)
    data = small.transcribe_bytes(clip, sr, max_new_tokens=96)
    assert len(notes) > 0
    assert _midi_notes(data) == len(notes)  # the writer was given exactly these notes
    buf = io.BytesIO()
    midi.save(file=buf)
    assert buf.getvalue() == data  # repeatable, and the same bytes through mido

    out = [None] * 3

    def work(i):
        out[i] = small.transcribe_bytes(clip, sr, max_new_tokens=96)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [data] * 3  # one adapter, three threads at once

    small.continuous_batching = False
    try:
        assert small.transcribe_bytes(clip, sr, max_new_tokens=96) == data
    finally:
        small.continuous_batching = True

    many = small.transcribe_many([clip, clip[: 3 * sr], "/nonexistent.wav"], sr, notes=True,
                                 max_new_tokens=96)
    assert np.array_equal(many[0][1], notes)
    assert isinstance(many[2], mt3_infer.AudioError)  # isolated: the others complete

    st = small.stream(sr=sr, max_new_tokens=96)
    parts = []
    for i in range(0, len(clip), 1600):
        st.push(clip[i:i + 1600])
        parts.append(st.pop_notes())
    parts.append(st.close())
    streamed = np.concatenate(parts)
    assert st.midi() == data
    assert np.array_equal(np.sort(streamed, order=["onset", "pitch", "program"]), notes)
