"""Piano-roll pictures of transcribed notes (the ``plot`` extra: matplotlib).

``plot_notes(notes)`` draws time on x and pitch on y, one colour per General
MIDI program family, drums as marks on a lane of their own; with
``reference=`` notes (a stored MIDI file, say) each estimated note is drawn
as matched (a reference note of the same pitch with its onset within 50 ms,
matched one-to-one by mir_eval, the same rule as the demo's onset F1) or
extra, and the reference notes left over as misses; with ``audio=`` a
spectrogram strip (the log-mel features the MT3 models read) runs under it.

``import mt3_infer`` never imports this module or matplotlib; the first call
does, and a missing extra raises :class:`~mt3_infer.exceptions.DependencyError`
naming ``pip install 'mt3-infer[plot]'``.

In an SVG every drawn note is its own element inside a group whose id names
its kind (``notes`` / ``matched`` / ``extra`` / ``missed`` / ``drums``), so a
picture can be checked by counting.
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import numpy as np

from .exceptions import DependencyError

__all__ = ["plot_notes", "save_plot", "NoteArray", "as_notes", "require_matplotlib"]

ONSET_TOLERANCE = 0.05  # seconds, mir_eval's default and the demo's onset F1
_EXTRA_HINT = "pip install 'mt3-infer[plot]'"
# one colour per GM program family of 8 (piano, chromatic perc., organ, guitar, bass, strings, ...)
_FAMILY_COLOURS = ["#1f77b4", "#17becf", "#9467bd", "#2ca02c", "#8c564b", "#d62728", "#e377c2",
                   "#ff7f0e", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a", "#ff9896", "#c5b0d5",
                   "#c49c94", "#dbdb8d"]
_FAMILY_NAMES = ["piano", "chromatic perc.", "organ", "guitar", "bass", "strings", "ensemble", "brass",
                 "reed", "pipe", "synth lead", "synth pad", "synth effects", "ethnic", "percussive",
                 "sound effects"]


def require_matplotlib():
    """matplotlib's object-oriented API (no pyplot: no global figure state,
    no GUI backend), or DependencyError naming the extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise DependencyError(f"plotting notes needs matplotlib ({exc}); install it with: {_EXTRA_HINT}") from exc
    return Figure


def _mir_eval():
    try:
        import mir_eval.transcription as tr
    except ImportError as exc:
        raise DependencyError(f"matching against a reference needs mir_eval ({exc}); install it with: "
                              f"{_EXTRA_HINT}") from exc
    return tr


def as_notes(notes: Any, what: str = "notes") -> np.ndarray:
    """``notes`` as a NOTE_DTYPE array: a structured array of that dtype, a
    ``mido.MidiFile`` or a path to a .mid file (read with the package's MIDI
    reader, :func:`mt3_infer.utils.midi.midi_to_notes`)."""
    from . import codec
    from .utils.midi import midi_to_notes

    if isinstance(notes, (str, os.PathLike)) or hasattr(notes, "tracks"):
        return midi_to_notes(notes)
    if isinstance(notes, np.ndarray) and notes.dtype == codec.NOTE_DTYPE:
        return notes.view(np.ndarray)
    raise TypeError(f"{what} must be a NOTE_DTYPE array (transcribe_notes), a mido.MidiFile or a .mid "
                    f"path, got {type(notes).__name__}"
                    + (f" of dtype {notes.dtype}" if isinstance(notes, np.ndarray) else ""))


def _match(est: np.ndarray, ref: np.ndarray):
    """Indices (matched est, extra est, missed ref) of pitched notes: same
    pitch, onset within ONSET_TOLERANCE, one-to-one (mir_eval's bipartite
    matching; offsets ignored)."""
    if len(est) == 0 or len(ref) == 0:
        return np.zeros(0, int), np.arange(len(est)), np.arange(len(ref))
    tr = _mir_eval()

    def iv(n):
        return np.stack([n["onset"], np.maximum(n["offset"], n["onset"] + 1e-6)], axis=1)

    hz = lambda p: 440.0 * 2.0 ** ((p.astype(np.float64) - 69.0) / 12.0)  # noqa: E731
    pairs = tr.match_notes(iv(ref), hz(ref["pitch"]), iv(est), hz(est["pitch"]),
                           onset_tolerance=ONSET_TOLERANCE, offset_ratio=None)
    me = np.array(sorted(e for _, e in pairs), dtype=int)
    mr = {r for r, _ in pairs}
    extra = np.setdiff1d(np.arange(len(est)), me)
    missed = np.array([i for i in range(len(ref)) if i not in mr], dtype=int)
    return me, extra, missed


