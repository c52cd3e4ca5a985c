"""Piano-roll pictures (issue 19): mt3_infer.plot, the MIDI reader it takes
references from, NoteArray's notebook display, the CLI's --plot.

Pictures are rendered to SVG and read back: every note is one element whose
id names its kind, so the counts are checked against notes built here with
a known number of matches, extras and misses."""
import io
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

import mido
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import mt3_infer  # noqa: E402
from mt3_infer import codec  # noqa: E402
from mt3_infer.exceptions import DependencyError  # noqa: E402
from mt3_infer.plot import NoteArray, plot_notes, save_plot  # noqa: E402
from mt3_infer.utils.midi import midi_to_notes  # noqa: E402

pytest.importorskip("matplotlib")
pytest.importorskip("mir_eval")


def notes(rows):
    return np.array(rows, dtype=codec.NOTE_DTYPE)


def svg_ids(path):
    """Element ids of an SVG file, by kind prefix ('matched-3' -> 'matched')."""
    root = ET.parse(path).getroot()
    ids = [el.get("id") for el in root.iter() if el.get("id")]
    kinds = {}
    for i in ids:
        head, _, tail = i.rpartition("-")
        if head and tail.isdigit():
            kinds[head] = kinds.get(head, 0) + 1
    return kinds, root


def group_uses(root, gid):
    """Markers drawn in the group with id gid (matplotlib writes each scatter point as a <use>)."""
    for el in root.iter():
        if el.get("id") == gid:
            return sum(1 for c in el.iter() if c.tag.endswith("use"))
    return 0


def test_midi_reader_tempo_programs_drums(tmp_path):
    """A file written here tick by tick: 480 ticks per beat, 500000 us per
    beat (0.5 s) for the first beat, then 250000 us (0.25 s per beat)."""
    mid = mido.MidiFile(ticks_per_beat=480)
    t0, t1 = mido.MidiTrack(), mido.MidiTrack()
    mid.tracks += [t0, t1]
    t0.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))
    t0.append(mido.MetaMessage("set_tempo", tempo=250000, time=480))  # at 0.5 s
    t1.append(mido.Message("program_change", channel=2, program=33, time=0))
    t1.append(mido.Message("note_on", channel=2, note=40, velocity=90, time=240))  # 0.25 s
    t1.append(mido.Message("note_on", channel=9, note=36, velocity=70, time=0))   # drum, 0.25 s
    t1.append(mido.Message("note_on", channel=9, note=36, velocity=0, time=240))  # 0.5 s (vel 0 ends)
    t1.append(mido.Message("note_off", channel=2, note=40, velocity=0, time=480))  # 0.5 + 0.25 = 0.75 s
    t1.append(mido.Message("note_on", channel=0, note=72, velocity=50, time=0))   # 0.75 s, never ended
    t1.append(mido.Message("note_on", channel=0, note=60, velocity=60, time=960))  # 1.25 s, never ended
    path = tmp_path / "t.mid"
    mid.save(str(path))
    got = midi_to_notes(str(path))
    end = 1.25  # last event: notes left sounding close there
    want = notes([(0.25, 0.5, 36, 70, 0, True), (0.25, 0.75, 40, 90, 33, False),
                  (0.75, end, 72, 50, 0, False), (1.25, end, 60, 60, 0, False)])
    assert got.dtype == codec.NOTE_DTYPE and len(got) == 4
    for f in ("pitch", "velocity", "program", "is_drum"):
        np.testing.assert_array_equal(got[f], want[f], err_msg=f)
    # times: tick arithmetic of the tempo map in float64; mido's float sums err by < 1e-12 s
    np.testing.assert_allclose(got["onset"], want["onset"], atol=1e-9)
    np.testing.assert_allclose(got["offset"], want["offset"], atol=1e-9)
    # a MidiFile object reads the same
    np.testing.assert_array_equal(midi_to_notes(mido.MidiFile(str(path))), got)


