"""Public surface against the spec (shared/specs/api-anchor.md §0-§6): names,
signatures, registry data and resolution, validation order and messages, the
load cache (keys, thread safety), keyword routing and MT3Session."""
import inspect
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import mt3_infer
from mt3_infer import api, registry
from mt3_infer.exceptions import (
    AudioError,
    CheckpointDownloadError,
    CheckpointError,
    FrameworkError,
    InferenceError,
    ModelNotFoundError,
    MT3InferError,
)

ANCHOR_ALL = [
    "__version__", "MT3Base", "MT3InferError", "ModelNotFoundError", "CheckpointError",
    "CheckpointDownloadError", "FrameworkError", "AudioError", "InferenceError", "transcribe",
    "load_model", "download_model", "list_models", "get_model_info", "clear_cache", "MT3Session",
]
EMPTY = inspect.Parameter.empty


def params(func):
    return [(p.name, p.kind.name, p.default) for p in inspect.signature(func).parameters.values()]


# ---------------------------------------------------------------------------
# Names and signatures
# ---------------------------------------------------------------------------
def test_all_contains_the_anchor_names_in_order():
    names = mt3_infer.__all__
    assert len(names) == len(set(names))
    # every anchor name, in the anchor's relative order (our additions may sit between them)
    assert [n for n in names if n in ANCHOR_ALL] == ANCHOR_ALL
    for name in names:
        assert hasattr(mt3_infer, name), name
    assert {"transcribe_notes", "load_audio"} <= set(names) - set(ANCHOR_ALL)
    assert isinstance(mt3_infer.__version__, str) and mt3_infer.__version__.count(".") == 2


def test_adapters_not_reexported_at_top_level():
    for name in ("MRMT3Adapter", "MT3PyTorchAdapter", "YourMT3Adapter"):
        assert not hasattr(mt3_infer, name)


