"""Corpus transcription on local Ray Data (2 CPUs) with the bundled network.

One module-scoped Ray (startup ~10 s); 12 short clips in a folder tree plus
one corrupt file.  References are one-process calls of the same adapter on
the same files (mt3_infer.load_audio + transcribe_bytes / transcribe_notes)."""
import json
import os
import signal
import subprocess
import sys
import wave

import numpy as np
import pytest

import mt3_infer
from mt3_infer import _engine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "examples", "demo.wav")
CAP = 48

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pytestmark = pytest.mark.skipif(_engine.engine_library_path() is None, reason="needs the libtorch engine")

from mt3_infer import corpus  # noqa: E402


def _write_wav(path, x):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(x * 32767, -32768, 32767).astype("<i2").tobytes())


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def clips(tmp_path):
    audio, _ = mt3_infer.load_audio(DEMO)
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    paths = []
    for i in range(12):
        sub = ("a/b/" if i % 3 == 2 else "a/") if i % 3 else ""
        p = src / sub / f"clip{i:02d}.wav"
        start = (i * 5779) % (len(audio) - 40000)
        _write_wav(p, audio[start:start + 8000 + 2600 * i])  # 0.5 .. 2.3 s
        paths.append(p)
    bad = src / "a" / "corrupt.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunk")
    return src, paths, bad


@pytest.fixture(scope="module")
def reference():
    return mt3_infer.load_model("offline", cache=False, auto_download=False, num_threads=1)


def _expected(adapter, path):
    audio, sr = mt3_infer.load_audio(path)
    return adapter.transcribe_bytes(audio, sr, max_new_tokens=CAP), adapter.transcribe_notes(audio, sr,
                                                                                             max_new_tokens=CAP)


def test_corpus_outputs_resume_and_isolation(local_ray, clips, reference, tmp_path):
    src, paths, bad = clips
    out = tmp_path / "out"
    s = corpus.transcribe_corpus([src], out, "offline", workers=2, max_new_tokens=CAP, progress=False)
    assert (s.ok, s.failed, s.skipped) == (12, 1, 0)
    assert s.errors[0][0] == str(bad.resolve()) and "AudioError" in s.errors[0][1]
    for p in paths:
        name = p.relative_to(src).with_suffix("").as_posix()
        data, notes = _expected(reference, p)
        assert (out / "midi" / (name + ".mid")).read_bytes() == data  # byte-identical to one process
        t = pq.read_table(out / "notes" / (name + ".parquet")).to_pydict()
        assert t["source"] == [str(p.resolve())] * len(notes)
        for f in notes.dtype.names:
            assert np.array_equal(np.asarray(t[f], dtype=notes.dtype[f]), notes[f])
        row = json.loads((out / "manifest" / (name + ".json")).read_text())
        assert row["status"] == "ok" and row["notes"] == len(notes) and row["model"] == "mt3_small"
    man = pq.read_table(out / "manifest.parquet").to_pydict()
    assert len(man["source"]) == 13 and sorted(man["status"]) == ["error"] + ["ok"] * 12
    assert not [f for f in out.rglob("*") if f.name.startswith(".mt3_tmp_")]  # no partial files

    # resume: every ok input skipped; the error row is tried again
    s2 = corpus.transcribe_corpus([src], out, "offline", workers=2, max_new_tokens=CAP, progress=False)
    assert (s2.ok, s2.failed, s2.skipped) == (0, 1, 12)
    # a changed file is redone, the rest skipped
    _write_wav(paths[4], np.zeros(9000, np.float32))
    s3 = corpus.transcribe_corpus([src], out, "offline", workers=2, max_new_tokens=CAP, progress=False)
    assert (s3.ok, s3.failed, s3.skipped) == (1, 1, 11)
    name = paths[4].relative_to(src).with_suffix("").as_posix()
    assert (out / "midi" / (name + ".mid")).read_bytes() == _expected(reference, paths[4])[0]


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this file


class _DiesOnce(corpus.Transcriber):
    """Kills its own process (SIGKILL, as the OOM killer or a lost node would)
    in the middle of its first batch, after half of it has been written."""

    def _finish(self, src, name, res, seconds):
        marker = self.out / "killed-once"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super()._finish(src, name, res, seconds)


def test_actor_killed_mid_batch_every_input_done_once(local_ray, clips, reference, tmp_path):
    src, paths, bad = clips
    bad.unlink()
    out = tmp_path / "out"
    s = corpus.transcribe_corpus([src], out, "offline", workers=2, max_new_tokens=CAP, progress=False,
                                 worker_class=_DiesOnce, files_per_batch=3)
    assert (out / "killed-once").exists()  # the fault happened
    assert (s.ok, s.failed) == (12, 0)  # Ray restarted the actor and retried its batch
    rows = [json.loads(p.read_text()) for p in (out / "manifest").rglob("*.json")]
    assert sorted(r["source"] for r in rows) == sorted(str(p.resolve()) for p in paths)  # exactly once each
    for p in paths[:3]:
        name = p.relative_to(src).with_suffix("").as_posix()
        assert (out / "midi" / (name + ".mid")).read_bytes() == _expected(reference, p)[0]
    assert not [f for f in out.rglob("*") if f.name.startswith(".mt3_tmp_")]


def test_cli_corpus_and_lazy_ray(tmp_path, clips):
    src, paths, bad = clips
    code = "import sys, mt3_infer; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    r = subprocess.run([sys.executable, "-m", "mt3_infer.cli", "corpus", str(src / "a" / "b"), "-o",
                        str(tmp_path / "o"), "-m", "offline", "--workers", "1", "--max-new-tokens", str(CAP), "-q"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "4 ok, 0 failed, 0 skipped" in r.stdout
    assert len(list((tmp_path / "o" / "midi").glob("*.mid"))) == 4


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(mt3_infer.DependencyError, match=r"mt3-infer\[ray\]"):
        corpus.transcribe_corpus(["x.wav"], "/tmp/never", "offline")
