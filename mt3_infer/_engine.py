"""Locate the libtorch engine library (built beside this package by setup.py)
and load exported models through it.

Nothing here imports torch: the engine library is opened by the C core with
dlopen() the first time a model is loaded.
"""
import ctypes
import glob
import importlib.util
import json
import os
import threading

from .exceptions import CheckpointError, FrameworkError

_HERE = os.path.dirname(os.path.abspath(__file__))

#: libgomp spin count applied by :func:`configure_openmp` (see there).
DEFAULT_GOMP_SPINCOUNT = "10000"


def configure_openmp():
    """Give the OpenMP runtime a short busy-wait unless the user chose one.

    libgomp (loaded with libsoxr by ``mt3_infer._core``, and shared by the
    libtorch engine) busy-waits between parallel regions by default.  When
    the machine has fewer free cores than threads -- other processes, or
    several ``transcribe`` calls at once -- every barrier then waits for a
    descheduled thread: decoder steps were measured 10x slower on 2 busy
    cores.  ``GOMP_SPINCOUNT=10000`` keeps the fast path and yields under
    contention.  Must run before libgomp is loaded (``mt3_infer/__init__``
    calls it before importing ``_core``); nothing is changed when
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is already set, or when
    ``MT3_KEEP_OMP_ENV=1``.
    """
    env = os.environ
    if env.get("MT3_KEEP_OMP_ENV") == "1":
        return
    if "OMP_WAIT_POLICY" not in env and "GOMP_SPINCOUNT" not in env:
        env["GOMP_SPINCOUNT"] = DEFAULT_GOMP_SPINCOUNT


def built_torch():
    """``{"version", "full_version", "cuda"}`` of the torch the engine was built
    against (recorded by setup.py in ``_build_info.json``), or None."""
    try:
        with open(os.path.join(_HERE, "_build_info.json"), encoding="utf-8") as f:
            info = json.load(f).get("torch")
    except (OSError, ValueError, AttributeError):
        return None
    return info if isinstance(info, dict) and info.get("version") else None


def torch_install_hint():
    """The exact ``pip install torch==...`` for this build (never an unpinned
    torch: that pulls several GB of CUDA wheels)."""
    info = built_torch()
    if info is None:
        return ("pip install torch==<version> (the CPU build is enough), then rebuild mt3-infer "
                "against it with `pip install --no-build-isolation mt3-infer` so the engine "
                "matches that release")
    build = "the CPU build" if not info.get("cuda") else f"the CUDA {info['cuda']} build"
    return (f"pip install torch=={info['version']} ({build}: the release the mt3-infer "
            "engine was built against)")


def engine_library_path():
    """Path of libmt3_torch*.so, or None when the package was built without torch."""
    override = os.environ.get("MT3_ENGINE_LIBRARY")
    if override:
        return override
    hits = sorted(glob.glob(os.path.join(_HERE, "libmt3_torch*.so")))
    return hits[0] if hits else None


