"""Downloads against a local HTTP server on 127.0.0.1 (tests/_mt3_http.py):
good file, wrong sha256, interrupted transfer resumed, server errors, offline
mode, concurrent processes, model-level layout and the export cache."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
import types
import zipfile
from pathlib import Path

import pytest

from mt3_infer import CheckpointDownloadError, CheckpointError, download, registry
from mt3_infer.utils.atomic import file_lock
from tests._mt3_http import FileServer

BLOB = bytes(range(256)) * 2048 + b"tail"  # 524,292 bytes: several 64 KiB blocks
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def _leftovers(folder: Path):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part") or ".tmp" in p.name)


# ---------------------------------------------------------------------------
# download_file
# ---------------------------------------------------------------------------
def test_good_file(tmp_path):
    with FileServer({"/m/blob.bin": BLOB}) as srv:
        dest = tmp_path / "sub" / "blob.bin"
        out = download.download_file(srv.url + "/m/blob.bin", dest, BLOB_SHA, size=len(BLOB), progress=False)
        assert out == dest and dest.read_bytes() == BLOB
        assert _leftovers(dest.parent) == []
        # second call: present and verified → no request
        n = len(srv.log)
        download.download_file(srv.url + "/m/blob.bin", dest, BLOB_SHA, size=len(BLOB), progress=False)
        assert len(srv.log) == n


def test_wrong_sha256_refused_and_nothing_left(tmp_path):
    with FileServer({"/blob": BLOB}) as srv:
        dest = tmp_path / "blob.bin"
        with pytest.raises(CheckpointDownloadError, match="Checksum verification failed! Expected 0+, Got " + BLOB_SHA):
            download.download_file(srv.url + "/blob", dest, "0" * 64, progress=False)
        assert not dest.exists()
        assert _leftovers(tmp_path) == []


def test_redirects_stay_on_the_host_unless_allowed(tmp_path, monkeypatch):
    with FileServer({"/real/blob": BLOB}) as srv:
        other = f"http://localhost:{srv.port}/real/blob"  # the same server under another host name
        srv.redirects = {"/same": "/real/blob", "/elsewhere": other}
        same = download.download_file(srv.url + "/same", tmp_path / "a.bin", BLOB_SHA, progress=False)
        assert same.read_bytes() == BLOB
        monkeypatch.delenv(download.REDIRECT_HOSTS_ENV, raising=False)
        fetched = len(srv.requests_for("/real/blob"))
        with pytest.raises(CheckpointDownloadError, match="refusing the redirect from 127.0.0.1 to localhost"):
            download.download_file(srv.url + "/elsewhere", tmp_path / "b.bin", BLOB_SHA, progress=False)
        assert not (tmp_path / "b.bin").exists() and _leftovers(tmp_path) == []
        # asked once (not retried), and the refused target was never requested
        assert len(srv.requests_for("/elsewhere")) == 1 and len(srv.requests_for("/real/blob")) == fetched
        monkeypatch.setenv(download.REDIRECT_HOSTS_ENV, "example.org, localhost")
        got = download.download_file(srv.url + "/elsewhere", tmp_path / "b.bin", BLOB_SHA, progress=False)
        assert got.read_bytes() == BLOB


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_certificate_is_verified(tmp_path):
    """A server whose certificate does not verify (self-signed) is refused
    at once, with the reason, and leaves nothing behind."""
    import ssl
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(BLOB)))
            self.end_headers()
            self.wfile.write(BLOB)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        url = f"https://127.0.0.1:{httpd.server_address[1]}/blob"
        t0 = time.monotonic()
        with pytest.raises(CheckpointDownloadError, match="TLS certificate of 127.0.0.1.* does not verify"):
            download.download_file(url, tmp_path / "out" / "blob.bin", BLOB_SHA, progress=False)
        assert time.monotonic() - t0 < 5  # not retried
        assert not (tmp_path / "out").exists()
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_redirect_policy_rules():
    ok = download._host_allowed
    assert ok("cdn-lfs.hf.co", download._REDIRECT_DEFAULTS["huggingface.co"])
    assert ok("cas-bridge.xethub.hf.co", download._REDIRECT_DEFAULTS["huggingface.co"])
    assert not ok("hf.co.evil.example", download._REDIRECT_DEFAULTS["huggingface.co"])
    assert not ok("evilhf.co", download._REDIRECT_DEFAULTS["huggingface.co"])
    assert ok("objects.githubusercontent.com", download._REDIRECT_DEFAULTS["media.githubusercontent.com"])
    assert ok("anything.example", ["*"]) and ok("mirror.lan", ["mirror.lan"]) and not ok("a.mirror.lan", ["mirror.lan"])
    policy = download._RedirectPolicy()
    req = download.urllib.request.Request("https://huggingface.co/x/resolve/main/mt3.pth")
    with pytest.raises(CheckpointDownloadError, match="leaves HTTPS"):
        policy.redirect_request(req, None, 302, "Found", {}, "http://huggingface.co/plain")
    assert policy.redirect_request(req, None, 302, "Found", {}, "https://cdn-lfs.hf.co/blob") is not None


def test_wrong_size_refused(tmp_path):
    with FileServer({"/blob": BLOB}) as srv:
        dest = tmp_path / "blob.bin"
        with pytest.raises(CheckpointDownloadError, match="size check failed"):
            download.download_file(srv.url + "/blob", dest, None, size=len(BLOB) - 10, progress=False)
        assert not dest.exists() and _leftovers(tmp_path) == []


def test_interrupted_transfer_is_resumed_with_range(tmp_path):
    with FileServer({"/blob": BLOB}, cut_first=1) as srv:
        dest = tmp_path / "blob.bin"
        seen = []
        download.download_file(srv.url + "/blob", dest, BLOB_SHA, size=len(BLOB),
                               progress=lambda done, total: seen.append((done, total)))
        assert dest.read_bytes() == BLOB
        reqs = srv.requests_for("/blob")
        assert len(reqs) == 2
        assert reqs[0][2] is None and reqs[0][3] == 200
        # the second request asks only for what is missing
        start = int(reqs[1][2].split("=")[1].rstrip("-"))
        assert 0 < start < len(BLOB) and reqs[1][3] == 206
        assert seen[-1] == (len(BLOB), len(BLOB))
        assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]) if b[0] != start)
        assert _leftovers(tmp_path) == []


def test_partial_file_from_an_earlier_run_is_resumed(tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(BLOB[:100_000])
    with FileServer({"/blob": BLOB}) as srv:
        download.download_file(srv.url + "/blob", dest, BLOB_SHA, size=len(BLOB), progress=False)
        assert srv.requests_for("/blob") == [("GET", "/blob", "bytes=100000-", 206)]
    assert dest.read_bytes() == BLOB and _leftovers(tmp_path) == []


def test_server_without_range_support_restarts(tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(b"x" * 5000)  # stale garbage
    with FileServer({"/blob": BLOB}, no_range=True) as srv:
        download.download_file(srv.url + "/blob", dest, BLOB_SHA, progress=False)
    assert dest.read_bytes() == BLOB


def test_complete_part_file_gets_416_and_is_verified(tmp_path):
    dest = tmp_path / "blob.bin"
    (tmp_path / "blob.bin.part").write_bytes(BLOB)
    with FileServer({"/blob": BLOB}) as srv:
        download.download_file(srv.url + "/blob", dest, BLOB_SHA, size=len(BLOB), progress=False)
        assert [r[3] for r in srv.requests_for("/blob")] == [416]
    assert dest.read_bytes() == BLOB


def test_server_error_raises_after_retries(tmp_path):
    with FileServer({"/blob": BLOB}, status=500) as srv:
        dest = tmp_path / "blob.bin"
        with pytest.raises(CheckpointDownloadError, match="HTTP 500"):
            download.download_file(srv.url + "/blob", dest, BLOB_SHA, retries=1, progress=False)
        assert len(srv.log) == 2  # first try + one retry
    assert not dest.exists()


def test_not_found_is_not_retried(tmp_path):
    with FileServer({}) as srv:
        with pytest.raises(CheckpointDownloadError, match="HTTP 404"):
            download.download_file(srv.url + "/missing", tmp_path / "x", None, progress=False)
        assert len(srv.log) == 1


def test_connection_refused(tmp_path):
    with FileServer({}) as srv:
        url = srv.url + "/x"
    with pytest.raises(CheckpointDownloadError, match="Failed to download"):
        download.download_file(url, tmp_path / "x", None, retries=0, progress=False)


def test_plain_progress_bar_when_forced(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # force the built-in bar
    with FileServer({"/blob": BLOB}) as srv:
        download.download_file(srv.url + "/blob", tmp_path / "b", BLOB_SHA, size=len(BLOB), progress=True,
                               desc="blob")
    err = capsys.readouterr().err
    assert "blob [" in err and "100.0%" in err


def test_quiet_when_not_a_tty(tmp_path, capsys):
    with FileServer({"/blob": BLOB}) as srv:
        download.download_file(srv.url + "/blob", tmp_path / "b", BLOB_SHA)
    cap = capsys.readouterr()
    assert cap.err == "" and cap.out == ""


def test_two_processes_leave_one_good_file(tmp_path):
    big = os.urandom(3 * 1024 * 1024)
    sha = hashlib.sha256(big).hexdigest()
    dest = tmp_path / "models" / "big.bin"
    with FileServer({"/big": big}, slow=0.01) as srv:
        code = textwrap.dedent(f"""
            import sys
            from mt3_infer.download import download_file
            download_file({srv.url + '/big'!r}, {str(dest)!r}, {sha!r}, size={len(big)}, progress=False)
            print("ok")
        """)
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outs = [p.communicate(timeout=60) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert out.strip() == "ok"
        # the lock serialises them: fetched once, the other found a verified file
        assert len(srv.requests_for("/big")) == 1
    assert dest.read_bytes() == big
    assert _leftovers(dest.parent) == []


# ---------------------------------------------------------------------------
# Models (registry files redirected to the local server)
# ---------------------------------------------------------------------------
@pytest.fixture
def local_models(tmp_path, monkeypatch):
    """Registry files of every model point at small blobs on a local server."""
    blobs = {}
    for mid in registry.model_ids():
        for spec in registry._entry(mid)["checkpoint"]["files"]:
            data = (mid.encode() + b"-" + spec["name"].encode()) * 5000
            blobs[f"/{mid}/{spec['name']}"] = data
            monkeypatch.setitem(spec, "sha256", hashlib.sha256(data).hexdigest())
            monkeypatch.setitem(spec, "size", len(data))
    root = tmp_path / "ckpt"
    monkeypatch.setenv("MT3_CHECKPOINT_DIR", str(root))
    monkeypatch.delenv("MT3_OFFLINE", raising=False)
    with FileServer(blobs) as srv:
        monkeypatch.setenv("MT3_DOWNLOAD_MIRROR", srv.url)
        yield types.SimpleNamespace(server=srv, root=root, blobs=blobs)


def test_registry_urls_are_the_real_upstreams(monkeypatch):
    for var in ("MT3_DOWNLOAD_MIRROR", "MT3_HF_ENDPOINT", "MT3_GITHUB_MEDIA_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    urls = {f["name"] + "@" + m: f["url"] for m in registry.model_ids() for f in registry.files_for(m)}
    assert urls["mt3.pth@mr_mt3"] == "https://huggingface.co/gudgud1014/MR-MT3/resolve/main/mt3.pth"
    assert urls["mt3.pth@mt3_pytorch"] == (
        "https://media.githubusercontent.com/media/kunato/mt3-pytorch/master/pretrained/mt3.pth")
    assert urls["last.ckpt@yourmt3"] == (
        "https://huggingface.co/spaces/mimbres/YourMT3/resolve/main/amt/logs/2024/"
        "mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b36_nops/checkpoints/last.ckpt")
    for m in registry.model_ids():
        for f in registry.files_for(m):
            assert len(f["sha256"]) == 64 and int(f["sha256"], 16) >= 0 and f["sha256"] == f["sha256"].lower()
    monkeypatch.setenv("MT3_HF_ENDPOINT", "http://mirror.example/hf/")
    assert registry.files_for("fast")[0]["url"] == "http://mirror.example/hf/gudgud1014/MR-MT3/resolve/main/mt3.pth"


def test_download_model_layout(local_models):
    root = local_models.root
    p1 = download.download_model("fast", export=False, quiet=True)
    assert p1 == root / "mr_mt3" / "mt3.pth"
    assert p1.read_bytes() == local_models.blobs["/mr_mt3/mt3.pth"]
    p2 = download.download_model("mt3_pytorch", export=False, quiet=True)
    assert p2 == root / "mt3_pytorch" and p2.is_dir()
    assert (p2 / "mt3.pth").read_bytes() == local_models.blobs["/mt3_pytorch/mt3.pth"]
    cfg = json.loads((p2 / "config.json").read_text())
    assert cfg["vocab_size"] == 1536 and cfg["num_heads"] == 6 and cfg["feed_forward_proj"] == "gated-gelu"
    p3 = download.download_model("multitask", export=False, quiet=True)
    assert p3 == root / "yourmt3" / "mc13_256_g4_all_v7_mt3f_sqr_rms_moe_wf4_n8k2_silu_rope_rp_b36_nops" / "last.ckpt"
    assert p3.is_file()


def test_existing_file_trusted_then_reverified_on_request(local_models):
    p = download.download_model("mr_mt3", export=False, quiet=True)
    n = len(local_models.server.log)
    download.download_model("mr_mt3", export=False, quiet=True)
    assert len(local_models.server.log) == n  # size matches: no network
    # same size, corrupted content: only verify=True notices and repairs it
    data = bytearray(p.read_bytes())
    data[10] ^= 0xFF
    p.write_bytes(bytes(data))
    download.download_model("mr_mt3", export=False, quiet=True)
    assert len(local_models.server.log) == n
    download.download_model("mr_mt3", export=False, verify=True, quiet=True)
    assert len(local_models.server.log) == n + 1
    assert p.read_bytes() == local_models.blobs["/mr_mt3/mt3.pth"]


def test_truncated_existing_file_is_replaced(local_models):
    p = download.download_model("mr_mt3", export=False, quiet=True)
    p.write_bytes(p.read_bytes()[:100])
    download.download_model("mr_mt3", export=False, quiet=True)
    assert p.read_bytes() == local_models.blobs["/mr_mt3/mt3.pth"]


def test_model_download_error_names_the_model(local_models, monkeypatch):
    monkeypatch.setitem(registry._entry("mr_mt3")["checkpoint"]["files"][0], "sha256", "f" * 64)
    with pytest.raises(CheckpointDownloadError, match=r"(?s)model .mr_mt3.*Checksum verification failed"):
        download.download_model("mr_mt3", export=False, quiet=True)
    assert not (local_models.root / "mr_mt3" / "mt3.pth").exists()
    assert isinstance(CheckpointDownloadError("x"), CheckpointError)


def test_offline_mode_env(local_models, monkeypatch):
    monkeypatch.setenv("MT3_OFFLINE", "1")
    with pytest.raises(CheckpointError) as ei:
        download.download_model("fast", export=False, quiet=True)
    msg = str(ei.value)
    assert "MT3_OFFLINE=1" in msg
    assert local_models.server.url + "/mr_mt3/mt3.pth" in msg
    assert str(local_models.root / "mr_mt3" / "mt3.pth") in msg
    assert "mt3-infer download mr_mt3" in msg
    assert local_models.server.log == []


def test_offline_via_load_model_auto_download_false(local_models, monkeypatch):
    import mt3_infer.api as api

    class Dummy:
        def __init__(self):
            pass

        def load_model(self, path, device="auto"):
            raise AssertionError("must not be reached")

    monkeypatch.setattr(api, "_import_adapter", lambda mid: Dummy)
    with pytest.raises(CheckpointError, match=r"auto_download=False"):
        api.load_model("mr_mt3", auto_download=False, cache=False)
    monkeypatch.setenv("MT3_OFFLINE", "yes")
    with pytest.raises(CheckpointError, match=r"MT3_OFFLINE=1"):
        api.load_model("mr_mt3", cache=False)
    assert local_models.server.log == []


def test_load_model_downloads_then_hands_checkpoint_to_adapter(local_models, monkeypatch):
    import mt3_infer.api as api

    loaded = []

    class Dummy:
        def __init__(self):
            pass

        def load_model(self, path, device="auto"):
            loaded.append((path, device))

    monkeypatch.setattr(api, "_import_adapter", lambda mid: Dummy)
    monkeypatch.setattr(download, "can_export", lambda model: False)
    api.load_model("fast", device="cpu", cache=False)
    assert loaded == [(str(local_models.root / "mr_mt3" / "mt3.pth"), "cpu")]


# ---------------------------------------------------------------------------
# Export cache
# ---------------------------------------------------------------------------
def _fake_exporter(monkeypatch, calls):
    pytest.importorskip("torch")
    from mt3_infer.export.mt3 import MT3Config, mt3_meta

    def export_checkpoint(model, src, dst):
        calls.append((src, dst, model))
        # the metadata the real MT3 exporter writes (valid under the format), stub weights
        meta = mt3_meta(MT3Config(), hashlib.sha256(Path(src).read_bytes()).hexdigest())
        with zipfile.ZipFile(dst, "w") as z:
            z.writestr("model/extra/mt3_infer.json", json.dumps(meta))
            z.writestr("model/data.pkl", b"stub")

    import mt3_infer.export

    monkeypatch.setattr(mt3_infer.export, "export_checkpoint", export_checkpoint)


def test_export_runs_once_and_is_cached(local_models, monkeypatch):
    calls = []
    _fake_exporter(monkeypatch, calls)
    monkeypatch.setattr(download, "can_export", lambda model: True)
    download.download_model("mt3_pytorch", quiet=True)
    target = local_models.root / "mt3_pytorch" / "mt3_pytorch.mt3i.pt"
    assert len(calls) == 1
    assert calls[0][0] == str(local_models.root / "mt3_pytorch" / "mt3.pth")
    assert download.exported_metadata(target)["family"] == "mt3"
    download.download_model("mt3_pytorch", quiet=True)
    download.ensure_exported("mt3_pytorch", quiet=True)
    assert len(calls) == 1  # cached
    download.ensure_exported("mt3_pytorch", force=True, quiet=True)
    assert len(calls) == 2
    assert _leftovers(target.parent) == []


def _flip_byte_in_record(path: Path, record_suffix: str) -> None:
    """Flip one byte inside a stored zip record's data (the CRC in the headers stays)."""
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(record_suffix))
    data = bytearray(path.read_bytes())
    # local header: 30 bytes + name + extra, then the data
    n, e = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + n + e
    data[start] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_cached_export_is_detected_and_remade(local_models, monkeypatch):
    import mt3_infer.api as api

    calls, loaded = [], []
    _fake_exporter(monkeypatch, calls)
    monkeypatch.setattr(download, "can_export", lambda model: True)
    download.download_model("mt3_pytorch", quiet=True)  # downloads, then exports once
    target = local_models.root / "mt3_pytorch" / "mt3_pytorch.mt3i.pt"
    assert download.export_damage(target) is None and len(calls) == 1
    _flip_byte_in_record(target, "data.pkl")  # e.g. a flipped bit on disk in the weights
    assert "CRC-32" in download.export_damage(target)
    assert download.exported_metadata(target) is not None  # the metadata alone would not show it

    class Dummy:
        def load_model(self, path, device="auto"):
            loaded.append(path)

    monkeypatch.setattr(api, "_import_adapter", lambda mid: Dummy)
    api.load_model("mt3_pytorch", cache=False)
    assert len(calls) == 2 and loaded == [str(target)]  # remade, then handed over
    assert download.export_damage(target) is None
    # truncated (a crash mid-copy by another tool): also remade
    target.write_bytes(target.read_bytes()[:-7])
    download.ensure_exported("mt3_pytorch", quiet=True)
    assert len(calls) == 3 and download.export_damage(target) is None
    # damaged and no way to remake it: a clear error naming the file
    _flip_byte_in_record(target, "data.pkl")
    monkeypatch.setattr(download, "can_export", lambda model: False)
    with pytest.raises(CheckpointError, match="damaged"):
        api.load_model("mt3_pytorch", cache=False)


