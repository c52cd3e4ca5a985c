"""Token decoding, note assembly and MIDI writing (native core).

Everything after the network: raw decoder ids -> notes -> Standard MIDI File
bytes, reproducing each mt3-infer 0.2.0 adapter by default:

======================  ===========================  ===================
scheme / style          tokens                        MIDI writer
======================  ===========================  ===================
``"mt3_pytorch"``       (segments, length), 1536 ids  ``"pretty"`` (pretty_midi
                        Magenta decoding, start times   equivalent, auto_filter
                        floored to 10 ms                on by default)
``"mr_mt3"``            (segments, length), 1536 ids  ``"mr_mt3"`` (single track,
                        the anchor's own rules          truncated delta ticks)
``"yourmt3"``           (segments, 13, length),       ``"yourmt3"`` (480 tpq,
                        596 ids                         named tracks)
``"magenta"``           (segments, length), 1536 ids  ``"magenta"`` (note_seq
                        Magenta's own decoding of the   -> pretty_midi, the
                        ``mt3`` checkpoint              Colab's file)
``"magenta_piano"``     (segments, length), 1664 ids  ``"magenta"``
                        Magenta ``ismir2021``: 127
                        velocity bins, no ties
======================  ===========================  ===================

``"magenta"`` is ``"mt3_pytorch"``'s decoder with Magenta's token
post-processing (specs/magenta-t5x.md §5.6): PAD, UNK, T5 extra and padding ids
are invalid events that are skipped, so a generated UNK does not end the
segment.  ``"magenta_piano"`` uses the same rule on the 1664-id vocabulary
(velocity = bin 1..127, initial 100), no tie sections (notes stay active across
segments; a tie token is invalid) and starts floored from 4.096 s steps.

A fourth writer, ``"magenta"``, is what Magenta's own Colab writes
(``note_seq.sequence_proto_to_midi_file`` through pretty_midi): the ``"pretty"``
byte conventions, but an empty unnamed program-0 instrument first, instruments
numbered as Magenta's ``assign_instruments`` does (new pitched programs in note
order get 0-8, 10, 11, ...; drums 9), tracks in instrument order, named
("Drums" or the General MIDI program name) except instrument 0, and no
auto_filter.  It wants notes in Magenta's append order, e.g.
``notes_to_midi(decode_tokens(tokens, "mt3_pytorch", sort=False), "magenta")``.

Tokens are the raw ids each model emits *after* its start token, PAD (0) after
EOS; any integer dtype.  Corrected behaviour (the specs' [F] items) is only
used with ``corrected=True`` or explicit ``flags``:

* ``mr_mt3`` decoding: Magenta's drop rule for events past the next segment's
  start (``DECODE_MRMT3_DROP_RULE``) and Magenta's 10 ms drums without the
  program-9 collision (``DECODE_MRMT3_MAGENTA_DRUMS``);
* ``yourmt3`` decoding: overlaps trimmed again after the program remap
  (``DECODE_YMT3_TRIM_AFTER_REMAP``);
* ``mr_mt3`` MIDI: drift-free ticks from absolute times (``MIDI_ABS_TICKS``)
  and one channel + program change per program (``MIDI_PROGRAM_CHANNELS``).

``DECODE_YMT3_NO_REMAP`` returns the programs YourMT3 emitted instead of the
gm_ext_plus group heads written to MIDI.
"""
from __future__ import annotations

import numpy as np

from . import _core

__all__ = [
    "NOTE_DTYPE",
    "SCHEMES",
    "MIDI_STYLES",
    "decode_tokens",
    "notes_to_midi",
    "tokens_to_midi",
    "default_segment_starts",
    "DECODE_MRMT3_DROP_RULE",
    "DECODE_MRMT3_MAGENTA_DRUMS",
    "DECODE_YMT3_TRIM_AFTER_REMAP",
    "DECODE_YMT3_NO_REMAP",
    "DECODE_CORRECTED",
    "MIDI_AUTO_FILTER",
    "MIDI_ABS_TICKS",
    "MIDI_PROGRAM_CHANNELS",
    "MIDI_CORRECTED",
]

#: Notes: times in seconds, sorted by (onset, pitch, program) unless noted.
#: Fields onset, offset (f8), pitch, velocity, program (i4), is_drum (?),
#: packed; defined once in the native module, which builds every note array.
NOTE_DTYPE = _core.NOTE_DTYPE

#: Decoding schemes and MIDI writers by name (the native tables' names).
SCHEMES = _core.SCHEMES
MIDI_STYLES = _core.MIDI_STYLES

DECODE_MRMT3_DROP_RULE = _core.DECODE_MRMT3_DROP_RULE
DECODE_MRMT3_MAGENTA_DRUMS = _core.DECODE_MRMT3_MAGENTA_DRUMS
DECODE_YMT3_TRIM_AFTER_REMAP = _core.DECODE_YMT3_TRIM_AFTER_REMAP
DECODE_YMT3_NO_REMAP = _core.DECODE_YMT3_NO_REMAP
DECODE_CORRECTED = _core.DECODE_CORRECTED
MIDI_AUTO_FILTER = _core.MIDI_AUTO_FILTER
MIDI_ABS_TICKS = _core.MIDI_ABS_TICKS
MIDI_PROGRAM_CHANNELS = _core.MIDI_PROGRAM_CHANNELS
MIDI_CORRECTED = _core.MIDI_CORRECTED


