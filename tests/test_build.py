import importlib
import subprocess
import sys

import mt3_infer


def test_core_imports_without_torch():
    # A fresh interpreter: importing the package must not import torch.
    code = "import sys, mt3_infer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_core_extension_loaded():
    core = importlib.import_module("mt3_infer._core")
    assert core.ENGINE_ABI_VERSION == 1
    assert mt3_infer.__version__


def test_exception_hierarchy():
    from mt3_infer import exceptions as e

    assert issubclass(e.AudioError, ValueError)
    assert issubclass(e.AudioError, e.MT3InferError)
    assert issubclass(e.InferenceError, RuntimeError)
    assert issubclass(e.CheckpointDownloadError, e.CheckpointError)