def test_export_without_checkpoint(local_models):
    with pytest.raises(CheckpointError, match="mt3-infer download mr_mt3"):
        download.ensure_exported("mr_mt3", quiet=True)


def test_exported_metadata_rejects_non_artifacts(tmp_path):
    p = tmp_path / "x.pt"
    p.write_bytes(b"not a zip")
    assert download.exported_metadata(p) is None
    assert download.exported_metadata(tmp_path / "missing") is None


def test_load_model_exports_once_and_passes_the_artifact(local_models, monkeypatch):
    import mt3_infer.api as api

    calls, loaded = [], []
    _fake_exporter(monkeypatch, calls)
    monkeypatch.setattr(download, "can_export", lambda model: True)

    class Dummy:
        def load_model(self, path, device="auto"):
            loaded.append(path)

    monkeypatch.setattr(api, "_import_adapter", lambda mid: Dummy)
    api.load_model("fast", cache=False)
    api.load_model("fast", cache=False)
    target = local_models.root / "mr_mt3" / "mr_mt3.mt3i.pt"
    assert loaded == [str(target), str(target)] and len(calls) == 1
    # without torch/exporter and without a cached export, the original checkpoint is handed over
    target.unlink()
    monkeypatch.setattr(download, "can_export", lambda model: False)
    api.load_model("fast", cache=False)
    assert loaded[-1] == str(local_models.root / "mr_mt3" / "mt3.pth")


