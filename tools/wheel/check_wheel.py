"""Install the built wheel as a user would and check it (`make test-wheel`).

    python tools/wheel/check_wheel.py dist/mt3_infer-*.whl [--workdir DIR] [--keep]

1. Dynamic dependencies of every shared object in the wheel: nothing but the
   C/C++ runtime (libc, libm, libstdc++, libgcc_s, the loader), libgomp, the
   libraries bundled under mt3_infer.libs/, and libtorch/libc10 (the engine).
2. A fresh venv with only pip and the wheel (numpy and mido come as its
   requirements; no torch): run from an empty folder, import, features, codec,
   and the clear FrameworkError of load_model.
3. A second fresh venv with torch==2.13.0 and the wheel: a small random-weight
   mt3.pth in the upstream layout (tests/fixtures_mt3.py) is exported and
   transcribed by the installed package; then the bundled network
   (``offline``) transcribes examples/demo.wav from the wheel's own copy with
   MT3_OFFLINE=1 and without importing torch.
Prints one line per check and exits non-zero on the first failure.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
TORCH_PIN = "torch==2.13.0"
ALLOWED = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2",
           "libpthread.so.0", "libdl.so.2", "libgomp.so.1", "libtorch.so", "libtorch_cpu.so",
           "libc10.so", "libtorch_cuda.so", "libc10_cuda.so"}

NO_TORCH = r"""
import sys, numpy as np
sys.modules["torch"] = None  # and prove nothing needs it
import mt3_infer
from mt3_infer import codec, FrameworkError
assert mt3_infer.__file__.startswith(sys.prefix), mt3_infer.__file__
x = (0.1 * np.random.default_rng(0).standard_normal(44100 * 3)).astype(np.float32)
f = mt3_infer.compute_features(x, 44100, "mt3_pytorch")
assert f.shape == (2, 257, 512) and np.isfinite(f).all(), f.shape  # 48000 samples at 16 kHz
data, notes = codec.tokens_to_midi(np.array([[1134, 1135, 1133, 1004 + 60, 3 + 50, 1132, 1004 + 60, 1]]), "mt3_pytorch")
assert data[:4] == b"MThd" and len(notes) == 1 and notes["pitch"][0] == 60, notes  # tie end, program 0, on, 0.5 s, off
open(sys.argv[1], "wb").close()  # a checkpoint file: loading it needs torch
try:
    mt3_infer.load_model("mt3_pytorch", checkpoint_path=sys.argv[1], auto_download=False)
    raise SystemExit("load_model without torch did not raise")
except FrameworkError as e:
    assert "pip install torch==2.13" in str(e), e
