"""mt3-infer 0.2.0's extension points and helpers (issue 18): the MT3Base
template for user adapters, the ``mt3_infer.utils`` modules, the private
registry view, and the two API contracts of 0.2.0's GitHub suite that fail
there only because they pass a checkpoint path that does not exist.

References are independent of the code under test: NumPy float64 means,
``scipy.signal.resample``, hashlib over the bytes mido writes, hand-computed
MIDI durations."""
import hashlib
import io
import warnings
from pathlib import Path
from types import SimpleNamespace

import mido
import numpy as np
import pytest

import mt3_infer
import mt3_infer.api as api
from mt3_infer import AudioError, CheckpointDownloadError, FrameworkError, InferenceError, MT3Base, MT3Session
from mt3_infer.adapters import MRMT3Adapter, MT3PyTorchAdapter, YourMT3Adapter
from mt3_infer.utils import audio as uaudio
from mt3_infer.utils import download as udownload
from mt3_infer.utils import framework as uframework
from mt3_infer.utils import midi as umidi
from tests._mt3_http import FileServer

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# MT3Base: 0.2.0's template for subclasses
# ---------------------------------------------------------------------------
class Recorder(MT3Base):
    """A user adapter written on 0.2.0's base class."""

    def __init__(self, fail_in=None):
        super().__init__()
        self.calls = []
        self.fail_in = fail_in

    def load_model(self, checkpoint_path=None, device="auto"):
        self._model_loaded = True

    def preprocess(self, audio, sr):
        self.calls.append(("preprocess", audio.copy(), sr))
        if self.fail_in == "preprocess":
            raise KeyError("no such bin")
        return audio * 2

    def forward(self, features):
        self.calls.append(("forward", features.copy()))
        return features.sum()

    def decode(self, outputs):
        self.calls.append(("decode", outputs))
        midi = mido.MidiFile()
        midi.tracks.append(mido.MidiTrack())
        return midi


def loaded(**kw):
    a = Recorder(**kw)
    a.load_model("x")
    return a


def test_template_runs_stages_in_order_with_mono_mix():
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = (rng.uniform(-0.5, 0.5, (300, 3))).astype(dtype)
        a = loaded()
        midi = a.transcribe(x, sr=22050)
        assert isinstance(midi, mido.MidiFile)
        assert [c[0] for c in a.calls] == ["preprocess", "forward", "decode"]
        _, got, sr = a.calls[0]
        assert sr == 22050 and got.dtype == dtype and got.shape == (300,)
        # np.mean in the input dtype (0.2.0's rule) against the float64 mean:
        # a sum of 3 terms rounded twice (<= 2u * sum|x|) and a division
        # rounded once (<= u * |mean|), u = 2**-24 (float32) or 2**-53
        ref = x.astype(np.float64).mean(axis=1)
        u = np.finfo(dtype).eps / 2
        bound = u * (2 * np.abs(x.astype(np.float64)).sum(axis=1) / 3 + np.abs(ref)) * 1.01
        assert np.all(np.abs(got.astype(np.float64) - ref) <= bound)
        np.testing.assert_allclose(a.calls[1][1], got * 2)
        assert a.calls[2][1] == pytest.approx(float(np.sum(got.astype(np.float64) * 2)), rel=1e-5)


def test_template_passes_mono_unchanged():
    x = np.linspace(-1, 1, 100, dtype=np.float32)
    a = loaded()
    a.transcribe(x, 16000)
    np.testing.assert_array_equal(a.calls[0][1], x)