def decode_tokens(tokens, scheme, segment_starts=None, *, corrected=False, flags=0, sort=True):
    """Decode raw model ids into notes.

    Args:
        tokens: integer array, shape ``(segments, length)`` for ``"mt3_pytorch"``,
            ``"mr_mt3"``, ``"magenta"`` and ``"magenta_piano"``,
            ``(segments, 13, length)`` for ``"yourmt3"``.
        scheme: one of :data:`SCHEMES`: ``"mt3_pytorch"``, ``"mr_mt3"``,
            ``"yourmt3"``, ``"magenta"`` or ``"magenta_piano"``.
        segment_starts: start time (s) of each segment; ``None`` uses the
            adapter's own convention (``default_segment_starts``).
        corrected: apply the scheme's corrected ([F]) rules instead of the
            anchor's (see the module docstring).
        flags: extra ``DECODE_*`` bits.
        sort: sort by (onset, pitch, program) (stable); ``False`` keeps the
            scheme's own order, which its MIDI writer depends on.

    Returns:
        structured array of ``NOTE_DTYPE``.  Drum notes carry program 0
        (MR-MT3's flushed drums: 9, as in the anchor) for the MT3 schemes and
        128 for YourMT3; YourMT3 velocities are 100 (what its MIDI holds),
        ``"magenta_piano"`` velocities the decoded bin (100 before any).

    Raises:
        ValueError: bad shape, dtype, scheme, flags or start times; YourMT3 ids
            outside 0..595.  MT3 ids outside the codec are skipped as invalid
            events, as the anchor does.
    """
    return _core.decode_tokens(
        tokens, scheme, segment_starts, corrected=bool(corrected), flags=int(flags), sort=bool(sort)
    )


def _as_note_array(notes):
    if isinstance(notes, np.ndarray) and notes.dtype.names:
        return notes
    try:
        rows = [tuple(n) for n in notes]
        return np.array(rows, dtype=NOTE_DTYPE) if rows else np.zeros(0, NOTE_DTYPE)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "notes must be a structured array of NOTE_DTYPE or a sequence of "
            "(onset, offset, pitch, velocity, program, is_drum) tuples"
        ) from exc


def notes_to_midi(notes, style, auto_filter=True, *, corrected=False, flags=0):
    """Write notes as Standard MIDI File bytes.

    Args:
        notes: ``NOTE_DTYPE`` array (or (onset, offset, pitch, velocity,
            program, is_drum) tuples).  Times in seconds >= 0, offset >= onset,
            pitch/velocity 0..127, program 0..127 (128 allowed for drums).
        style: ``"mr_mt3"``, ``"pretty"`` (alias ``"mt3_pytorch"``), ``"yourmt3"`` or
            ``"magenta"`` (note_seq -> pretty_midi, as Magenta's Colab writes).
        auto_filter: ``"pretty"`` only: the MT3-PyTorch adapter's drum-leakage
            filter (on by default, as in the anchor); ignored by other styles.
        corrected: ``"mr_mt3"``: drift-free ticks and per-program channels.
        flags: extra ``MIDI_*`` bits.

    Note order matters as in the anchor: ``"mr_mt3"`` keeps input order among
    equal onsets, ``"pretty"`` orders tracks by first appearance of
    (program, is_drum) and ``"magenta"`` numbers instruments by first
    appearance of their program.  Sorted notes therefore can give other bytes
    than the anchor; use :func:`tokens_to_midi` for the anchor's exact file.
    """
    return _core.notes_to_midi(
        _as_note_array(notes), style, auto_filter=bool(auto_filter), corrected=bool(corrected),
        flags=int(flags)
    )


def tokens_to_midi(tokens, scheme, segment_starts=None, *, auto_filter=True, corrected=False,
                   flags=0, midi_flags=0):
    """Decode tokens and write them with the scheme's own writer in one native call.

    Returns ``(midi_bytes, notes)`` with the notes in the scheme's order (the
    order the writer saw).  ``auto_filter`` applies to ``"mt3_pytorch"`` only;
    ``corrected`` switches both stages to their corrected rules.  ValueError
    for a scheme without a MIDI recipe (e.g. ``"magenta"`` until one exists).
    """
    return _core.tokens_to_midi(
        tokens, scheme, segment_starts, corrected=bool(corrected), flags=int(flags),
        auto_filter=bool(auto_filter), midi_flags=int(midi_flags)
    )


def default_segment_starts(scheme, n):
    """Start times (s) the adapter of ``scheme`` gives its first ``n`` segments:
    ``mt3_pytorch`` and ``magenta`` floor 2.048 i to 10 ms, ``magenta_piano``
    floors 4.096 i, ``mr_mt3`` uses 2.048 i exactly, ``yourmt3`` 32767 i / 16000."""
    return _core.segment_starts(scheme, int(n))
