"""0.2.0's ``mt3_infer.utils.midi``: hashing, validation, counts, preview audio.

Everything here works on ``mido.MidiFile`` objects, what ``transcribe``
returns; the note counting rule is the one the YourMT3 adapter's adaptive
mode ranks candidates by.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tempfile
import warnings
from typing import Optional, Tuple

import numpy as np


def midi_to_hash(midi) -> str:
    """SHA-256 (hex) of the Standard MIDI File bytes ``midi`` saves to."""
    buf = io.BytesIO()
    midi.save(file=buf)
    return hashlib.sha256(buf.getvalue()).hexdigest()


def validate_midi(midi) -> Tuple[bool, str]:
    """``(True, "")`` or ``(False, why)``: at least one track, no negative
    delta times, velocities in 0..127.  Notes left sounding at the end of a
    track give a ``UserWarning`` (still valid), as in 0.2.0."""
    if len(midi.tracks) == 0:
        return False, "MIDI file has no tracks"
    for index, track in enumerate(midi.tracks):
        sounding = set()
        for msg in track:
            if msg.time < 0:
                return False, f"Track {index}: negative time delta {msg.time}"
            if msg.type == "note_on" and msg.velocity > 0:
                if not 0 <= msg.velocity <= 127:
                    return False, f"Track {index}: invalid velocity {msg.velocity}, must be in [0, 127]"
                sounding.add(msg.note)
            elif msg.type in ("note_on", "note_off"):
                sounding.discard(msg.note)
        if sounding:
            warnings.warn(f"Track {index}: {len(sounding)} unclosed notes. "
                          "This may indicate improper MIDI generation.", UserWarning, stacklevel=2)
    return True, ""


def count_notes(midi) -> int:
    """Number of ``note_on`` messages with velocity > 0, over all tracks."""
    return sum(1 for track in midi.tracks for msg in track if msg.type == "note_on" and msg.velocity > 0)


def midi_to_notes(midi) -> np.ndarray:
    """The notes of a MIDI file as a ``codec.NOTE_DTYPE`` array (what
    ``transcribe_notes`` returns): ``midi`` a ``mido.MidiFile``, a path, or
    the bytes of a file (what ``transcribe`` and the CLI write).
    Tracks merged, tempo map applied (``mido`` iteration, times in seconds);
    channel 10 (index 9) is drums; each note takes its channel's latest
    program change; a note-on at velocity 0 ends a note; overlapping notes
    of one key end first-in first-out; notes still sounding at the end close
    there.  Sorted by (onset, pitch, program)."""
    import mido

    from ..codec import NOTE_DTYPE

    if isinstance(midi, (str, os.PathLike)):
        midi = mido.MidiFile(os.fspath(midi))
    elif isinstance(midi, (bytes, bytearray, memoryview)):
        import io

        midi = mido.MidiFile(file=io.BytesIO(bytes(midi)))
    program = [0] * 16
    active: dict = {}
    rows = []
    now = 0.0
    for msg in midi:
        now += msg.time
        if msg.type == "program_change":
            program[msg.channel] = msg.program
        elif msg.type == "note_on" and msg.velocity > 0:
            active.setdefault((msg.channel, msg.note), []).append((now, msg.velocity, program[msg.channel]))
        elif msg.type in ("note_on", "note_off"):
            started = active.get((msg.channel, msg.note))
            if started:
                t0, vel, prog = started.pop(0)
                rows.append((t0, now, msg.note, vel, prog, msg.channel == 9))
    for (channel, note), started in active.items():
        rows.extend((t0, now, note, vel, prog, channel == 9) for t0, vel, prog in started)
    out = np.array(rows, dtype=NOTE_DTYPE) if rows else np.zeros(0, NOTE_DTYPE)
    return out[np.lexsort((out["program"], out["pitch"], out["onset"]))]


def get_midi_duration(midi) -> float:
    """Length in seconds (``mido.MidiFile.length``: tempo map applied)."""
    return float(midi.length)


_SOUNDFONTS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
)


def midi_to_audio(midi, sr: int = 44100, soundfont_path: Optional[str] = None) -> np.ndarray:
    """Render ``midi`` to mono float32 audio at ``sr``, peak-normalized to 1,
    with the ``fluidsynth`` program (Debian/Ubuntu: ``apt install fluidsynth
    fluid-soundfont-gm``; macOS: ``brew install fluid-synth``) and a GM
    soundfont (``soundfont_path``, else the first system one found).
    For listening to a transcription, not for measurements."""
    from .. import _core
    from ..audio import load_audio

    sr = _core.check_sample_rate(sr)
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise ImportError("MIDI synthesis needs the fluidsynth program: apt install fluidsynth "
                          "fluid-soundfont-gm (Debian/Ubuntu) or brew install fluid-synth (macOS)")
    if soundfont_path is None:
        soundfont_path = next((p for p in _SOUNDFONTS if os.path.isfile(p)), None)
        if soundfont_path is None:
            raise RuntimeError("No soundfont found; pass soundfont_path= or install one "
                               "(apt install fluid-soundfont-gm)")
    elif not os.path.isfile(soundfont_path):
        raise FileNotFoundError(f"soundfont not found: {soundfont_path}")
    with tempfile.TemporaryDirectory(prefix="mt3_infer_render_") as tmp:
        mid = os.path.join(tmp, "in.mid")
        wav = os.path.join(tmp, "out.wav")
        midi.save(mid)
        proc = subprocess.run([exe, "-ni", "-q", "-F", wav, "-T", "wav", "-r", str(sr), os.fspath(soundfont_path), mid],
                              capture_output=True, text=True)
        if proc.returncode != 0 or not os.path.isfile(wav):
            raise RuntimeError(f"fluidsynth failed (exit {proc.returncode}): {proc.stderr.strip()}")
        audio, _ = load_audio(wav, sr=None)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio / peak if peak > 0 else audio


__all__ = ["midi_to_hash", "validate_midi", "count_notes", "midi_to_notes", "get_midi_duration", "midi_to_audio"]