def test_public_modules_import_without_torch():
    code = ("import sys, mt3_infer, mt3_infer.api, mt3_infer.registry, mt3_infer.session, "
            "mt3_infer.download, mt3_infer.audio, mt3_infer.cli, mt3_infer.base, mt3_infer.exceptions; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_signatures():
    VK, PK, KO = "VAR_KEYWORD", "POSITIONAL_OR_KEYWORD", "KEYWORD_ONLY"
    assert params(mt3_infer.load_model) == [
        ("model", PK, "default"), ("checkpoint_path", PK, None), ("device", PK, "auto"),
        ("cache", PK, True), ("auto_download", PK, True), ("kwargs", VK, EMPTY)]
    assert params(mt3_infer.transcribe) == [
        ("audio", PK, EMPTY), ("model", PK, "default"), ("sr", PK, 16000), ("checkpoint_path", PK, None),
        ("device", PK, "auto"), ("auto_download", PK, True), ("kwargs", VK, EMPTY)]
    assert params(mt3_infer.list_models) == []
    assert params(mt3_infer.get_model_info) == [("model", PK, EMPTY)]
    assert params(mt3_infer.clear_cache) == []
    dm = params(mt3_infer.download_model)
    assert dm[0] == ("model", PK, "default")
    assert all(kind == KO for _, kind, _ in dm[1:])  # additions are keyword-only
    assert params(mt3_infer.MT3Session.__init__) == [
        ("self", PK, EMPTY), ("model", PK, "default"), ("backend", KO, None), ("device", KO, "auto"),
        ("checkpoint_path", KO, None), ("auto_download", KO, True), ("model_kwargs", VK, EMPTY)]
    assert params(mt3_infer.MT3Session.infer) == [
        ("self", PK, EMPTY), ("audio", PK, EMPTY), ("sr", KO, 16000), ("kwargs", VK, EMPTY)]
    for m in ("load", "release", "close", "cache_info", "__enter__"):
        assert params(getattr(mt3_infer.MT3Session, m)) == [("self", PK, EMPTY)]
    assert isinstance(mt3_infer.MT3Session.status, property)
    assert isinstance(mt3_infer.MT3Session.component_status, property)
    from mt3_infer.audio import load_audio
    assert params(load_audio)[:2] == [("path", PK, EMPTY), ("sr", PK, 16000)]


def test_exception_hierarchy():
    assert issubclass(MT3InferError, Exception)
    for cls in (ModelNotFoundError, CheckpointError, FrameworkError, AudioError, InferenceError):
        assert issubclass(cls, MT3InferError)
    assert issubclass(CheckpointDownloadError, CheckpointError)
    assert issubclass(AudioError, ValueError) and issubclass(InferenceError, RuntimeError)
    assert not issubclass(ModelNotFoundError, ValueError)


# ---------------------------------------------------------------------------
# MT3Base checks (order and messages)
# ---------------------------------------------------------------------------
class _Probe(mt3_infer.MT3Base):
    def load_model(self, checkpoint_path=None, device="auto"):
        self._model_loaded = True

    def transcribe(self, audio, sr=16000):  # the native adapters' checks
        return self._check_input(audio, sr)

    def preprocess(self, audio, sr):
        return audio

    def forward(self, features):
        return features

    def decode(self, outputs):
        return outputs


def test_base_is_abstract_and_repr():
    with pytest.raises(TypeError):
        mt3_infer.MT3Base()
    p = _Probe()
    assert repr(p) == "_Probe(model_status=not loaded)"
    p.load_model("x")
    assert repr(p) == "_Probe(model_status=loaded)"


def test_base_validation_order_and_messages():
    p = _Probe()
    # 1. not loaded wins over everything else
    with pytest.raises(RuntimeError, match=r"^Model not loaded\. Call load_model\(\) before transcription\."):
        p.transcribe([1, 2], sr=-1)
    p.load_model("x")
    # 2. type before dtype/shape/sr
    with pytest.raises(ValueError, match="^audio must be numpy.ndarray, got list"):
        p.transcribe([0.0], sr=0)
    # 3. dtype before ndim
    with pytest.raises(ValueError, match="^audio dtype must be float32 or float64, got int8"):
        p.transcribe(np.zeros((2, 2, 2), np.int8), sr=0)
    # 4. ndim
    with pytest.raises(ValueError, match=r"^audio must be 1D or 2D array, got shape \(2, 2, 2\)"):
        p.transcribe(np.zeros((2, 2, 2), np.float32), sr=0)
    # 5. empty before sr
    with pytest.raises(ValueError, match=r"^audio array is empty \(0 samples\)"):
        p.transcribe(np.zeros(0, np.float32), sr=0)
    # 6. loud audio only warns, then 7. sr is checked
    with pytest.warns(UserWarning, match=r"exceed \[-1\.0, 1\.0\] range \(max=3\.000\)"):
        with pytest.raises(ValueError, match="^sample rate must be positive integer, got 0"):
            p.transcribe(np.array([3.0, 0.0], np.float32), sr=0)
    for bad in (-16000, 0, 16000.0, "16000"):
        with pytest.raises(ValueError, match="sample rate must be positive integer"):
            p.transcribe(np.zeros(4, np.float32), sr=bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.transcribe(np.zeros((1000, 2), np.float32), sr=16000)  # stereo accepted
        p.transcribe(np.zeros(10, np.float64), sr=np.int64(22050))  # numpy int accepted (fix)


def test_base_audio_errors_are_audioerror():
    p = _Probe()
    p.load_model("x")
    cases = [([0.0], 16000), (np.zeros(10, np.int8), 16000), (np.zeros((2, 2, 2), np.float32), 16000),
             (np.zeros(0, np.float32), 16000), (np.zeros(4, np.float32), 0),
             (np.zeros(4, np.float32), 16000.0)]
    for audio, sr in cases:
        with pytest.raises(AudioError):
            p.transcribe(audio, sr=sr)


@pytest.mark.parametrize("sr,match", [(1, "implausibly small"), (999, "implausibly small"),
                                      (2 ** 31, "implausibly large"), (10 ** 30, "implausibly large")])
def test_base_refuses_implausible_sample_rates(sr, match):
    p = _Probe()
    p.load_model("x")
    with pytest.raises(AudioError, match=match):
        p.transcribe(np.zeros(16000, np.float32), sr=sr)
    p.transcribe(np.zeros(16, np.float32), sr=1000)  # the ends of the range pass
    p.transcribe(np.zeros(16, np.float32), sr=1_000_000)


def test_base_inf_does_not_warn_about_range():
    p = _Probe()
    p.load_model("x")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the old "exceed [-1, 1] (max=inf)" warning fails here
        for bad in (np.array([0.0, np.inf], np.float32), np.array([-np.inf, 3.0]), np.array([np.nan, 5.0])):
            p.transcribe(bad, sr=16000)  # the C front end raises the one error (below)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory):
    pytest.importorskip("torch")
    from mt3_infer import _engine

    if _engine.engine_library_path() is None:
        pytest.skip("engine library not built")
    from helpers_models import small_exported_model

    return small_exported_model(tmp_path_factory.mktemp("small"), "mt3_pytorch")


@pytest.mark.parametrize("audio,sr,match", [
    (np.zeros(0, np.float32), 16000, "empty"),
    (np.zeros(100, np.int8), 16000, "dtype"),
    (np.zeros((10, 10, 2), np.float32), 16000, r"1-?D .*2-?D"),
    (np.zeros(1000, np.float32), 0, "sample rate"),
    (np.zeros(16000, np.float32), 1, "implausibly small"),
    (np.zeros(1000, np.float32), 2 ** 31, "implausibly large"),
    (np.zeros((2, 16000), np.float32), 16000, r"channels-first.*audio\.T"),
    (np.array([0.0, np.inf, 0.0] * 100, np.float32), 16000, r"\+Inf at sample 1"),
])
def test_transcribe_bad_audio_is_audioerror(small_model, audio, sr, match):
    api.clear_cache()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # Inf: no range warning before the error
            with pytest.raises(AudioError, match=match):
                mt3_infer.transcribe(audio, model="mt3_pytorch", sr=sr, checkpoint_path=small_model,
                                     device="cpu", auto_download=False)
            adapter = mt3_infer.load_model("mt3_pytorch", checkpoint_path=small_model, device="cpu")
            with pytest.raises(AudioError, match=match):
                adapter.transcribe(audio, sr=sr)
            with pytest.raises(AudioError, match=match):
                adapter._run(audio, sr)  # the native entry point on its own
    finally:
        api.clear_cache()


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------
def test_model_ids_and_aliases():
    # mt3-infer 0.2.0's three models and six aliases, in its order, then the bundled model and
    # Magenta's two original checkpoints
    assert list(mt3_infer.list_models()) == ["mr_mt3", "mt3_pytorch", "yourmt3", "mt3_small",
                                             "magenta_mt3", "magenta_piano"]
    assert registry.aliases() == {"default": "mt3_pytorch", "fast": "mr_mt3", "accurate": "mt3_pytorch",
                                  "multitask": "yourmt3", "official": "mt3_pytorch", "baseline": "mt3_pytorch",
                                  "offline": "mt3_small", "small": "mt3_small", "magenta": "magenta_mt3",
                                  "colab": "magenta_mt3", "ismir2021": "magenta_piano", "piano": "magenta_piano"}
    for alias, target in registry.aliases().items():
        assert registry.resolve_model_name(alias) == target
        assert mt3_infer.get_model_info(alias) == mt3_infer.get_model_info(target)
    for mid in registry.model_ids():
        assert registry.resolve_model_name(mid) == mid


@pytest.mark.parametrize("bad", ["FAST", " fast", "mr-mt3", "", None, 3])
def test_unknown_model_message(bad):
    with pytest.raises(ModelNotFoundError) as ei:
        registry.resolve_model_name(bad)
    lines = str(ei.value).split("\n")
    assert lines == [f"Model '{bad}' not found in registry.",
                     "Available models: mr_mt3, mt3_pytorch, yourmt3, mt3_small, magenta_mt3, magenta_piano",
                     "Available aliases: default, fast, accurate, multitask, official, baseline, "
                     "offline, small, magenta, colab, ismir2021, piano"]
    for fn in (mt3_infer.get_model_info, mt3_infer.load_model, mt3_infer.download_model):
        with pytest.raises(ModelNotFoundError):
            fn(bad)


def test_registry_fields_match_the_anchor():
    m = mt3_infer.list_models()
    for mid, info in m.items():
        for key in ("name", "description", "framework", "adapter_class", "checkpoint", "metadata", "best_for"):
            assert key in info, (mid, key)
        ck = info["checkpoint"]
        assert isinstance(ck["size_mb"], float) and isinstance(ck["path"], str)
        assert {"source_type", "source_url", "sha256"} <= set(ck["download"])
        perf = info["metadata"]["performance"]
        if mid == "mt3_small":  # ours: CPU speed from benchmarks/bench_accuracy.py, no GPU figure
            assert isinstance(perf["speed_x_realtime"], float) and perf["peak_gpu_memory_mb"] is None
        elif mid.startswith("magenta_"):  # not measured (0.0): the real checkpoints never ran here
            assert perf["speed_x_realtime"] == 0.0 and perf["peak_gpu_memory_mb"] is None
            assert ck["format"] == "t5x" and ck["download"]["source_url"].startswith("gs://mt3/checkpoints/")
        else:  # the anchor's published figures
            assert isinstance(perf["speed_x_realtime"], float) and isinstance(perf["peak_gpu_memory_mb"], int)
        assert info["metadata"]["sample_rate"] == 16000 and info["metadata"]["max_seq_len"] == 1024
        assert info["framework"] == "pytorch"
    assert m["mr_mt3"]["name"] == "MR-MT3" and m["mt3_pytorch"]["name"] == "MT3-PyTorch"
    assert m["yourmt3"]["name"] == "YourMT3"
    assert m["mr_mt3"]["adapter_class"] == "mt3_infer.adapters.mr_mt3.MRMT3Adapter"
    assert m["mt3_pytorch"]["adapter_class"] == "mt3_infer.adapters.mt3_pytorch.MT3PyTorchAdapter"
    assert m["yourmt3"]["adapter_class"] == "mt3_infer.adapters.yourmt3.YourMT3Adapter"
    assert m["mr_mt3"]["checkpoint"]["path"] == ".mt3_checkpoints/mr_mt3/mt3.pth"
    assert m["mt3_pytorch"]["checkpoint"]["path"] == ".mt3_checkpoints/mt3_pytorch"
    assert m["yourmt3"]["checkpoint"]["path"].endswith("_rp_b36_nops/last.ckpt")
    assert m["yourmt3"]["checkpoint"]["size_mb"] == 536.0
    assert m["mr_mt3"]["metadata"]["vocab_size"] == 388  # anchor value, kept verbatim
    assert m["yourmt3"]["metadata"]["performance"]["notes_detected"] is None
    assert m["mt3_pytorch"]["metadata"]["performance"]["speed_x_realtime"] == 12.37
    assert m["mr_mt3"]["checkpoint"]["download"]["sha256"] == (
        "b8a3807ed265059abd25ad7f68142c06c35e8f6144dcaa45bd55946a3745398f")


def test_registry_data_are_copies():
    m = mt3_infer.list_models()
    m["mr_mt3"]["name"] = "changed"
    m["mr_mt3"]["checkpoint"]["download"]["sha256"] = "x"
    del m["yourmt3"]
    info = mt3_infer.get_model_info("fast")
    info["metadata"]["performance"]["speed_x_realtime"] = -1
    fresh = mt3_infer.list_models()
    assert fresh["mr_mt3"]["name"] == "MR-MT3" and "yourmt3" in fresh
    assert fresh["mr_mt3"]["checkpoint"]["download"]["sha256"].startswith("b8a3")
    assert fresh["mr_mt3"]["metadata"]["performance"]["speed_x_realtime"] == 57.0


def test_checkpoint_paths_cwd_and_env(tmp_path, monkeypatch):
    monkeypatch.delenv("MT3_CHECKPOINT_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert registry.default_checkpoint_path("fast") == tmp_path / ".mt3_checkpoints" / "mr_mt3" / "mt3.pth"
    monkeypatch.setenv("MT3_CHECKPOINT_DIR", str(tmp_path / "c"))
    assert registry.default_checkpoint_path("fast") == tmp_path / "c" / "mr_mt3" / "mt3.pth"
    assert registry.default_checkpoint_path("accurate") == tmp_path / "c" / "mt3_pytorch"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MT3_CHECKPOINT_DIR", "~/ckpts")
    assert registry.default_checkpoint_path("fast") == tmp_path / "home" / "ckpts" / "mr_mt3" / "mt3.pth"
    assert not (tmp_path / "c").exists()  # nothing created


def test_catalog_cache_keys():
    # reference values from the spec (0.2.0 formula over the TOML values)
    assert registry.cache_key("mr_mt3") == "4a52482e2caa720b"
    assert registry.cache_key("mt3_pytorch") == "348fd74cc472d23c"
    assert registry.cache_key("yourmt3") == "d0ad0f1e1363ae2d"
    assert registry.cache_key("fast") == registry.cache_key("mr_mt3")


# ---------------------------------------------------------------------------
# load_model with a fake adapter
# ---------------------------------------------------------------------------
class FakeAdapter(mt3_infer.MT3Base):
    constructed = []

    def __init__(self, auto_filter=True, num_threads=None):
        super().__init__()
        self.auto_filter = auto_filter
        self.num_threads = num_threads
        FakeAdapter.constructed.append(self)
        self.loaded_with = None

    def load_model(self, checkpoint_path=None, device="auto"):
        time.sleep(0.05)
        self.loaded_with = (checkpoint_path, device)
        self._model_loaded = True

    def transcribe(self, audio, sr=16000, adaptive=False):
        return ("midi", audio, sr, adaptive, self.auto_filter)

    def transcribe_notes(self, audio, sr=16000):
        return ("notes", audio, sr)

    def preprocess(self, audio, sr):  # 0.2.0 stage hooks, unused: transcribe is overridden
        raise NotImplementedError

    forward = decode = preprocess


@pytest.fixture
def fake(tmp_path, monkeypatch):
    FakeAdapter.constructed = []
    monkeypatch.setattr(api, "_import_adapter", lambda mid: FakeAdapter)
    ck = tmp_path / "model.pt"
    ck.write_bytes(b"weights")
    api.clear_cache()
    yield ck
    api.clear_cache()


def test_cache_returns_same_object_and_constructs_once(fake):
    a = mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu", auto_download=False)
    b = mt3_infer.load_model("mr_mt3", checkpoint_path=str(fake), device="CPU", auto_download=False)
    assert a is b and len(FakeAdapter.constructed) == 1
    assert a.loaded_with == (str(fake), "cpu")


def test_cache_keys_on_every_argument(fake, tmp_path):
    base = mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu")
    other = tmp_path / "other.pt"
    other.write_bytes(b"w")
    variants = [
        mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu", auto_filter=False),
        mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu", num_threads=2),
        mt3_infer.load_model("fast", checkpoint_path=str(other), device="cpu"),
        mt3_infer.load_model("fast", checkpoint_path=str(fake), device="auto"),
        mt3_infer.load_model("accurate", checkpoint_path=str(fake), device="cpu"),
    ]
    assert len({id(v) for v in variants + [base]}) == 6
    assert variants[0].auto_filter is False  # the keyword reached the adapter
    assert mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu", auto_filter=False) is variants[0]


def test_cache_false_and_clear_cache(fake):
    a = mt3_infer.load_model("fast", checkpoint_path=str(fake), cache=False)
    b = mt3_infer.load_model("fast", checkpoint_path=str(fake), cache=False)
    assert a is not b and api._MODEL_CACHE == {}
    c = mt3_infer.load_model("fast", checkpoint_path=str(fake))
    mt3_infer.clear_cache()
    assert mt3_infer.load_model("fast", checkpoint_path=str(fake)) is not c


def test_concurrent_loads_build_one_adapter(fake):
    results = []
    start = threading.Barrier(8)

    def worker():
        start.wait()
        results.append(mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and len({id(r) for r in results}) == 1
    assert len(FakeAdapter.constructed) == 1


def test_unknown_keywords_raise_typeerror(fake):
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'verbose' for model 'mr_mt3'"):
        mt3_infer.load_model("fast", checkpoint_path=str(fake), verbose=True)
    audio = np.zeros(100, np.float32)
    with pytest.raises(TypeError, match="unexpected keyword argument 'stretch_factors'"):
        mt3_infer.transcribe(audio, model="fast", checkpoint_path=str(fake), stretch_factors=[1.0])
    assert FakeAdapter.constructed == []


def test_transcribe_routes_keywords(fake):
    audio = np.zeros(100, np.float32)
    out = mt3_infer.transcribe(audio, model="fast", sr=22050, checkpoint_path=str(fake), device="cpu",
                               auto_filter=False, adaptive=True)
    assert out[0] == "midi" and out[2] == 22050 and out[3] is True and out[4] is False
    notes = mt3_infer.transcribe_notes(audio, model="fast", checkpoint_path=str(fake), device="cpu")
    assert notes[0] == "notes" and notes[2] == 16000


def test_transcribe_accepts_a_path(fake, tmp_path):
    import wave

    p = tmp_path / "a.wav"
    with wave.open(str(p), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x40\x00\x20" * 80)  # left 0.5, right 0.25
    out = mt3_infer.transcribe(p, model="fast", checkpoint_path=str(fake))
    # a path is loaded as 0.2.0's load_audio does: channel mean, then 16 kHz
    assert out[1].shape == (160,) and out[2] == 16000
    # 0.2.0's load_audio resamples with torchaudio's sinc (yourmt3.md §2.2)
    from ref_audio import sinc_bounds, sinc_reference

    x = np.full(80, 0.375, np.float32)
    want = sinc_reference(x, 8000, kernel_dtype=np.float32)
    assert np.all(np.abs(out[1] - want) <= sinc_bounds(x, 8000)[0])


@pytest.mark.parametrize("dev,msg", [("tpu", "Invalid device"), ("cuda:bad", "index"), (3, "Invalid device"),
                                     ("cuda:-1", "index")])
def test_device_validation_before_cache(fake, dev, msg):
    mt3_infer.load_model("fast", checkpoint_path=str(fake), device="cpu")
    with pytest.raises(ValueError, match=msg):
        mt3_infer.load_model("fast", checkpoint_path=str(fake), device=dev)


def test_device_normalisation():
    assert api._normalize_device(None) == "auto"
    assert api._normalize_device("CUDA:01") == "cuda:1"
    assert api._normalize_device("Mps") == "mps"


def test_missing_custom_checkpoint_is_an_error_not_a_download(fake, tmp_path, monkeypatch):
    from mt3_infer import download

    monkeypatch.setattr(download, "download_file", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(CheckpointError, match="Checkpoint not found: .*nope.pth"):
        mt3_infer.load_model("fast", checkpoint_path=str(tmp_path / "nope.pth"))
    empty = tmp_path / "emptydir"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="Checkpoint not found"):
        mt3_infer.load_model("accurate", checkpoint_path=str(empty))


def test_adapter_import_failure_message(monkeypatch):
    monkeypatch.setitem(registry._entry("mr_mt3"), "adapter_class", "mt3_infer.no_such_module.Cls")
    with pytest.raises(ImportError, match=r"Failed to import adapter: mt3_infer\.no_such_module\.Cls"):
        api._import_adapter("mr_mt3")


# ---------------------------------------------------------------------------
# MT3Session (anchor tests ported, with a fake load_model)
# ---------------------------------------------------------------------------
class _Model:
    def __init__(self):
        self.cpu_calls = 0

    def cpu(self):
        self.cpu_calls += 1


class _SessAdapter:
    def __init__(self):
        self.model = _Model()
        self.calls = []

    def transcribe(self, audio, sr=16000, **kw):
        self.calls.append((sr, kw))
        return "midi"


@pytest.fixture
def sess_env(monkeypatch):
    built, calls = [], []

    def fake_load_model(model, **kw):
        calls.append((model, kw))
        a = _SessAdapter()
        built.append(a)
        return a

    monkeypatch.setattr(api, "load_model", fake_load_model)
    return built, calls


def test_session_lifecycle(sess_env):
    built, calls = sess_env
    s = mt3_infer.MT3Session("fast", device="cpu")
    assert s.status == "new" and s.model == "mr_mt3" and s.backend == "pytorch"
    with pytest.raises(RuntimeError, match="MT3Session must be ready; call load\\(\\) before infer\\(\\)"):
        s.infer(np.zeros(10, np.float32))
    assert s.load() is s and s.load() is s
    assert len(built) == 1 and s.status == "ready" and s.device == "cpu"
    assert calls[0][1]["cache"] is False and calls[0][1]["device"] == "cpu"
    assert s.infer(np.zeros(10, np.float32)) == "midi" and built[0].calls == [(16000, {})]
    model = built[0].model
    assert s.release() is s and s.status == "released" and model.cpu_calls == 1
    assert s.component_status == {"mr_mt3": "released"}
    s.load()
    assert len(built) == 2
    assert s.close() is s and s.close() is s and s.status == "closed"
    with pytest.raises(RuntimeError, match="cannot load a closed MT3Session"):
        s.load()
    with pytest.raises(RuntimeError, match="ready"):
        s.infer(np.zeros(10, np.float32))
    assert api._MODEL_CACHE == {}


def test_session_context_manager_and_failure(sess_env, monkeypatch):
    with mt3_infer.MT3Session("accurate") as s:
        assert s.status == "ready"
    assert s.status == "closed"

    def boom(model, **kw):
        raise CheckpointError("nope")

    monkeypatch.setattr(api, "load_model", boom)
    s2 = mt3_infer.MT3Session("fast")
    with pytest.raises(CheckpointError):
        s2.load()
    assert s2.status == "failed" and s2.cache_info()["model_loaded"] is False


def test_session_cache_info(tmp_path, monkeypatch):
    monkeypatch.setenv("MT3_CHECKPOINT_DIR", str(tmp_path / "cache"))
    fast, acc = mt3_infer.MT3Session("fast"), mt3_infer.MT3Session("accurate")
    info = fast.cache_info()
    assert info["checkpoint_path"] == str(tmp_path / "cache" / "mr_mt3" / "mt3.pth")
    assert info["model"] == "mr_mt3" and info["package"] == "mt3-infer" and info["model_loaded"] is False
    assert info["cache_key"] == "4a52482e2caa720b" and info["status"] == "new"
    assert info["checkpoint_url"] == "https://huggingface.co/gudgud1014/MR-MT3/resolve/main/mt3.pth"
    assert set(info) == {"package", "model", "backend", "cache_key", "checkpoint_path", "checkpoint_url",
                         "sha256", "status", "model_loaded", "components"}
    assert acc.cache_info()["cache_key"] != info["cache_key"]
    assert not (tmp_path / "cache").exists()
    explicit = mt3_infer.MT3Session("fast", checkpoint_path="/some/where/x.pt")
    assert explicit.cache_info()["checkpoint_path"] == "/some/where/x.pt"


def test_session_unknown_profile_is_keyerror_and_modelnotfound():
    with pytest.raises(KeyError) as ei:
        mt3_infer.MT3Session("nope")
    assert isinstance(ei.value, ModelNotFoundError)
    assert str(ei.value).startswith("unknown MT3 profile 'nope'; available: [")