def test_template_checks_in_anchor_order():
    a = Recorder()
    with pytest.raises(RuntimeError, match="Model not loaded"):
        a.transcribe(np.zeros(10, np.float32))
    a.load_model("x")
    with pytest.raises(ValueError, match="must be numpy.ndarray"):
        a.transcribe([0.0, 0.1])
    with pytest.raises(AudioError, match="dtype must be float32 or float64"):
        a.transcribe(np.zeros(10, np.int16))  # the template keeps 0.2.0's float-only rule
    with pytest.raises(AudioError, match="1D or 2D"):
        a.transcribe(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(AudioError, match="empty"):
        a.transcribe(np.zeros(0, np.float32))
    for sr in (0, -1, 16000.0, True):
        with pytest.raises(AudioError, match="sample rate must be positive integer"):
            a.transcribe(np.zeros(10, np.float32), sr=sr)
    with pytest.warns(UserWarning, match="exceed"):
        a.transcribe(np.array([0.5, 2.0], np.float32))
    assert a.transcribe(np.zeros(4, np.float32), sr=np.int64(8000)) is not None


def test_template_refuses_what_0_2_0_silently_averaged():
    a = loaded()
    with pytest.raises(AudioError, match="channels-first"):
        a.transcribe(np.zeros((2, 1000), np.float32))
    for bad, word in ((np.nan, "NaN"), (np.inf, "Inf")):
        x = np.zeros(100, np.float32)
        x[7] = bad
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no loudness warning for Inf either
            with pytest.raises(AudioError, match=f"{word} at sample 7"):
                a.transcribe(x)
    assert a.calls == []


def test_template_wraps_stage_errors():
    a = loaded(fail_in="preprocess")
    with pytest.raises(InferenceError, match="Transcription failed during KeyError") as info:
        a.transcribe(np.zeros(10, np.float32))
    assert isinstance(info.value, RuntimeError) and isinstance(info.value.__cause__, KeyError)


def test_base_is_abstract_over_all_four_stages():
    with pytest.raises(TypeError):
        MT3Base()

    class NoDecode(MT3Base):
        def load_model(self, checkpoint_path=None, device="auto"):
            pass

        def preprocess(self, audio, sr):
            return audio

        def forward(self, features):
            return features

    with pytest.raises(TypeError, match="decode"):
        NoDecode()


@pytest.mark.parametrize("cls", [MRMT3Adapter, MT3PyTorchAdapter, YourMT3Adapter])
def test_native_adapters_keep_their_own_path(cls):
    a = cls()
    assert isinstance(a, MT3Base) and a.model is None and "not loaded" in repr(a)
    assert cls.transcribe is not MT3Base.transcribe
    with pytest.raises(NotImplementedError, match="transcribe"):
        a.preprocess(np.zeros(10, np.float32), 16000)
    with pytest.raises(NotImplementedError, match="one native pipeline"):
        a.decode(None)


# ---------------------------------------------------------------------------
# mt3_infer.utils.audio
# ---------------------------------------------------------------------------
def test_validate_audio():
    ok = np.zeros((100, 2), np.float64)
    assert uaudio.validate_audio(ok) == (True, "")
    cases = [
        ([1.0], "numpy.ndarray"),
        (np.zeros((2, 2, 2), np.float32), "1D or 2D"),
        (np.zeros(3, np.int16), "float32 or float64"),
        (np.zeros(0, np.float32), "empty"),
        (np.array([100.0, 1.0], np.float32), "suspiciously large"),
        (np.array([0.0, np.nan], np.float32), "NaN at sample 1"),
        (np.zeros((2, 50), np.float32), "channels-first"),
    ]
    for x, word in cases:
        valid, msg = uaudio.validate_audio(x)
        assert valid is False and word in msg, (x, msg)
    # 10.0 itself is allowed (the rule is "> 10")
    assert uaudio.validate_audio(np.array([10.0], np.float32))[0] is True


def test_normalize_audio():
    x = np.array([0.5, 1.0, -2.0], np.float64)
    y = uaudio.normalize_audio(x)
    assert y.dtype == np.float64 and np.array_equal(y, [0.25, 0.5, -1.0])
    assert uaudio.normalize_audio(np.zeros(5, np.float32)).tolist() == [0.0] * 5
    assert uaudio.normalize_audio(np.zeros(0, np.float32)).size == 0
    with pytest.raises(AudioError, match="NaN or Inf"):
        uaudio.normalize_audio(np.array([np.inf, 1.0]))


@pytest.mark.parametrize("n_in,orig,target", [(1000, 8000, 4000), (1001, 8000, 4000), (1000, 8000, 16000),
                                              (1001, 22050, 16000), (999, 44100, 48000), (1200, 16000, 11025)])
def test_resample_audio_matches_scipy(n_in, orig, target):
    """0.2.0's utils.resample_audio is scipy.signal.resample to
    int(n * target / orig) samples, float32.  Ours computes the same FFT
    interpolation in float64 and rounds once to float32, so the difference to
    scipy's float64 result is one float32 rounding, |y| * 2**-24, plus
    float64 FFT error (~1e-15 * log2 n, negligible): bound max|y| * 2**-23."""
    signal = pytest.importorskip("scipy.signal")
    rng = np.random.default_rng(n_in + target)
    for x in (rng.standard_normal(n_in), rng.standard_normal((n_in, 2))):
        got = uaudio.resample_audio(x, orig, target)
        n_out = int(n_in * target / orig)
        ref = signal.resample(x, n_out, axis=0)
        assert got.dtype == np.float32 and got.shape == ref.shape
        assert np.max(np.abs(got - ref)) <= np.max(np.abs(ref)) * 2.0 ** -23
    same = rng.standard_normal(10)
    assert uaudio.resample_audio(same, 16000, 16000) is same


def test_load_audio_is_the_package_reader(tmp_path):
    import wave

    pcm = (np.sin(np.arange(3200) / 5) * 12000).astype("<i2")
    p = tmp_path / "a.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    audio, sr = uaudio.load_audio(str(p))
    assert sr == 16000 and audio.dtype == np.float32
    np.testing.assert_array_equal(audio, pcm.astype(np.float32) / 32768.0)
    with pytest.raises(AudioError, match="not found"):
        uaudio.load_audio(str(tmp_path / "missing.wav"))


# ---------------------------------------------------------------------------
# mt3_infer.utils.midi
# ---------------------------------------------------------------------------
def simple_midi(note=60, ticks=480):
    midi = mido.MidiFile()  # 480 ticks per beat, 120 bpm by default
    track = mido.MidiTrack()
    track.append(mido.Message("note_on", note=note, velocity=64, time=0))
    track.append(mido.Message("note_off", note=note, velocity=0, time=ticks))
    midi.tracks.append(track)
    return midi


def test_midi_hash_is_sha256_of_the_file_bytes():
    m = simple_midi()
    buf = io.BytesIO()
    m.save(file=buf)
    assert umidi.midi_to_hash(m) == hashlib.sha256(buf.getvalue()).hexdigest()
    assert umidi.midi_to_hash(simple_midi(62)) != umidi.midi_to_hash(m)


def test_validate_midi():
    assert umidi.validate_midi(simple_midi()) == (True, "")
    assert umidi.validate_midi(mido.MidiFile()) == (False, "MIDI file has no tracks")
    m = mido.MidiFile()
    m.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=-10)]))
    valid, msg = umidi.validate_midi(m)
    assert valid is False and "negative time" in msg
    m = mido.MidiFile()
    m.tracks.append(mido.MidiTrack([mido.Message("note_on", note=60, velocity=64, time=0)]))
    with pytest.warns(UserWarning, match="1 unclosed notes"):
        assert umidi.validate_midi(m) == (True, "")


