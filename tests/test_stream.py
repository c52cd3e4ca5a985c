"""Streaming (issue 12): notes released while audio is pushed in chunks of
any size equal the offline transcription of the same audio, and the stream's
MIDI equals transcribe_bytes.  The bundled model (real EOS, real lengths)
for the MT3-PyTorch rules; the MR-MT3 and YourMT3 rules in their adapter
test files."""
import os
import subprocess
import sys

import numpy as np
import pytest

import mt3_infer
from mt3_infer import AudioError
from mt3_infer.codec import NOTE_DTYPE

pytest.importorskip("mido")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "examples", "demo.wav")
CAP = 160
SEG = 32768

pytestmark = pytest.mark.skipif(mt3_infer._engine.engine_library_path() is None, reason="engine library not built")


def canonical(notes):
    """All fields, so ties in (onset, pitch, program) cannot hide a difference."""
    return np.sort(np.asarray(notes, dtype=NOTE_DTYPE), order=list(NOTE_DTYPE.names))


def stream_all(adapter, audio, chunk_sizes, cap=CAP):
    s = adapter.stream(max_new_tokens=cap)
    parts, early, i, k = [], 0, 0, 0
    while i < len(audio):
        n = chunk_sizes[k % len(chunk_sizes)]
        s.push(audio[i:i + n])
        got = s.pop_notes()
        early += len(got)
        parts.append(got)
        i += n
        k += 1
    parts.append(s.close())
    return s, np.concatenate(parts), early


def check_stream(adapter, audio, chunk_sizes, cap=CAP):
    want = adapter.transcribe_notes(audio, 16000, max_new_tokens=cap)
    s, got, early = stream_all(adapter, audio, chunk_sizes, cap)
    np.testing.assert_array_equal(canonical(got), canonical(want))
    assert s.midi() == adapter.transcribe_bytes(audio, 16000, max_new_tokens=cap)
    return early, len(want)


@pytest.fixture(scope="module")
def small():
    from mt3_infer.adapters.mt3_small import MT3SmallAdapter

    a = MT3SmallAdapter(num_threads=2)
    a.load_model()
    return a


@pytest.fixture(scope="module")
def demo():
    audio, _ = mt3_infer.load_audio(DEMO)
    return audio


def test_stream_equals_offline_on_music(small, demo):
    audio = demo[: 6 * SEG + 1234]
    early, total = check_stream(small, audio, [1600])  # 100 ms blocks
    assert total > 20 and early > total // 2  # most notes come out before close()
    check_stream(small, audio, [1, 7, 50000, 3333])  # odd sizes, a segment completed by 1 sample


@pytest.mark.parametrize("n", [4 * SEG, 4 * SEG - 1, 4 * SEG + 1, 1, 300])
def test_stream_segment_edges(small, demo, n):
    """Lengths at and around segment boundaries: MT3-PyTorch gives
    n // 32768 + 1 segments (an exact multiple ends with a padding-only one)."""
    audio = demo[:n] if n <= len(demo) else np.concatenate([demo, demo])[:n]
    check_stream(small, audio, [10000])


def test_stream_input_forms_and_errors(small, demo):
    audio = demo[: 2 * SEG + 99]
    stereo = np.stack([audio, 0.5 * audio], axis=1)
    s, got, _ = stream_all(small, stereo, [5000])
    np.testing.assert_array_equal(canonical(got),
                                  canonical(small.transcribe_notes(stereo, 16000, max_new_tokens=CAP)))
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    s, got, _ = stream_all(small, pcm, [4096])
    np.testing.assert_array_equal(canonical(got), canonical(small.transcribe_notes(pcm, 16000, max_new_tokens=CAP)))
    with pytest.raises(AudioError, match="16000 Hz"):
        small.stream(sr=44100)
    s = small.stream(max_new_tokens=CAP)
    bad = np.zeros(100, np.float32)
    bad[42] = np.inf
    with pytest.raises(AudioError, match=r"\+Inf at sample 42"):
        s.push(bad)
    with pytest.raises(AudioError, match="channels-first"):
        s.push(np.zeros((2, 500), np.float32))
    with pytest.raises(AudioError, match="dtype"):
        s.push(np.zeros(10, np.int8))
    assert s.push(np.zeros(0, np.float32)) == 0
    s.push(audio[:100])
    assert len(s.close()) == len(small.transcribe_notes(audio[:100], 16000, max_new_tokens=CAP))
    with pytest.raises(RuntimeError, match="closed"):
        s.push(audio[:10])
    with pytest.raises(RuntimeError, match="close"):
        small.stream().midi()


def test_stream_example_runs():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "stream_wav.py"), "--block-ms", "100",
                        "--max-new-tokens", "48"],
                       capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, MT3_OFFLINE="1"))
    assert r.returncode == 0, r.stderr
    assert "notes from 21.0s of audio in 100 ms blocks; 11 segments" in r.stdout