print("ok: import, features, codec without torch;", mt3_infer.__version__)
"""

WITH_TORCH = r"""
import os, sys, time, numpy as np
sys.path.insert(0, sys.argv[1])  # tests/ for the checkpoint fixture only
import fixtures_mt3 as fx
import mt3_infer
from mt3_infer import _engine
assert mt3_infer.__file__.startswith(sys.prefix), mt3_infer.__file__
ck = fx.write_checkpoint(os.path.join(sys.argv[2], "ckpt"), **fx.MUSICAL)
t = np.arange(16000 * 5) / 16000
audio = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
m = mt3_infer.load_model("mt3_pytorch", checkpoint_path=os.path.dirname(ck), device="cpu")
midi = m.transcribe(audio, 16000)
assert type(midi).__name__ == "MidiFile" and len(midi.tracks) >= 1
notes = m.transcribe_notes(audio, 16000, max_new_tokens=64)
maps = open("/proc/self/maps").read()
libtorch = sorted({l.split()[-1] for l in maps.splitlines() if l.endswith("libtorch_cpu.so")})
assert libtorch == [os.path.join(_engine.installed_torch()[1], "libtorch_cpu.so")], libtorch
assert libtorch[0].startswith(sys.prefix), libtorch
print(f"ok: export + transcribe with torch; {len(notes)} notes; libtorch {libtorch[0]}")
"""

# The bundled network from the installed wheel: offline, no torch import.
BUNDLED = r"""
import os, sys
import mt3_infer
from mt3_infer import registry
os.environ["MT3_OFFLINE"] = "1"
path = registry.default_checkpoint_path("offline")
assert str(path).startswith(sys.prefix) and path.is_file(), path
audio, sr = mt3_infer.load_audio(sys.argv[1])
m = mt3_infer.load_model("offline", auto_download=False)
notes = m.transcribe_notes(audio, sr)
assert "torch" not in sys.modules
print(f"ok: bundled model from the wheel, offline, torch not imported; {len(notes)} notes")
"""


PASSED = [0]


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        print(f"wheel: {PASSED[0]} passed, 1 failed")
        sys.exit(f"FAILED: {' '.join(map(str, cmd))}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def needed(path):
    out = run(["readelf", "-d", path])
    names = [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "(NEEDED)" in ln]
    paths = [ln.split("[", 1)[1].rstrip("]") for ln in out.splitlines() if "PATH)" in ln]
    return names, paths


def check_dependencies(wheel, tmp):
    d = os.path.join(tmp, "unpacked")
    with zipfile.ZipFile(wheel) as z:
        z.extractall(d)
        names = z.namelist()
    bundled = {os.path.basename(n) for n in names if ".libs/" in n}
    sos = [os.path.join(d, n) for n in names if n.endswith(".so") or ".so." in n]
    for so in sos:
        libs, rpaths = needed(so)
        bad = [n for n in libs if n not in ALLOWED and n not in bundled]
        if bad:
            sys.exit(f"FAILED: {os.path.relpath(so, d)} needs {bad} (allowed: runtime, libgomp, libtorch, bundled)")
        for rp in (e for r in rpaths for e in r.split(":")):
            if not rp.startswith("$ORIGIN"):
                sys.exit(f"FAILED: {os.path.relpath(so, d)} has a build-machine search path {rp!r}")
        text = open(so, "rb").read()
        for marker in (ROOT.encode(), sys.prefix.encode()):
            if marker in text:
                sys.exit(f"FAILED: {os.path.relpath(so, d)} holds the build path {marker.decode()!r}")
        print(f"ok: {os.path.relpath(so, d)} needs {', '.join(libs)}")
        PASSED[0] += 1


def venv(path, *packages):
    run([sys.executable, "-m", "venv", path])
    py = os.path.join(path, "bin", "python")
    run([py, "-m", "pip", "install", "-q", *packages])
    return py


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel")
    ap.add_argument("--workdir")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    wheel = os.path.abspath(a.wheel)
    tmp = a.workdir or tempfile.mkdtemp(prefix="mt3-wheel-")
    os.makedirs(tmp, exist_ok=True)
    print(f"wheel: {os.path.basename(wheel)} ({os.path.getsize(wheel) / 1e6:.1f} MB)")
    try:
        check_dependencies(wheel, tmp)
        empty = os.path.join(tmp, "cwd")
        os.makedirs(empty, exist_ok=True)
        t0 = time.time()
        py = venv(os.path.join(tmp, "venv-plain"), wheel)
        out = run([py, "-c", NO_TORCH, os.path.join(tmp, "mt3.pth")], cwd=empty)
        print(out.strip(), f"({time.time() - t0:.0f} s)")
        PASSED[0] += 1
        imp = run([py, "-c", "import time; t = time.perf_counter(); import mt3_infer; "
                   "print(f'{time.perf_counter() - t:.3f}')"], cwd=empty)
        print(f"ok: import mt3_infer in {float(imp):.3f} s (fresh venv, no torch)")
        PASSED[0] += 1
        t0 = time.time()
        py = venv(os.path.join(tmp, "venv-torch"), TORCH_PIN, wheel)
        out = run([py, "-c", WITH_TORCH, os.path.join(ROOT, "tests"), tmp], cwd=empty)
        print(out.strip(), f"({time.time() - t0:.0f} s)")
        PASSED[0] += 1
        out = run([py, "-c", BUNDLED, os.path.join(ROOT, "examples", "demo.wav")], cwd=empty)
        print(out.strip())
        PASSED[0] += 1
    finally:
        if not a.keep and not a.workdir:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"wheel: {PASSED[0]} passed, 0 failed")


if __name__ == "__main__":
    main()