def _bars(ax, notes, gid, facecolors, edgecolor="none", hatch=None, alpha=0.9, lw=0.6, fill=True):
    from matplotlib.patches import Rectangle

    for i, n in enumerate(notes):
        r = Rectangle((n["onset"], n["pitch"] - 0.4), max(n["offset"] - n["onset"], 0.01), 0.8,
                      facecolor=facecolors[i] if fill else "none", edgecolor=edgecolor, hatch=hatch,
                      alpha=alpha, linewidth=lw)
        r.set_gid(f"{gid}-{i}")
        ax.add_patch(r)


def plot_notes(notes: Any, *, reference: Any = None, audio: Optional[np.ndarray] = None, sr: int = 16000,
               title: Optional[str] = None, width: float = 12.0, seconds: Optional[Sequence[float]] = None):
    """A ``matplotlib.figure.Figure`` of ``notes`` as a piano roll.

    Args:
        notes: NOTE_DTYPE array (``transcribe_notes``), ``mido.MidiFile`` or .mid path.
        reference: optional notes of the same kinds to compare with: estimated
            pitched notes are drawn filled when matched, hatched red when extra;
            reference notes with no match are drawn as black outlines (missed).
            The title gives the counts and the onset F1.
        audio, sr: optional audio of the clip: a log-mel spectrogram strip
            (the mr_mt3 features, 8 ms hop) is drawn under the roll.
        title: figure title (default: note counts).
        width: figure width in inches (height follows).
        seconds: optional (start, end) of the time axis.
    """
    Figure = require_matplotlib()
    est = as_notes(notes)
    ref = as_notes(reference, "reference") if reference is not None else None
    pitched, drums = est[~est["is_drum"]], est[est["is_drum"]]
    ref_pitched = ref[~ref["is_drum"]] if ref is not None else None
    ref_drums = ref[ref["is_drum"]] if ref is not None else np.zeros(0, est.dtype)
    has_drums = len(drums) > 0 or len(ref_drums) > 0
    rows = [("roll", 5.0)] + ([("drums", 1.2)] if has_drums else []) + ([("spec", 1.6)] if audio is not None else [])
    fig = Figure(figsize=(width, sum(h for _, h in rows) + 0.8), layout="constrained")
    axes = fig.subplots(len(rows), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": [h for _, h in rows]})
    ax = {name: axes[i, 0] for i, (name, _) in enumerate(rows)}
    roll = ax["roll"]

    colours = [_FAMILY_COLOURS[min(int(p), 127) // 8] for p in pitched["program"]]
    if ref_pitched is None:
        _bars(roll, pitched, "notes", colours)
        head = f"{len(pitched)} notes" + (f", {len(drums)} drum hits" if len(drums) else "")
    else:
        me, extra, missed = _match(pitched, ref_pitched)
        _bars(roll, pitched[me], "matched", [colours[i] for i in me])
        _bars(roll, pitched[extra], "extra", ["#ffb3b3"] * len(extra), edgecolor="#d62728", hatch="////", lw=0.8)
        _bars(roll, ref_pitched[missed], "missed", [None] * len(missed), edgecolor="black", lw=1.0,
              alpha=1.0, fill=False)
        p = len(me) / len(pitched) if len(pitched) else 0.0
        r = len(me) / len(ref_pitched) if len(ref_pitched) else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        head = (f"{len(me)} matched, {len(extra)} extra (hatched red), {len(missed)} missed (outlined); "
                f"onset F1 {f1:.3f} ({int(ONSET_TOLERANCE * 1000)} ms)")
    fig.suptitle(title if title is not None else head, fontsize=10)
    if title is not None:
        roll.set_title(head, fontsize=9)
    allp = np.concatenate([pitched["pitch"], ref_pitched["pitch"] if ref_pitched is not None else []])
    lo, hi = (int(allp.min()) - 2, int(allp.max()) + 2) if len(allp) else (20, 109)
    roll.set_ylim(lo, hi)
    roll.set_ylabel("MIDI pitch")
    # legend: the program families present
    from matplotlib.patches import Patch

    fams = sorted({min(int(p), 127) // 8 for p in pitched["program"]})
    handles = [Patch(color=_FAMILY_COLOURS[f], label=_FAMILY_NAMES[f]) for f in fams]
    if ref_pitched is not None:
        handles += [Patch(facecolor="#ffb3b3", edgecolor="#d62728", hatch="////", label="extra"),
                    Patch(facecolor="none", edgecolor="black", label="missed")]
    if handles:
        roll.legend(handles=handles, loc="upper right", fontsize=7, ncols=min(len(handles), 6), framealpha=0.8)

    if has_drums:
        d = ax["drums"]
        if len(drums):
            sc = d.scatter(drums["onset"], drums["pitch"], marker="x", s=14, color="#333333", linewidths=0.8)
            sc.set_gid("drums")
        if len(ref_drums):
            rc = d.scatter(ref_drums["onset"], ref_drums["pitch"], marker="o", s=18, facecolors="none",
                           edgecolors="#999999", linewidths=0.6)
            rc.set_gid("reference-drums")
        d.set_ylabel("drums")
    if audio is not None:
        from .features import compute_features

        feats = compute_features(audio, sr, preset="mr_mt3")  # (S, 256, 512), hop 128 at 16 kHz
        spec = feats.reshape(-1, feats.shape[-1]).T
        s = ax["spec"]
        s.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                 extent=(0.0, spec.shape[1] * 128 / 16000.0, 0, spec.shape[0]), interpolation="nearest")
        s.set_ylabel("mel bin")
    end = max([float(est["offset"].max()) if len(est) else 0.0,
               float(ref["offset"].max()) if ref is not None and len(ref) else 0.0,
               len(audio) / sr if audio is not None else 0.0, 1.0])
    axes[-1, 0].set_xlim(*(seconds if seconds is not None else (0.0, end)))
    axes[-1, 0].set_xlabel("time (s)")
    return fig


def save_plot(notes: Any, path, **kwargs) -> str:
    """Write :func:`plot_notes` of ``notes`` to ``path`` (``.png`` or
    ``.svg``), atomically: a temporary file in the same folder, then a
    rename.  Returns the path."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".png", ".svg"):
        raise ValueError(f"plot file {path!r}: the name must end in .png or .svg")
    fig = plot_notes(notes, **kwargs)
    from .utils.atomic import atomic_path

    with atomic_path(path, prefix=".mt3_plot_") as tmp:
        fig.savefig(tmp, format=ext[1:], dpi=110)
    return path


class NoteArray(np.ndarray):
    """The notes of ``transcribe_notes``: a NOTE_DTYPE structured array that
    Jupyter shows as its piano roll (``_repr_png_``); everything else is
    NumPy's (a field, e.g. ``notes["pitch"]``, is a plain array).
    ``notes.view(np.ndarray)`` gives the plain array."""

    def __getitem__(self, key):
        out = super().__getitem__(key)
        if isinstance(out, np.ndarray) and out.dtype != self.dtype:
            return out.view(np.ndarray)
        return out

    def _repr_png_(self):
        import io

        if self.ndim != 1:
            return None
        try:
            fig = plot_notes(self.view(np.ndarray))
        except DependencyError:
            return None  # no extra: Jupyter falls back to the text repr
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()

    def plot(self, **kwargs):
        """:func:`plot_notes` of these notes."""
        return plot_notes(self.view(np.ndarray), **kwargs)
