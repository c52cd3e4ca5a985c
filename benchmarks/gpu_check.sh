#!/usr/bin/env bash
# The prepared GPU check (issue 13), for a lent CUDA machine: <= 8 minutes.
#
# Here, once (needs apt and PyPI):   make gpu-bundle      -> .gpu/ (ignored by git)
# There, through the device tool:    run(command="bash benchmarks/gpu_check.sh",
#                                        carry=[".gpu"], timeout_s=540)
#
# The machine there has its own PyTorch with CUDA (another release than the
# CPU wheel pinned here) and no network, so this script builds the package
# against *that* torch, with the C libraries (kissfft, soxr) unpacked from the
# Debian packages in .gpu/debs and the pure-Python runtime dependency (mido)
# from .gpu/wheels.  Then, all on the GPU:
#   1. the CUDA tests (device selection, fp32/fp16/bf16 decoding, guards);
#   2. benchmarks/bench_limit.py --device cuda at float32, float16, bfloat16
#      (MT3 180 s at 256 tokens, YourMT3 60 s at 32 tokens): wall time,
#      per second of audio, speed vs float32.
# Everything it prints goes to $OUT/gpu_check.log (the device tool brings
# $OUT back).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
T0=$(date +%s)
step() { echo; echo "== $* ($(( $(date +%s) - T0 )) s)"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())' || exit 1

step "C libraries from .gpu/debs"
SYS="$ROOT/.gpu/root"
mkdir -p "$SYS" "$ROOT/.gpu/bin"
for f in "$ROOT"/.gpu/debs/*.deb; do dpkg -x "$f" "$SYS"; done
LIBDIR="$SYS/usr/lib/x86_64-linux-gnu"
# setup.py asks pkg-config two questions per library; answer them from the unpacked tree
cat > "$ROOT/.gpu/bin/pkg-config" <<EOF
#!/bin/sh
case "\$1" in
  --exists) exit 0 ;;
  --cflags) echo "-I$SYS/usr/include -I$SYS/usr/include/kissfft" ;;
  --libs) case "\$2" in kissfft-float) echo "-L$LIBDIR -lkissfft-float" ;; soxr) echo "-L$LIBDIR -lsoxr" ;; esac ;;
esac
EOF
chmod +x "$ROOT/.gpu/bin/pkg-config"
export PATH="$ROOT/.gpu/bin:$PATH" LD_LIBRARY_PATH="$LIBDIR:${LD_LIBRARY_PATH:-}"

step "build against this machine's torch"
$PY -m pip install -q --no-index --find-links "$ROOT/.gpu/wheels" mido || exit 1
$PY -m pip install -q --no-build-isolation --no-deps -e . || exit 1
$PY -c 'import mt3_infer, mt3_infer._engine as e; print("engine:", e.engine_library_path())' || exit 1

step "CUDA tests"
timeout 150 $PY -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_api.py tests/test_precision.py \
    -k "cuda or device or dtype or bfloat16 or attend" 2>&1 | tail -15

step "bench_limit on the GPU"
timeout 330 $PY benchmarks/bench_limit.py --device cuda --dtypes float32,float16,bfloat16 \
    --no-breakdown --agreement-clips 0 --workdir /tmp/bench_limit_gpu --json "$OUT/bench_limit_gpu.json"

step "done"
