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
    assert core.ENGINE_ABI_VERSION == 3  # csrc/engine/engine.h (3: step_top2)
    assert mt3_infer.__version__


def test_exception_hierarchy():
    from mt3_infer import exceptions as e

    assert issubclass(e.AudioError, ValueError)
    assert issubclass(e.AudioError, e.MT3InferError)
    assert issubclass(e.InferenceError, RuntimeError)
    assert issubclass(e.CheckpointDownloadError, e.CheckpointError)


def test_build_records_the_engine_torch_release():
    from mt3_infer import _engine

    info = _engine.built_torch()
    if _engine.engine_library_path() is None:
        return  # built without torch: nothing to record
    import importlib.util

    assert importlib.util.find_spec("torch") is not None
    import torch

    assert info["full_version"] == torch.__version__
    assert info["version"] == torch.__version__.split("+")[0]


def test_export_without_torch_names_the_pinned_release():
    # a fresh interpreter where `import torch` fails
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from mt3_infer import FrameworkError, _engine\n"
        "from mt3_infer.export.common import require_torch\n"
        "try:\n    require_torch()\nexcept FrameworkError as e:\n    print(e)\n"
        "print('HINT', _engine.torch_install_hint())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    from mt3_infer import _engine

    info = _engine.built_torch()
    assert "needs PyTorch" in out
    assert "pip install torch\n" not in out and not out.rstrip().endswith("pip install torch")
    if info is not None:
        cpu = "the CPU build" if not info["cuda"] else f"the CUDA {info['cuda']} build"
        assert f"pip install torch=={info['version']} ({cpu}" in out
        assert "https://" not in out
    else:
        assert "pip install torch==<version>" in out


def test_install_hint_without_a_build_record(tmp_path, monkeypatch):
    from mt3_infer import _engine

    monkeypatch.setattr(_engine, "_HERE", str(tmp_path))
    assert _engine.built_torch() is None
    assert "pip install torch==<version>" in _engine.torch_install_hint()
    (tmp_path / "_build_info.json").write_text('{"torch": {"version": "9.9.1", "cuda": "12.8"}}')
    assert _engine.torch_install_hint().startswith("pip install torch==9.9.1 (the CUDA 12.8 build")


# ---------------------------------------------------------------------------
# the engine binds to the torch of the running environment (issue: relocatable)
# ---------------------------------------------------------------------------

def _needs_engine():
    import pytest

    from mt3_infer import _engine

    if _engine.engine_library_path() is None:
        pytest.skip("built without the libtorch engine")
    return _engine


def test_engine_library_has_no_build_paths():
    import shutil

    import pytest

    _engine = _needs_engine()
    if shutil.which("readelf") is None:
        pytest.skip("readelf (binutils) not installed")
    dyn = subprocess.run(["readelf", "-d", _engine.engine_library_path()], capture_output=True,
                         text=True, check=True).stdout
    assert "RUNPATH" not in dyn and "RPATH" not in dyn, dyn
    needed = [line.split("[", 1)[1].rstrip("]") for line in dyn.splitlines() if "(NEEDED)" in line]
    assert "libtorch_cpu.so" in needed and all("/" not in n for n in needed), needed


def test_engine_loads_the_installed_torch_without_importing_it():
    # a fresh interpreter: the engine is prepared, torch's Python side stays
    # unimported, and the libtorch mapped is the one of the torch package found here
    _engine = _needs_engine()
    code2 = (
        "import sys\n"
        "from mt3_infer import _engine\n"
        "_engine.prepare_engine()\n"
        "maps = open('/proc/self/maps').read()\n"
        "print('torch' in sys.modules)\n"
        "print([l.split()[-1] for l in maps.splitlines() if l.endswith('libtorch_cpu.so')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, check=True)
    imported, mapped = out.stdout.split()
    assert imported == "False"
    version, lib_dir = _engine.installed_torch()
    assert mapped == f"{lib_dir}/libtorch_cpu.so"


def test_engine_refuses_another_torch_release(monkeypatch):
    import pytest

    from mt3_infer import FrameworkError

    _engine = _needs_engine()
    built = _engine.built_torch()["version"]
    monkeypatch.setattr(_engine, "_PREPARED", None)
    monkeypatch.setattr(_engine, "installed_torch", lambda: ("2.99.1+cpu", "/nowhere/torch/lib"))
    with pytest.raises(FrameworkError) as ei:
        _engine.prepare_engine()
    msg = str(ei.value)
    assert f"built against torch {built}" in msg and "has torch 2.99.1" in msg
    assert f"pip install torch=={built}" in msg
    monkeypatch.setattr(_engine, "installed_torch", lambda: None)
    with pytest.raises(FrameworkError, match=f"not installed.*pip install torch=={built}"):
        _engine.prepare_engine()
    assert _engine._release("2.13.1+cu121") == _engine._release("2.13.0") == (2, 13)


def test_source_build_without_numpy_or_new_setuptools_says_what_to_install():
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for patch, want in (("sys.modules['numpy'] = None", "needs numpy"),
                        ("import setuptools; setuptools.__version__ = '65.5.0'", "has 65.5.0")):
        code = f"import sys; {patch}; sys.argv = ['setup.py', '--name']; exec(open('setup.py').read())"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
        assert out.returncode != 0
        assert want in out.stderr and "pip install 'setuptools>=77' wheel numpy" in out.stderr, out.stderr