def test_can_export_false_without_exporter_module(monkeypatch):
    monkeypatch.setattr(download, "torch_available", lambda: False)
    assert download.can_export("fast") is False


# ---------------------------------------------------------------------------
# failed downloads: the one help message, and nothing left behind
# ---------------------------------------------------------------------------
def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def _locks(folder: Path):
    return sorted(str(p) for p in folder.rglob("*.lock")) if folder.exists() else []


def test_lock_file_removed_after_success_and_failure(tmp_path):
    with FileServer({"/blob": BLOB}) as srv:
        download.download_file(srv.url + "/blob", tmp_path / "ok" / "blob.bin", BLOB_SHA, progress=False)
        with pytest.raises(CheckpointDownloadError, match="HTTP 404"):
            download.download_file(srv.url + "/missing", tmp_path / "nf" / "x.bin", None, progress=False)
    with pytest.raises(CheckpointDownloadError, match="cannot reach 127.0.0.1"):
        download.download_file(f"http://127.0.0.1:{_free_port()}/x", tmp_path / "cr" / "x.bin", None,
                               retries=0, progress=False)
    assert _locks(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]  # failed first downloads: no empty folder
    assert [p.name for p in (tmp_path / "ok").iterdir()] == ["blob.bin"]


def test_lock_still_serialises_threads_after_removal(tmp_path):
    import threading

    target = tmp_path / "t.bin"
    inside, overlap = [0], []

    def worker():
        for _ in range(50):
            with file_lock(target):
                inside[0] += 1
                overlap.append(inside[0])
                inside[0] -= 1

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert max(overlap) == 1 and _locks(tmp_path) == []