def _release(v):
    """'2.13.0+cpu' -> (2, 13): the part of a torch version its C++ ABI follows."""
    parts = str(v).split("+", 1)[0].split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def installed_torch():
    """``(version, lib_dir)`` of the torch package importable here, found
    without importing it (its Python side costs seconds), or None."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    root = list(spec.submodule_search_locations)[0]
    from importlib import metadata

    try:
        version = metadata.version("torch")
    except metadata.PackageNotFoundError:  # a torch without its dist-info: not checked
        version = None
    return version, os.path.join(root, "lib")


# libtorch's libraries in dependency order; the engine names them as NEEDED
# without any RUNPATH, so they must be in the process (RTLD_GLOBAL) first.
_TORCH_LIBS = ("libc10.so", "libc10_cuda.so", "libtorch_cpu.so", "libtorch_cuda.so", "libtorch.so")
_PREPARED = None
_PREPARE_LOCK = threading.Lock()


def check_torch():
    """``(version, lib_dir)`` of an installed torch the engine can bind to:
    the engine library exists, torch is installed, and its release
    (major.minor) is the one the engine was built against.  Raises
    FrameworkError naming the problem and the fix.  Imports nothing."""
    lib = engine_library_path()
    if lib is None:
        raise FrameworkError(
            "the libtorch engine is not installed (mt3-infer was built without torch). "
            f"Install torch: {torch_install_hint()}, then reinstall mt3-infer."
        )
    found = installed_torch()
    built = built_torch()
    if found is None:
        raise FrameworkError(
            "the libtorch engine needs the torch package, which is not installed in this "
            f"environment. Install it: {torch_install_hint()}."
        )
    version, lib_dir = found
    if built is not None and version is not None and _release(version) != _release(built["version"]):
        raise FrameworkError(
            f"the mt3-infer engine was built against torch {built['version']} but this "
            f"environment has torch {version}; libtorch's C++ ABI changes between releases. "
            f"Fix: {torch_install_hint()}, or rebuild mt3-infer against torch {version} with "
            "`pip install --no-build-isolation --force-reinstall --no-deps mt3-infer` "
            "(from its source)."
        )
    return version, lib_dir


def prepare_engine():
    """Path of the engine library, ready to dlopen: the installed torch is
    found (without importing it), checked against the release the engine was
    built for (:func:`check_torch`), and its libraries loaded globally, so the
    engine binds to the torch of *this* environment, never to a path of the
    build machine.  Raises FrameworkError naming the problem and the fix."""
    global _PREPARED
    if os.environ.get("MT3_ENGINE_LIBRARY"):
        return engine_library_path()  # an explicit library: the caller arranged its dependencies
    with _PREPARE_LOCK:
        if _PREPARED is not None:
            return _PREPARED
        lib = engine_library_path()
        version, lib_dir = check_torch()
        for name in _TORCH_LIBS:
            p = os.path.join(lib_dir, name)
            if os.path.exists(p):
                try:
                    ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL)
                except OSError as exc:
                    raise FrameworkError(
                        f"cannot load {name} of the installed torch {version} ({lib_dir}): {exc}. "
                        f"Reinstall torch: {torch_install_hint()}."
                    ) from exc
        _PREPARED = lib
        return lib


_OPS_LOCK = threading.Lock()
_OPS_LOADED = False


def load_engine_ops():
    """Register the engine's TorchScript operators (``mt3::attend_rows``, the
    decoder step's attention; csrc/engine/engine_torch.cpp) with the torch of
    this process, so exported modules can be scripted and ``torch.jit.load``-ed
    from Python.  The engine library registers them when it is opened; this
    opens the same file (the C core's later dlopen gets the same handle, so
    nothing registers twice).  Imports torch.  Raises FrameworkError when the
    engine is missing or does not match the installed torch."""
    global _OPS_LOADED
    with _OPS_LOCK:
        if _OPS_LOADED:
            return
        import torch

        lib = prepare_engine()
        try:
            torch.ops.load_library(lib)
        except OSError as exc:
            raise FrameworkError(f"cannot open the mt3-infer engine {lib!r}: {exc}. "
                                 f"Reinstall torch ({torch_install_hint()}), then mt3-infer.") from exc

        @torch.library.register_fake("mt3::attend_rows")
        def _attend_rows_shape(q, k, v, sizes, lens):  # for torch.export: the result's shape only
            return q.new_empty((q.size(0), q.size(1) * q.size(2)))

        _OPS_LOADED = True


def prepack_enabled() -> bool:
    """Whether the engine may keep oneDNN-packed copies of the decoder weights
    (CPU fp32; on by default).  ``MT3_NO_PREPACK=1`` turns it off, for
    measuring it; the policy is read here, never inside the engine."""
    return os.environ.get("MT3_NO_PREPACK") != "1"


def load_engine_model(path, device="auto", dtype="float32", num_threads=0):
    """Load an exported model file through the engine; returns
    ``(_core.EngineModel, meta dict)``.  Raises FrameworkError when the
    engine library is missing, CheckpointError for a bad file."""
    from . import _core

    lib = prepare_engine()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"exported model not found: {path!r}")
    if not isinstance(device, str):
        device = str(device)
    if num_threads is None:
        num_threads = 0
    model = _core.EngineModel(lib, path, device=device, dtype=dtype, num_threads=int(num_threads),
                              prepack=prepack_enabled())
    return model, json.loads(model.meta_json)
