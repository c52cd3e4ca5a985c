"""Locate the libtorch engine library (built beside this package by setup.py)."""
import glob
import os

_HERE = os.path.dirname(os.path.abspath(__file__))


def engine_library_path():
    """Path of libmt3_torch*.so, or None when the package was built without torch."""
    override = os.environ.get("MT3_ENGINE_LIBRARY")
    if override:
        return override
    hits = sorted(glob.glob(os.path.join(_HERE, "libmt3_torch*.so")))
    return hits[0] if hits else None