@pytest.mark.parametrize("how", ["refused", "404"])
def test_model_download_failure_message_and_no_lock_left(tmp_path, monkeypatch, how):
    monkeypatch.delenv("MT3_CHECKPOINT_DIR", raising=False)
    monkeypatch.delenv("MT3_OFFLINE", raising=False)
    monkeypatch.setenv("MT3_DOWNLOAD_RETRIES", "0")
    monkeypatch.chdir(tmp_path)  # default root: ./.mt3_checkpoints
    f = registry.files_for("mr_mt3")[0]
    with FileServer({}) as srv:
        mirror = srv.url if how == "404" else f"http://127.0.0.1:{_free_port()}"
        monkeypatch.setenv("MT3_DOWNLOAD_MIRROR", mirror)
        with pytest.raises(CheckpointDownloadError) as ei:
            download.download_model("mr_mt3", export=False, quiet=True)
    msg = str(ei.value)
    target = tmp_path / ".mt3_checkpoints" / "mr_mt3" / "mt3.pth"
    for part in ("model 'mr_mt3'", "HTTP 404" if how == "404" else "cannot reach 127.0.0.1",
                 f"{mirror}/mr_mt3/mt3.pth", str(target), f"{f['size']:,} bytes", f["sha256"],
                 "MT3_OFFLINE=1", "MT3_DOWNLOAD_MIRROR=", "MT3_CHECKPOINT_DIR", "mt3-infer download mr_mt3"):
        assert part in msg, part
    assert _locks(tmp_path) == [] and not (tmp_path / ".mt3_checkpoints").exists()