def test_every_note_is_drawn_once(tmp_path):
    rng = np.random.default_rng(1)
    n, d = 37, 9
    on = np.sort(rng.uniform(0, 10, n))
    rows = [(o, o + rng.uniform(0.05, 1), int(rng.integers(30, 90)), 90, int(rng.integers(0, 128)), False)
            for o in on]
    rows += [(float(o), float(o) + 0.1, 36 + i % 3, 80, 0, True) for i, o in enumerate(np.sort(rng.uniform(0, 10, d)))]
    est = notes(rows)
    out = save_plot(est, tmp_path / "roll.svg")
    kinds, root = svg_ids(out)
    assert kinds.get("notes") == n and "matched" not in kinds
    assert group_uses(root, "drums") == d
    # no drums: no drum lane
    kinds2, root2 = svg_ids(save_plot(est[~est["is_drum"]], tmp_path / "roll2.svg"))
    assert kinds2.get("notes") == n and group_uses(root2, "drums") == 0


def test_reference_overlay_counts(tmp_path):
    """ref: 5 notes.  est: 3 at the same pitch within 30 ms (matches), one at
    a wrong pitch (extra; its reference note missed), one 80 ms late (extra;
    missed) -> 3 matched, 2 extra, 2 missed, onset F1 = 2*3/(5+5) = 0.6."""
    ref = notes([(t, t + 0.4, p, 80, 0, False) for t, p in [(0.0, 60), (0.5, 62), (1.0, 64), (1.5, 65), (2.0, 67)]])
    est = notes([(0.02, 0.4, 60, 80, 0, False), (0.47, 0.9, 62, 80, 0, False), (1.03, 1.4, 64, 80, 0, False),
                 (1.5, 1.9, 66, 80, 0, False), (2.08, 2.4, 67, 80, 0, False)])
    fig = plot_notes(est, reference=ref)
    assert "onset F1 0.600" in fig.get_suptitle()
    kinds, _ = svg_ids(save_plot(est, tmp_path / "cmp.svg", reference=ref))
    assert (kinds.get("matched"), kinds.get("extra"), kinds.get("missed")) == (3, 2, 2)
    # a reference given as a MIDI file: the notes written by the package's own writer
    path = tmp_path / "ref.mid"
    path.write_bytes(codec.notes_to_midi(ref, "pretty"))
    kinds, _ = svg_ids(save_plot(est, tmp_path / "cmp2.svg", reference=str(path)))
    assert (kinds.get("matched"), kinds.get("extra"), kinds.get("missed")) == (3, 2, 2)


def test_png_size_and_spectrogram_strip(tmp_path):
    import matplotlib.image as mpimg

    est = notes([(0.1, 0.5, 60, 80, 0, False)])
    audio = (0.1 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    p = save_plot(est, tmp_path / "a.png")
    img = mpimg.imread(p)
    assert img.shape[:2] == (round(5.8 * 110), round(12 * 110))  # (5 + 0.8) x 12 inches at 110 dpi
    q = save_plot(est, tmp_path / "b.png", audio=audio, sr=16000)
    img2 = mpimg.imread(q)
    assert img2.shape[:2] == (round((5.8 + 1.6) * 110), round(12 * 110))
    # the strip is the features: a 440 Hz tone lights one band, so rows differ
    assert np.std(img2[-200:-60, 200:1200, :3]) > 0.05
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        save_plot(est, tmp_path / "a.jpg")
    with pytest.raises(TypeError, match="NOTE_DTYPE"):
        plot_notes(np.zeros(3))
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".mt3_plot_")]  # no temporaries left


def test_note_array_displays_as_png():
    arr = notes([(0.1, 0.5, 60, 80, 0, False), (0.3, 0.6, 64, 80, 0, False)]).view(NoteArray)
    png = arr._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(arr["pitch"]) is np.ndarray and arr["pitch"].tolist() == [60, 64]
    assert isinstance(arr[:1], NoteArray)
    assert arr.plot().axes


def test_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(DependencyError, match=r"mt3-infer\[plot\]"):
        plot_notes(notes([(0.1, 0.5, 60, 80, 0, False)]))
    assert NoteArray._repr_png_(notes([(0.1, 0.5, 60, 80, 0, False)]).view(NoteArray)) is None


def test_import_does_not_load_matplotlib():
    code = "import sys, mt3_infer; assert callable(mt3_infer.plot_notes); print('matplotlib' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


def test_bundled_model_notes_are_a_note_array():
    model = mt3_infer.load_model("offline")
    audio = (0.2 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    got = model.transcribe_notes(audio, 16000, max_new_tokens=16)
    assert isinstance(got, NoteArray) and got.dtype == codec.NOTE_DTYPE
    buf = io.BytesIO()
    plot_notes(got).savefig(buf, format="svg")
    assert buf.getvalue().count(b'id="notes-') == len(got)
