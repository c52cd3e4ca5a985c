"""Shared Python half of the two MT3 adapters (MR-MT3 and MT3-PyTorch).

The work happens in C (``_core.AdapterCore``: audio, features, the libtorch
network with a KV cache, token decoding, notes, MIDI); this layer resolves
checkpoints through :mod:`mt3_infer.artifact` (which exports an original
checkpoint once when needed), applies the anchor's input
checks (``MT3Base``) and turns MIDI bytes into ``mido.MidiFile``.
"""
from __future__ import annotations

import io
import json
import os
from typing import Optional

import numpy as np

from .. import _core, artifact, registry
from .._engine import prepack_enabled, prepare_engine
from ..base import MT3Base
from ..exceptions import AudioError, FrameworkError
from ..plot import NoteArray
from ..utils import progress as progress_helper

class SampleRateError(AudioError, RuntimeError):
    """Audio at a rate the adapter does not resample (MR-MT3 needs 16 kHz).

    An :class:`AudioError` (so also a ``ValueError``) and a ``RuntimeError``:
    mt3-infer 0.2.0 raised this case as ``RuntimeError`` from ``transcribe``."""


def _opt_int(name: str, value, minimum: int = 1) -> int:
    """None -> 0 (native default); else a positive int."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(value)


_FEATURE_MODES = {"anchor": None, "reference": "mt3_reference"}


def feature_preset(features: str):
    """``features=`` option of the MT3 adapters -> preset override (None = the anchor's)."""
    if features not in _FEATURE_MODES:
        raise ValueError(f"features must be 'anchor' (mt3-infer 0.2.0's spectrogram, the default) or "
                         f"'reference' (the Magenta/ddsp features the checkpoint was trained on), "
                         f"got {features!r}")
    return _FEATURE_MODES[features]


class _Progress:
    """The ``progress=`` option of a transcription as the native callback plus
    a closer (:mod:`mt3_infer.utils.progress`): None/False: no callback
    (quiet, as 0.2.0; Ctrl-C still honoured on the main thread); a callable:
    called as ``progress(segments_done, segments_total, tokens_done)`` (raise
    to stop the run; the exception propagates); True: a bar "Generating MIDI"
    on stderr, only when stderr is a terminal."""

    def __init__(self, progress):
        draw, self.callback = progress_helper.resolve(progress, none="off", true="tty",
                                                      what="segments_done, segments_total, tokens_done")
        self._bar = None
        if draw:
            self.callback = self._show

    def _show(self, done, total, tokens):
        if self._bar is None:
            self._bar = progress_helper.Bar(
                total, "Generating MIDI",
                lambda d, t, _s: f"Generating MIDI: {d}/{t} segments, {self._tokens} tokens", unit="segment")
        self._tokens = tokens
        self._bar.update_to(done, total, postfix={"tokens": tokens}, force=done == total)

    def close(self):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def midi_from_bytes(data: bytes):
    import mido

    return mido.MidiFile(file=io.BytesIO(data))


class MT3AdapterBase(_core.AdapterCore, MT3Base):
    """Common code of :class:`MRMT3Adapter` and :class:`MT3PyTorchAdapter`."""

    _RECIPE = ""
    _FAMILY = "mt3"  # the network family of the artifacts it loads (registry.FAMILIES)
    SAMPLE_RATE = 16000

    def __init__(self, *, num_threads: Optional[int] = None, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, dtype: str = "float32",
                 max_memory_mb: Optional[int] = None):
        _core.AdapterCore.__init__(self, self._RECIPE)
        MT3Base.__init__(self)
        self.num_threads = num_threads
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.dtype = dtype
        self.max_memory_mb = max_memory_mb
        # Continuous batching (a finished row's slot takes the next segment)
        # when the exported model supports it; False: batches drain, the
        # baseline.  Same tokens either way.
        self.continuous_batching = True
        _opt_int("max_memory_mb", max_memory_mb)
        _opt_int("num_threads", num_threads)
        _opt_int("batch_size", batch_size)
        _opt_int("max_new_tokens", max_new_tokens)
        self.checkpoint_path = None
        self.exported_path = None

    # -- loading -------------------------------------------------------------
    def load_model(self, checkpoint_path=None, device="auto"):
        """Load the network from an exported file (``mt3-infer export``) or the
        original ``mt3.pth`` (file or directory with config.json), which is
        exported once into ``<stem>.mt3i.pt`` beside it (needs torch).

        ``device``: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.  The
        native load runs without the GIL."""
        exported = self._resolve_exported(checkpoint_path)
        lib = prepare_engine()
        dev = "auto" if device is None else str(device)
        if dev == "mps":
            raise FrameworkError("device 'mps' is not supported by the libtorch engine; use 'cpu'")
        self._load_export(lib, exported, device=dev, dtype=self.dtype,
                          num_threads=_opt_int("num_threads", self.num_threads), prepack=prepack_enabled())
        self.checkpoint_path = os.fspath(checkpoint_path)
        self.exported_path = exported
        self._model_loaded = True

    def _resolve_exported(self, checkpoint_path) -> str:
        """The artifact to load for ``checkpoint_path``: the file itself, or
        the current export of the original checkpoint, made now when needed
        (:func:`mt3_infer.artifact.resolve`, this adapter's network family)."""
        if checkpoint_path is None:
            raise ValueError(f"checkpoint_path is required: an exported model (.pt) or "
                             f"{registry.FAMILIES[self._FAMILY]['what']}")
        return str(artifact.resolve(checkpoint_path, family=self._FAMILY))

    @property
    def device(self) -> Optional[str]:
        return self._device

    @property
    def model(self) -> Optional[dict]:
        """None until loaded (as 0.2.0's adapters); then the loaded network's
        metadata (``mt3_infer.json``: dimensions, source checksum).  The
        network itself lives in the native engine."""
        meta = self._meta_json
        return json.loads(meta) if meta else None

    # -- 0.2.0's stage hooks -----------------------------------------------------
    def _fused(self, stage: str):
        raise NotImplementedError(
            f"{type(self).__name__} runs preprocess, forward and decode as one native pipeline "
            f"(no separate {stage}() stage); call transcribe() / transcribe_notes(), or use "
            "mt3_infer.compute_features and mt3_infer.decode_tokens for single stages"
        )

    def preprocess(self, audio, sr):
        self._fused("preprocess")

    def forward(self, features):
        self._fused("forward")

    def decode(self, outputs):
        self._fused("decode")

    # -- running ---------------------------------------------------------------
    def _check_rate(self, sr: int) -> None:
        """Recipe-specific sample-rate rule (after the anchor's checks)."""

    def _call_options(self, batch_size, max_new_tokens, num_threads, max_memory_mb) -> dict:
        """Per-call options over the adapter's defaults, as the native ints (0 = default)."""
        def pick(name, value):
            return _opt_int(name, getattr(self, name) if value is None else value)

        return dict(batch_size=pick("batch_size", batch_size), max_new_tokens=pick("max_new_tokens", max_new_tokens),
                    num_threads=pick("num_threads", num_threads), max_memory_mb=pick("max_memory_mb", max_memory_mb))

    def _native(self, audio, sr, *, midi, notes, batch_size, max_new_tokens, num_threads, stats=False,
                progress=None, max_memory_mb=None, **extra):
        audio = self._check_input(audio, sr)
        sr = int(sr)
        self._check_rate(sr)
        kw = self._call_options(batch_size, max_new_tokens, num_threads, max_memory_mb)
        prog = _Progress(progress)
        try:
            return self._run(audio, sr, midi=midi, notes=notes, stats=stats, progress=prog.callback,
                             drain_only=not self.continuous_batching, **kw, **extra)
        finally:
            prog.close()

    def _extra_run_args(self) -> dict:
        return {}

    def transcribe_bytes(self, audio, sr=16000, *, batch_size=None, max_new_tokens=None,
                         num_threads=None, progress=None, max_memory_mb=None) -> bytes:
        """Like :meth:`transcribe`, returning the Standard MIDI File bytes."""
        data, _, _ = self._native(audio, sr, midi=True, notes=False, batch_size=batch_size,
                                  max_new_tokens=max_new_tokens, num_threads=num_threads,
                                  progress=progress, max_memory_mb=max_memory_mb, **self._extra_run_args())
        return data

    def transcribe(self, audio, sr=16000, *, batch_size=None, max_new_tokens=None, num_threads=None,
                   progress=None, max_memory_mb=None):
        """Transcribe ``audio`` (float32/float64, (n,) or (n, channels); int16/int32
        PCM also accepted) at rate ``sr`` into a ``mido.MidiFile`` — byte for
        byte the file mt3-infer 0.2.0's adapter writes.

        ``batch_size``: segments per network batch (default: as many as
        ``max_memory_mb`` allows, at most all); ``max_memory_mb``: the
        call's working-memory budget (default 2048): features are computed
        and decoded in windows of segments sized to it, so any length runs
        in bounded memory with the same output;
        ``max_new_tokens``: decoding cap per segment (default 1024);
        ``num_threads``: CPU threads.  The GIL is released throughout; several
        threads may transcribe on one adapter at once.

        ``progress``: None (quiet, the default); True: a "Generating MIDI"
        bar on stderr when it is a terminal (tqdm if installed); or a callable
        ``progress(segments_done, segments_total, tokens_done)``, called at
        most every ~0.2 s and after each batch (raise in it to stop the run:
        the exception propagates).  Ctrl-C stops a run on the main thread
        within ~0.2 s either way."""
        return midi_from_bytes(self.transcribe_bytes(audio, sr, batch_size=batch_size,
                                                     max_new_tokens=max_new_tokens,
                                                     num_threads=num_threads, progress=progress,
                                                     max_memory_mb=max_memory_mb))

    def transcribe_notes(self, audio, sr=16000, *, batch_size=None, max_new_tokens=None,
                         num_threads=None, progress=None, max_memory_mb=None) -> np.ndarray:
        """The notes of :meth:`transcribe` as a structured array (onset, offset
        in seconds f8; pitch, velocity, program i4; is_drum bool), sorted by
        (onset, pitch, program).  These are the decoded notes, before the
        MIDI writer's own post-processing (MT3-PyTorch's auto_filter).  The
        array is a :class:`mt3_infer.plot.NoteArray`: Jupyter shows it as
        its piano roll (with the ``plot`` extra); ``.plot()`` gives the figure."""
        _, notes, _ = self._native(audio, sr, midi=False, notes=True, batch_size=batch_size,
                                   max_new_tokens=max_new_tokens, num_threads=num_threads,
                                   progress=progress, max_memory_mb=max_memory_mb, **self._extra_run_args())
        return notes.view(NoteArray)

    def transcribe_with_notes(self, audio, sr=16000, *, batch_size=None, max_new_tokens=None,
                              num_threads=None, progress=None, max_memory_mb=None):
        """``(mido.MidiFile, notes)`` from one run of the network: what
        :meth:`transcribe` and :meth:`transcribe_notes` return, without
        transcribing twice."""
        data, notes, _ = self._native(audio, sr, midi=True, notes=True, batch_size=batch_size,
                                      max_new_tokens=max_new_tokens, num_threads=num_threads,
                                      progress=progress, max_memory_mb=max_memory_mb, **self._extra_run_args())
        return midi_from_bytes(data), notes.view(NoteArray)

    def transcribe_stats(self, audio, sr=16000, *, batch_size=None, max_new_tokens=None,
                         num_threads=None, progress=None, max_memory_mb=None):
        """(midi bytes, stats dict) — stats: segments, window and batch
        (segments per feature window and per decoder batch, from
        ``max_memory_mb``), encode_chunk (most segments per encoder call,
        from the encoder's working memory recorded at export), token_length,
        steps, row_steps (tokens computed),
        slot_steps (batch slots x steps) and padding (1 - row_steps /
        slot_steps: the share of batch slots left idle by rows that ended
        while their batch ran on), samples_16k and per-stage seconds
        (t_audio, t_features, t_network, t_notes).  For benchmarks."""
        data, _, stats = self._native(audio, sr, midi=True, notes=False, batch_size=batch_size,
                                      max_new_tokens=max_new_tokens, num_threads=num_threads,
                                      stats=True, progress=progress, max_memory_mb=max_memory_mb, **self._extra_run_args())
        return data, stats

    def stream(self, sr=16000, *, max_new_tokens=None, num_threads=None):
        """A :class:`mt3_infer.stream.TranscriptionStream`: ``push(chunk)``
        audio as it arrives (16 kHz), ``pop_notes()`` / iterate the notes as
        segments complete, ``close()`` for the rest; over the whole stream the
        notes (and ``midi()``) equal the offline call's on the same audio."""
        from ..stream import TranscriptionStream

        opts = self._call_options(None, max_new_tokens, num_threads, None)
        return TranscriptionStream(self, sr, max_new_tokens=opts["max_new_tokens"] or None,
                                   num_threads=opts["num_threads"] or None)

    #: Audio (16 kHz samples) loaded from paths for one native call of
    #: transcribe_many: inputs beyond it go to the next call.
    MANY_SAMPLES_PER_CALL = 16000 * 3600

    def transcribe_many(self, inputs, sr=16000, *, notes=False, batch_size=None, max_new_tokens=None,
                        num_threads=None, progress=None, max_memory_mb=None, stats=False):
        """Transcribe many inputs through one shared decoder (cross-file
        batching): the segments of all inputs go through the same windows and
        continuous batches, so short files fill each other's idle slots.

        ``inputs``: arrays (at rate ``sr``), ``(array, rate)`` pairs, or file
        paths (read as :meth:`mt3_infer.load_audio`: 16 kHz mono).  Returns a
        list in input order; item i is what :meth:`transcribe` returns for
        input i (with ``notes=True``: what :meth:`transcribe_with_notes`
        returns; ``stats=True``: ``(midi bytes, stats)`` as
        :meth:`transcribe_stats`; both: ``(midi bytes, notes, stats)``) —
        byte for byte — or, when input i cannot
        be transcribed (missing or corrupt file, bad array, wrong rate), the
        exception object it raised: the other inputs complete.  Errors that
        stop the whole run (Ctrl-C, an exception from ``progress``, a failing
        network) are raised.  Paths are loaded in groups of up to an hour of
        audio per native call; ``progress(segments_done, segments_total,
        tokens_done)`` counts the segments of the current group."""
        if not self._model_loaded:
            raise RuntimeError("Model not loaded. Call load_model() before transcription.")
        items = list(inputs)
        results = [None] * len(items)
        kw = self._call_options(batch_size, max_new_tokens, num_threads, max_memory_mb)
        prog = _Progress(progress)
        try:
            group, where, samples = [], [], 0
            for i, item in enumerate(items):
                try:
                    audio, rate = self._many_input(item, sr)
                except Exception as exc:  # this input only
                    results[i] = exc
                    continue
                group.append((audio, rate))
                where.append(i)
                samples += int(audio.shape[0]) if isinstance(audio, np.ndarray) else 0
                if samples >= self.MANY_SAMPLES_PER_CALL:
                    self._many_call(group, where, results, notes, stats, prog, kw)
                    group, where, samples = [], [], 0
            if group:
                self._many_call(group, where, results, notes, stats, prog, kw)
        finally:
            prog.close()
        return results

    def _many_input(self, item, sr):
        if isinstance(item, (str, os.PathLike)):
            from ..audio import load_audio

            audio, rate = load_audio(item)  # 16 kHz mono, as transcribe(path)
        elif isinstance(item, tuple) and len(item) == 2:
            audio, rate = item
        else:
            audio, rate = item, sr
        audio = self._check_input(audio, rate)
        self._check_rate(int(rate))
        return audio, int(rate)

    def _many_call(self, group, where, results, notes, stats, prog, kw):
        out = self._run_many([a for a, _ in group], [r for _, r in group], midi=True, notes=bool(notes),
                             stats=bool(stats), progress=prog.callback, drain_only=not self.continuous_batching,
                             **kw, **self._extra_run_args())
        for i, item in zip(where, out):
            if isinstance(item, BaseException):
                results[i] = item
                continue
            data, nts, st = item
            if stats and notes:
                results[i] = (data, nts, st)
            elif stats:
                results[i] = (data, st)
            elif notes:
                results[i] = (midi_from_bytes(data), nts)
            else:
                results[i] = midi_from_bytes(data)

    def unload(self):
        """Free the network (the adapter can be loaded again)."""
        self._unload()
        self._model_loaded = False
