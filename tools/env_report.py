"""Print what a numeric test result depends on: CPU, SIMD, library versions.

`make test` prints this first, so a failure on another machine can be read.
Imports nothing of mt3_infer; each item that is missing prints as such.
"""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys

# variables that select other code paths than this CPU's best (see `make test-isa`)
FORCING = ("GLIBC_TUNABLES", "NPY_DISABLE_CPU_FEATURES", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
           "MKL_CBWR", "OPENBLAS_CORETYPE")
SIMD = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
        "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu():
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k.strip() == "model name":
                    model = v.strip()
                elif k.strip() == "flags":
                    flags = set(v.split())
                    break
    except OSError:
        pass
    return model, [s for s in SIMD if s in flags]


def pkgconfig(name):
    if not shutil.which("pkg-config"):
        return "pkg-config missing"
    r = subprocess.run(["pkg-config", "--modversion", name], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "not found"


def version(mod):
    try:
        m = __import__(mod)
    except Exception as e:  # noqa: BLE001 - report, never fail
        return f"unavailable ({type(e).__name__})"
    return getattr(m, "__version__", "?")


def main():
    model, simd = cpu()
    lines = [
        ("cpu", f"{model}  ({platform.machine()}, {_nproc()} cores)"),
        ("simd", " ".join(simd) or "(none listed)"),
        ("os", f"{platform.platform()}  glibc {'.'.join(platform.libc_ver()[1:]) or '?'}"),
        ("python", sys.version.split()[0]),
        ("numpy", _numpy()),
        ("torch", _torch()),
        ("kissfft", pkgconfig("kissfft-float")),
        ("libsoxr", f"{pkgconfig('soxr')}  (python-soxr {version('soxr')})"),
    ]
    forced = [f"{k}={os.environ[k]}" for k in FORCING if os.environ.get(k)]
    if forced:
        lines.append(("forced", " ".join(forced)))
    print("== environment")
    for k, v in lines:
        print(f"   {k:<8} {v}")


def _nproc():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _numpy():
    v = version("numpy")
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
        on = [d for d in __cpu_dispatch__ if __cpu_features__.get(d)]
        return f"{v}  dispatch: {' '.join(on) or 'baseline'}"
    except Exception:  # noqa: BLE001
        return v


def _torch():
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        return f"unavailable ({type(e).__name__})"
    cap = torch.backends.cpu.get_cpu_capability()
    dnn = torch.backends.mkldnn.is_available()
    return f"{torch.__version__}  cpu capability {cap}, oneDNN {'on' if dnn else 'off'}, threads {torch.get_num_threads()}"


if __name__ == "__main__":
    main()
