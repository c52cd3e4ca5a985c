"""Locate the libtorch engine library (built beside this package by setup.py)
and load exported models through it.

Nothing here imports torch: the engine library is opened by the C core with
dlopen() the first time a model is loaded.
"""
import glob
import json
import os

from .exceptions import CheckpointError, FrameworkError

_HERE = os.path.dirname(os.path.abspath(__file__))


def engine_library_path():
    """Path of libmt3_torch*.so, or None when the package was built without torch."""
    override = os.environ.get("MT3_ENGINE_LIBRARY")
    if override:
        return override
    hits = sorted(glob.glob(os.path.join(_HERE, "libmt3_torch*.so")))
    return hits[0] if hits else None


def load_engine_model(path, device="auto", dtype="float32", num_threads=0):
    """Load an exported model file through the engine; returns
    ``(_core.EngineModel, meta dict)``.  Raises FrameworkError when the
    engine library is missing, CheckpointError for a bad file."""
    from . import _core

    lib = engine_library_path()
    if lib is None:
        raise FrameworkError(
            "the libtorch engine is not installed (mt3-infer was built without torch). "
            "Install torch==2.x, then reinstall mt3-infer with "
            "`pip install --no-build-isolation mt3-infer`."
        )
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"exported model not found: {path!r}")
    if not isinstance(device, str):
        device = str(device)
    if num_threads is None:
        num_threads = 0
    model = _core.EngineModel(lib, path, device=device, dtype=dtype, num_threads=int(num_threads))
    return model, json.loads(model.meta_json)