def test_count_notes_and_duration():
    m = simple_midi(ticks=960)
    m.tracks[0].append(mido.Message("note_on", note=64, velocity=0, time=0))  # a note-off
    m.tracks.append(mido.MidiTrack([mido.Message("note_on", note=67, velocity=1, time=0)]))
    assert umidi.count_notes(m) == 2
    # 960 ticks at 480 ticks/beat and the default 500000 us/beat = 1.0 s
    assert umidi.get_midi_duration(m) == pytest.approx(1.0)
    assert isinstance(umidi.get_midi_duration(m), float)


def test_midi_to_audio_renders_with_fluidsynth():
    import shutil

    if shutil.which("fluidsynth") is None or not any(Path(p).is_file() for p in umidi._SOUNDFONTS):
        pytest.skip("fluidsynth or a GM soundfont not installed (make synthdeps)")
    m = simple_midi(69, ticks=480)
    y = umidi.midi_to_audio(m, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert np.max(np.abs(y)) == pytest.approx(1.0)
    assert y.shape[0] >= 8000  # at least the 0.5 s of the note
    with pytest.raises(FileNotFoundError):
        umidi.midi_to_audio(m, soundfont_path="/nonexistent.sf2")


# ---------------------------------------------------------------------------
# mt3_infer.utils.framework
# ---------------------------------------------------------------------------
def test_get_device():
    assert uframework.get_device("cpu") == uframework.get_device("CPU") == "cpu"
    with pytest.raises(ValueError, match="Invalid device"):
        uframework.get_device("tpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert uframework.get_device(None) in ("cuda", "cpu")
        assert uframework.get_device("auto") in ("cuda", "cpu")


def test_get_device_without_torch_is_cpu_with_a_warning(monkeypatch):
    monkeypatch.setattr(uframework.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.warns(UserWarning, match="No GPU detected"):
        assert uframework.get_device("auto") == "cpu"
    with pytest.warns(UserWarning, match="CUDA requested but not available"):
        assert uframework.get_device("cuda") == "cpu"


def test_check_torch_version_names_the_release(monkeypatch):
    import mt3_infer._engine as eng

    monkeypatch.setattr(eng, "engine_library_path", lambda: "/x/libmt3_torch.so")
    monkeypatch.setattr(eng, "built_torch", lambda: {"version": "2.13.0", "cuda": None})
    monkeypatch.setattr(eng, "installed_torch", lambda: None)
    with pytest.raises(FrameworkError, match="not installed.*torch==2.13.0"):
        uframework.check_torch_version()
    monkeypatch.setattr(eng, "installed_torch", lambda: ("2.9.1", "/x/lib"))
    with pytest.raises(FrameworkError, match="built against torch 2.13.0 but this environment has torch 2.9.1"):
        uframework.check_torch_version()
    monkeypatch.setattr(eng, "installed_torch", lambda: ("2.13.1+cpu", "/x/lib"))
    uframework.check_torch_version()


def test_check_jax_version_without_jax():
    import importlib.util

    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax installed")
    with pytest.raises(FrameworkError, match="jax is not installed"):
        uframework.check_jax_version()


# ---------------------------------------------------------------------------
# mt3_infer.utils.download
# ---------------------------------------------------------------------------
BLOB = bytes(range(256)) * 1024
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def test_download_file_with_0_2_0_callback(tmp_path):
    seen = []
    with FileServer({"/f.bin": BLOB}) as srv:
        out = tmp_path / "d" / "f.bin"
        assert udownload.download_file(srv.url + "/f.bin", out, BLOB_SHA,
                                       progress_callback=lambda *a: seen.append(a)) is None
        assert out.read_bytes() == BLOB
        assert seen and all(len(a) == 3 for a in seen)
        block_num, block_size, total = seen[-1]
        assert block_num * block_size == len(BLOB) and total == len(BLOB)
        bad = tmp_path / "bad.bin"
        with pytest.raises(CheckpointDownloadError, match="Checksum"):
            udownload.download_file(srv.url + "/f.bin", bad, "0" * 64, progress_callback=lambda *a: None)
        assert not bad.exists()


def test_download_checkpoint_sources(tmp_path):
    with FileServer({"/c.pth": BLOB}) as srv:
        out = tmp_path / "c.pth"
        udownload.download_checkpoint("url", srv.url + "/c.pth", out, sha256=BLOB_SHA)
        assert out.read_bytes() == BLOB
        n = len(srv.log)
        udownload.download_checkpoint("url", srv.url + "/c.pth", out)  # present: kept, not fetched
        assert len(srv.log) == n
    for kind in ("git_lfs", "huggingface"):
        with pytest.raises(CheckpointDownloadError, match="download_model"):
            udownload.download_checkpoint(kind, "https://example.invalid/repo", tmp_path / kind)
    with pytest.raises(CheckpointDownloadError, match="Unsupported source type"):
        udownload.download_checkpoint("ftp", "x", tmp_path / "y")


# ---------------------------------------------------------------------------
# registry view and the two GitHub-main API contracts
# ---------------------------------------------------------------------------
def test_private_registry_view_is_the_public_registry():
    reg = api._load_registry()
    assert reg["default"] == "mt3_pytorch" and reg["aliases"]["fast"] == "mr_mt3"
    assert reg["models"] == mt3_infer.list_models()
    reg["models"].clear()
    assert mt3_infer.list_models()  # a copy


class _Adapter:
    constructed = 0

    def __init__(self):
        type(self).constructed += 1

    def load_model(self, checkpoint_path, device="auto"):
        self.checkpoint_path = checkpoint_path
        self.device = device


def test_legacy_cache_contract_with_an_existing_checkpoint(monkeypatch, tmp_path):
    """0.2.0 GitHub main's test_legacy_load_model_cache_remains_opt_in, with
    the checkpoint file present (it fails there only because this package
    refuses a missing caller-supplied path before asking the adapter)."""
    _Adapter.constructed = 0
    api._MODEL_CACHE.clear()
    monkeypatch.setattr(api.importlib, "import_module", lambda name: SimpleNamespace(MRMT3Adapter=_Adapter))
    checkpoint = tmp_path / "weights.pth"
    checkpoint.write_bytes(b"weights")
    first = api.load_model("fast", checkpoint_path=str(checkpoint), device="cpu", auto_download=False)
    second = api.load_model("fast", checkpoint_path=str(checkpoint), device="cpu", auto_download=False)
    assert first is second and _Adapter.constructed == 1
    assert first.checkpoint_path == str(checkpoint) and first.device == "cpu"
    api._MODEL_CACHE.clear()
    with pytest.raises(mt3_infer.CheckpointError, match="Checkpoint not found"):
        api.load_model("fast", checkpoint_path=str(tmp_path / "missing.pth"), auto_download=False)
    assert _Adapter.constructed == 1


def test_session_does_not_touch_the_global_cache(monkeypatch, tmp_path):
    _Adapter.constructed = 0
    api._MODEL_CACHE.clear()
    monkeypatch.setattr(api.importlib, "import_module", lambda name: SimpleNamespace(MRMT3Adapter=_Adapter))
    checkpoint = tmp_path / "weights.pth"
    checkpoint.write_bytes(b"weights")
    session = MT3Session("fast", checkpoint_path=checkpoint, device="cpu", auto_download=False)
    session.load()
    assert _Adapter.constructed == 1 and api._MODEL_CACHE == {}
    session.release()


def test_documented_deliberate_differences_are_in_the_readme():
    import importlib.util

    spec = importlib.util.spec_from_file_location("anchor_suite_run", ROOT / "tools" / "anchor_suite" / "run.py")
    anchor_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(anchor_run)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, (reason, phrase) in anchor_run.KNOWN.items():
        assert phrase in readme, (name, phrase)
    assert anchor_run.README_BEGIN in readme and anchor_run.README_END in readme
