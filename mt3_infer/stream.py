"""Streaming transcription: feed audio in chunks, get notes as segments complete.

The MT3 family transcribes fixed segments independently (2.048 s; YourMT3
32767 samples), and a segment's spectrogram depends only on its own samples.
So a stream decodes each segment as soon as its last sample arrives, with the
same network and the same rules as the offline call, and its tokens are the
offline call's tokens for that segment.  Notes are then assembled from the
tokens of every segment decoded so far; a note is released once it has ended
before the start of the newest decoded segment (nothing later can change it:
the segment-to-segment state only carries notes still sounding), the rest at
:meth:`TranscriptionStream.close`.  Over the whole stream the notes released
are exactly those of ``adapter.transcribe_notes`` on the same audio, and
:meth:`TranscriptionStream.midi` the MIDI bytes of ``adapter.transcribe``.

Latency: a note is out one segment after it ends at the latest, plus the
decode of one segment (``benchmarks/bench_long.py`` does not measure it;
``examples/stream_wav.py`` prints it).
"""
from __future__ import annotations

from collections import Counter
from typing import Iterator, List, Optional

import numpy as np

from . import _core
from .codec import NOTE_DTYPE
from .exceptions import AudioError, InferenceError

STREAM_RATE = 16000


class TranscriptionStream:
    """Created by ``adapter.stream(sr=16000)``; see the module docstring.

    ``push(chunk)``: audio of any length ((n,) or (n, channels), float32 /
    float64; int16 / int32 PCM scaled as the adapters do), decoding every
    segment it completes.  ``pop_notes()``: the notes released since the last
    call (``NOTE_DTYPE``, in release order, each batch sorted by (onset,
    pitch, program)); iterating the stream yields the same notes one by one.
    ``close()``: decodes the last, partial segment and returns the remaining
    notes; ``midi()`` then gives the MIDI file of the whole stream.
    """

    def __init__(self, adapter, sr: int = STREAM_RATE, *, max_new_tokens: Optional[int] = None,
                 num_threads: Optional[int] = None):
        if not getattr(adapter, "_model_loaded", False):
            raise RuntimeError("Model not loaded. Call load_model() before streaming.")
        if isinstance(sr, bool) or not isinstance(sr, (int, np.integer)) or int(sr) != STREAM_RATE:
            raise AudioError(
                f"stream() takes 16000 Hz audio (got sr={sr!r}): resampling chunk by chunk would not give "
                "the offline result; resample the source first (mt3_infer.audio.resample_audio) or "
                "read files with mt3_infer.load_audio"
            )
        self._adapter = adapter
        self._extra = dict(adapter._extra_run_args())
        self._decode_flags = int(self._extra.get("decode_flags", 0))
        self._midi_flags = self._extra.get("midi_flags", None)
        self._scheme = adapter._scheme  # the recipe's token scheme (C recipe table)
        preset = self._extra.get("preset") or adapter._recipe_preset
        self._preset = preset
        self._seg = int(_core.feature_layout(1, preset)["segment_samples"])
        self._run_kw = dict(max_new_tokens=max_new_tokens or 0, num_threads=num_threads or 0)
        self._buf: List[np.ndarray] = []  # samples not yet in a decoded segment
        self._buffered = 0
        self._samples = 0  # all samples pushed
        self._tokens: List[np.ndarray] = []  # (segments, C, L) per decode
        self._segments = 0
        self._ready: List[np.ndarray] = []
        self._released = Counter()
        self._closed = False
        self._final_tokens = None

    # -- input ---------------------------------------------------------------
    def push(self, chunk) -> int:
        """Add audio; decode the segments it completes.  Returns how many."""
        if self._closed:
            raise RuntimeError("the stream is closed")
        x = np.asarray(chunk)
        if x.size == 0:
            return 0
        if x.ndim == 2:
            _core.check_audio(np.ascontiguousarray(x) if x.dtype.kind == "f" else x.astype(np.float32))
        if x.dtype.kind in "iu":
            if x.dtype not in (np.int16, np.int32):
                raise AudioError(f"unsupported audio dtype {x.dtype}; use float32, float64, int16 or int32")
            x = x.astype(np.float64) / (32768.0 if x.dtype == np.int16 else 2147483648.0)
        elif x.dtype not in (np.float32, np.float64):
            raise AudioError(f"unsupported audio dtype {x.dtype}; use float32, float64, int16 or int32")
        if x.ndim == 2:
            x = x.mean(axis=1, dtype=np.float64)  # the adapters' channel mix
        elif x.ndim != 1:
            raise AudioError(f"audio chunks must be (n,) or (n, channels), got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        _core.check_audio(x)  # NaN/Inf named with their index in this chunk
        self._buf.append(x)
        self._buffered += x.shape[0]
        self._samples += x.shape[0]
        full = self._buffered // self._seg
        if full == 0:
            return 0
        audio = np.concatenate(self._buf)
        take = full * self._seg
        self._buf = [audio[take:]] if take < audio.shape[0] else []
        self._buffered = audio.shape[0] - take
        self._decode(audio[:take], full)
        self._release(final=False)
        return full

    def _decode(self, audio: np.ndarray, n_segments: int) -> None:
        _, _, st = self._adapter._run(audio, STREAM_RATE, midi=False, notes=False, stats=True, tokens=True,
                                      max_segments=n_segments, drain_only=not self._adapter.continuous_batching,
                                      **self._run_kw, **self._extra)
        if st["segments"] != n_segments:
            raise InferenceError(f"stream: expected {n_segments} segments, decoded {st['segments']}")
        if n_segments:
            self._tokens.append(st["tokens"])
            self._segments += n_segments

    def _all_tokens(self) -> np.ndarray:
        if not self._tokens:
            return np.zeros((0, 1, 0), np.int64)
        length = max(t.shape[2] for t in self._tokens)
        ch = self._tokens[0].shape[1]
        out = np.zeros((self._segments, ch, length), np.int64)  # pad id 0 after each row
        i = 0
        for t in self._tokens:
            out[i:i + t.shape[0], :, :t.shape[2]] = t
            i += t.shape[0]
        return out

    def _ids(self, tokens: np.ndarray) -> np.ndarray:
        return tokens[:, 0, :] if self._scheme != "yourmt3" else tokens

    def _release(self, final: bool) -> None:
        tokens = self._all_tokens()
        notes = _core.decode_tokens(self._ids(tokens), self._scheme, None, corrected=False,
                                    flags=self._decode_flags, sort=True) if self._segments else \
            np.zeros(0, NOTE_DTYPE)
        if final:
            ready = notes
            self._final_tokens = tokens
        else:
            starts = _core.segment_starts(self._scheme, self._segments)
            horizon = float(starts[-1])
            ready = notes[notes["offset"] < horizon]
        have = Counter(self._released)
        new = []
        for rec in ready:
            key = rec.tobytes()
            if have[key] > 0:
                have[key] -= 1
            else:
                new.append(rec)
                self._released[key] += 1
        if final:
            final_keys = Counter(rec.tobytes() for rec in notes)
            if any(final_keys[k] < c for k, c in self._released.items()):
                raise InferenceError("stream: a released note is not in the final transcription")
        if new:
            self._ready.append(np.array(new, dtype=NOTE_DTYPE))

    # -- output --------------------------------------------------------------
    def pop_notes(self) -> np.ndarray:
        """Notes released since the last call (``NOTE_DTYPE``)."""
        out = np.concatenate(self._ready) if self._ready else np.zeros(0, NOTE_DTYPE)
        self._ready = []
        return out

    def __iter__(self) -> Iterator[np.void]:
        yield from self.pop_notes()

    def close(self) -> np.ndarray:
        """Decode the last, partial segment and return the notes not yet popped."""
        if not self._closed:
            self._closed = True
            tail = np.concatenate(self._buf) if self._buf else np.zeros(0, np.float32)
            self._buf, self._buffered = [], 0
            n_tail = int(_core.feature_layout(self._samples, self._preset)["n_segments"]) - self._segments
            if n_tail > 0:
                if tail.shape[0] == 0:  # a segment of padding only (MT3-PyTorch's n % 32768 == 0)
                    tail = np.zeros(1, np.float32)
                self._decode(tail, n_tail)
            self._release(final=True)
        return self.pop_notes()

    def midi(self) -> bytes:
        """Standard MIDI File bytes of the whole stream (after :meth:`close`):
        what ``adapter.transcribe_bytes`` gives on the same audio."""
        if not self._closed:
            raise RuntimeError("close() the stream first")
        tokens = self._final_tokens
        midi_flags = self._midi_flags
        if midi_flags is None:
            midi_flags = -1
        data, _ = _core.tokens_to_midi(self._ids(tokens), self._scheme, None, corrected=False,
                                       flags=self._decode_flags,
                                       auto_filter=bool(midi_flags >= 0 and midi_flags & _core.MIDI_AUTO_FILTER),
                                       midi_flags=midi_flags if midi_flags >= 0 else 0)
        return data

    @property
    def segments(self) -> int:
        """Segments decoded so far."""
        return self._segments

    @property
    def samples(self) -> int:
        """Samples pushed so far."""
        return self._samples

    def __enter__(self) -> "TranscriptionStream":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()


__all__ = ["TranscriptionStream", "STREAM_RATE"]