def test_wrong_size_checkpoint_offline_is_named_not_missing(local_models, monkeypatch):
    p = local_models.root / "mr_mt3" / "mt3.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x" * 1234)
    size = registry.files_for("mr_mt3")[0]["size"]
    monkeypatch.setenv("MT3_OFFLINE", "1")
    with pytest.raises(CheckpointError) as ei:
        download.download_model("fast", export=False, quiet=True)
    msg = str(ei.value)
    assert "wrong size (truncated or corrupt)" in msg and "not available locally" not in msg
    assert f"has 1,234 bytes, expected {size:,}" in msg
    assert "delete it, or run `mt3-infer download mr_mt3 --force`" in msg
    assert p.read_bytes() == b"x" * 1234 and local_models.server.log == []


def test_wrong_size_checkpoint_download_failure_names_it(local_models, monkeypatch):
    p = local_models.root / "mr_mt3" / "mt3.pth"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x" * 99)
    monkeypatch.setenv("MT3_DOWNLOAD_MIRROR", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.setenv("MT3_DOWNLOAD_RETRIES", "0")
    with pytest.raises(CheckpointDownloadError, match=r"(?s)cannot reach.*has 99 bytes, expected .*--force"):
        download.download_model("fast", export=False, quiet=True)
    assert _locks(local_models.root) == []


# ---------------------------------------------------------------------------
# the checkpoint root: downloads never write outside it
# ---------------------------------------------------------------------------
def test_model_ids_are_registry_names_only():
    from mt3_infer.exceptions import ModelNotFoundError

    for bad in ("../mr_mt3", "/etc/passwd", "mr_mt3/../../x", "..", "mr_mt3\x00"):
        with pytest.raises(ModelNotFoundError):
            registry.resolve_model_name(bad)


def test_mirror_urls_carry_only_registry_names(monkeypatch):
    monkeypatch.setenv("MT3_DOWNLOAD_MIRROR", "https://mirror.example/m/")
    for mid in registry.model_ids():
        for f in registry.files_for(mid):
            if f["url"] is None:
                continue
            assert f["url"] == f"https://mirror.example/m/{mid}/{f['name']}"
            assert "/" not in f["name"] and ".." not in f["name"]


def test_download_refuses_a_link_out_of_the_root(local_models, tmp_path, monkeypatch):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    local_models.root.mkdir(parents=True)
    (local_models.root / "mr_mt3").symlink_to(outside, target_is_directory=True)
    with pytest.raises(CheckpointError, match="outside the checkpoint root"):
        download.download_model("mr_mt3", export=False, quiet=True)
    assert list(outside.iterdir()) == []  # nothing written through the link
    # a file link inside the model folder is refused too
    (local_models.root / "mr_mt3").unlink()
    (local_models.root / "mr_mt3").mkdir()
    (local_models.root / "mr_mt3" / "mt3.pth").symlink_to(outside / "stolen.pth")
    with pytest.raises(CheckpointError, match="outside the checkpoint root"):
        download.download_model("mr_mt3", export=False, quiet=True)
    assert not (outside / "stolen.pth").exists()
    # the root itself may be a link: files land in its target
    (local_models.root / "mr_mt3" / "mt3.pth").unlink()
    real_root = tmp_path / "real_root"
    real_root.mkdir()
    linked = tmp_path / "linked_root"
    linked.symlink_to(real_root, target_is_directory=True)
    monkeypatch.setenv("MT3_CHECKPOINT_DIR", str(linked))
    download.download_model("mr_mt3", export=False, quiet=True)
    assert (real_root / "mr_mt3" / "mt3.pth").is_file()


_KILLED_EXPORT = r"""
import os, signal, sys
import mt3_infer.export
from mt3_infer import artifact

def export_checkpoint(model, src, dst):
    with open(dst, "wb") as f:  # half an artifact, then the process dies
        f.write(b"PK\x03\x04" + b"\0" * 4096)
        f.flush()
        os.fsync(f.fileno())
    os.kill(os.getpid(), signal.SIGKILL)

mt3_infer.export.export_checkpoint = export_checkpoint
artifact.resolve(sys.argv[1], family="mt3")
"""


def test_export_killed_midway_leaves_nothing_a_load_would_use(tmp_path, monkeypatch):
    import subprocess

    from mt3_infer import artifact

    ckpt = tmp_path / "mt3.pth"
    ckpt.write_bytes(b"weights" * 1000)
    r = subprocess.run([sys.executable, "-c", _KILLED_EXPORT, str(ckpt)], capture_output=True, timeout=120)
    assert r.returncode == -9, r.stderr  # SIGKILL inside the exporter
    target = tmp_path / "mt3.mt3i.pt"
    assert not target.exists()  # the half file never had the artifact's name
    calls = []
    _fake_exporter(monkeypatch, calls)
    out = artifact.resolve(str(ckpt), family="mt3")  # the dead process's lock does not block
    assert out == target and len(calls) == 1 and artifact.damage(target) is None
    assert artifact.resolve(str(ckpt), family="mt3") == target and len(calls) == 1  # current now
