#!/bin/bash
# Builds the anchor environment (pure-Python mt3-infer 0.2.0) used by tools/fidelity:
#   $MT3_ANCHOR_DIR/venv   (default /work/anchor/venv)   - torch 2.13.0 CPU, transformers 4.57, mt3-infer 0.2.0
#   $MT3_ANCHOR_DIR/tf445  - transformers 4.45.2 + tokenizers 0.20.3 overlay (YourMT3 inference only)
# Usage: tools/fidelity/anchor/setup_anchor.sh [ANCHOR_DIR]     (idempotent-ish; needs PyPI access)
# Then: MT3_ANCHOR_PYTHON=$ANCHOR_DIR/venv/bin/python make fidelity
# The tools themselves (anchor_*.py) stay in this folder; point MT3_ANCHOR_TOOLS here if
# the machine has no other copy.  venv-freeze.txt lists the exact versions of the reference venv.
set -e
ANCHOR_DIR="${1:-${MT3_ANCHOR_DIR:-/work/anchor}}"
PYTHON="${PYTHON:-python3}"
mkdir -p "$ANCHOR_DIR"
cd "$ANCHOR_DIR"
"$PYTHON" -m venv venv
echo "torch==2.13.0" > constraints.txt
venv/bin/pip install -q "torch==2.13.0"                       # CPU wheel
venv/bin/pip install -q -c constraints.txt "torch==2.13.0" absl-py einops librosa mido mir-eval numpy \
    pretty-midi pyyaml scipy soundfile soxr tqdm "transformers==4.57.*"
# torchaudio: newest on PyPI is 2.11.0 and it is a CUDA build (its .so files need libc10_cuda.so).
# Install without deps, then disable its native libs: torchaudio then runs in pure-Python mode,
# which is all the anchor needs (MelSpectrogram, Spectrogram, functional.resample, melscale_fbanks).
venv/bin/pip install -q --no-deps "torchaudio==2.11.0"
for f in venv/lib/python3.*/site-packages/torchaudio/lib/*.so; do
    [ -e "$f" ] && mv "$f" "$f.disabled-cuda-build"
done
# torchvision (0.28.0 pins torch==2.13.0) is also a CUDA build and breaks `import torchvision`;
# the anchor never imports it, so it is NOT installed (pip check reports it missing; harmless).
venv/bin/pip install -q --no-deps "mt3-infer==0.2.0"
# YourMT3 inference needs transformers <= 4.45: overlay used only by anchor_transcribe --adapter yourmt3
venv/bin/pip install -q --no-deps --target "$ANCHOR_DIR/tf445" "transformers==4.45.2" "tokenizers>=0.20,<0.21"
echo "anchor ready: $ANCHOR_DIR/venv/bin/python"
