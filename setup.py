"""Build mt3_infer._core (C11) and, when torch is importable, the libtorch engine.

Install with ``pip install --no-build-isolation .`` (or ``-e .``): the engine is
compiled against the libtorch inside the *installed* torch package, which an
isolated build environment would not have.

The build records the torch release the engine was compiled against in
``mt3_infer/_build_info.json`` (beside ``_core``), so messages can name the
exact ``pip install torch==<version>`` to use (``mt3_infer._engine.torch_install_hint``).

Environment knobs:
  MT3_SANITIZE=1   build _core with -fsanitize=address,undefined (see `make asan`)
  MT3_NO_ENGINE=1  skip the libtorch engine even if torch is importable
"""
import glob
import os
import shlex
import subprocess
import sys

def _require_build_tools():
    """A clear message instead of a raw ImportError or pyproject ValueError when
    a --no-build-isolation build lacks its build requirements."""
    fix = ("pip install 'setuptools>=77' wheel numpy, then pip install --no-build-isolation . "
           "(or let pip isolate the build: pip install .)")
    try:
        import setuptools
    except ImportError:
        sys.exit(f"building mt3-infer needs setuptools>=77: {fix}")
    try:
        major = int(setuptools.__version__.split(".")[0])
    except ValueError:
        major = 0
    if major < 77:
        sys.exit(f"building mt3-infer needs setuptools>=77 (this environment has "
                 f"{setuptools.__version__}, which cannot read its pyproject.toml license): {fix}")
    try:
        import numpy  # noqa: F401
    except ImportError:
        sys.exit(f"building mt3-infer needs numpy (its C extension compiles against numpy's headers): {fix}")


_require_build_tools()

from setuptools import Extension, setup  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
os.chdir(HERE)

APT_HINT = {
    "kissfft-float": "libkissfft-dev",
    "soxr": "libsoxr-dev",
}


def pkg_config(name):
    try:
        cflags = subprocess.check_output(["pkg-config", "--cflags", name], text=True)
        libs = subprocess.check_output(["pkg-config", "--libs", name], text=True)
    except (OSError, subprocess.CalledProcessError):
        sys.exit(
            f"error: pkg-config could not find '{name}'. "
            f"Install it with: apt-get install {APT_HINT.get(name, name)} pkg-config"
        )
    return shlex.split(cflags), shlex.split(libs)


def prefix_maps(*roots):
    """-ffile-prefix-map flags: no path of the build machine (the checkout, the
    venv's numpy/torch headers, the Python prefix) ends up in __FILE__ strings
    or debug info of the binaries."""
    import sysconfig

    dirs = {os.path.abspath("."): ".", sys.prefix: "python", sys.base_prefix: "python",
            sysconfig.get_paths()["include"]: "python/include"}
    for root, name in roots:
        dirs[os.path.abspath(root)] = name
    # GCC uses the last matching map: longest last, so a venv inside the
    # checkout maps to its own name
    return [f"-ffile-prefix-map={d}={n}" for d, n in sorted(dirs.items(), key=lambda kv: len(kv[0]))]


def core_extension():
    import numpy as np

    cflags, libs = [], []
    for name in ("kissfft-float", "soxr"):
        c, lib = pkg_config(name)
        cflags += c
        libs += lib
    compile_args = (["-std=c11", "-Wall", "-Wextra", "-fvisibility=hidden"] + cflags
                    + prefix_maps((os.path.dirname(np.__file__), "numpy")))
    link_args = libs + ["-lm", "-ldl", "-pthread"]
    if os.environ.get("MT3_SANITIZE"):
        san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g", "-O1"]
        compile_args += san
        link_args += san
    else:
        compile_args += ["-O3"]
    sources = sorted(glob.glob("csrc/core/*.c")) + sorted(glob.glob("csrc/python/*.c"))
    return Extension(
        "mt3_infer._core",
        sources=sources,
        include_dirs=["csrc", np.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", None)],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        depends=glob.glob("csrc/**/*.h", recursive=True),
    )


def engine_extension():
    """The libtorch engine: a plain shared library opened with dlopen at first use."""
    if os.environ.get("MT3_NO_ENGINE"):
        return None
    try:
        import torch
        from torch.utils import cpp_extension
    except Exception as exc:  # torch missing or broken: _core still builds
        print(f"mt3-infer: torch not importable ({exc}); building without the libtorch engine")
        return None
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    libraries = ["torch", "torch_cpu", "c10"]
    if glob.glob(os.path.join(torch_lib, "libtorch_cuda.so")):
        libraries += ["torch_cuda", "c10_cuda"]
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    return Extension(
        "mt3_infer.libmt3_torch",
        sources=["csrc/engine/engine_torch.cpp"],
        include_dirs=["csrc"] + cpp_extension.include_paths(),
        # No RUNPATH: the engine must bind to the torch of the environment it
        # runs in, not to this build's.  mt3_infer._engine.prepare_engine finds
        # the installed torch and loads its libraries (RTLD_GLOBAL) before the
        # engine is opened; a torch of another release is refused there.
        library_dirs=[torch_lib],
        libraries=libraries,
        define_macros=[("_GLIBCXX_USE_CXX11_ABI", str(abi))],
        # -fopenmp: at::parallel_for is a header template whose threads come from
        # an OpenMP pragma compiled here (mt3::attend_rows); the libgomp it binds
        # to at run time is the one already in the process (torch's, or the one
        # libsoxr brought: one soname, one copy)
        extra_compile_args=["-std=c++20", "-O2", "-Wall", "-Wextra", "-fvisibility=hidden",
                            "-Wno-unused-parameter", "-fopenmp"]
        + prefix_maps((os.path.dirname(torch.__file__), "torch")),
        # keep libtorch_cuda linked even though no symbol of it is referenced directly
        extra_link_args=["-Wl,--no-as-needed", "-fopenmp"],
        language="c++",
        depends=["csrc/engine/engine.h"],
    )


BUILD_INFO = "_build_info.json"


def engine_torch_version():
    """The torch release the engine is built against, or None (no engine)."""
    if os.environ.get("MT3_NO_ENGINE"):
        return None
    try:
        import torch
    except Exception:
        return None
    return {"version": torch.__version__.split("+", 1)[0], "full_version": torch.__version__,
            "cuda": torch.version.cuda}


def engine_build_key():
    """What the engine binary depends on: torch's version and location."""
    import torch

    return f"{torch.__version__} {os.path.dirname(torch.__file__)}"


class BuildExt(build_ext):
    def run(self):
        super().run()
        # the one record of the build's torch: next to _core, wherever it went
        import json

        pkg = os.path.dirname(self.get_ext_fullpath("mt3_infer._core"))
        info = engine_torch_version() if any(e.name.endswith("libmt3_torch") for e in self.extensions) else None
        if info is None:
            # built without torch: an engine left by an earlier build (another
            # environment's) must not ship
            for stale in glob.glob(os.path.join(pkg, "libmt3_torch*.so")):
                os.remove(stale)
        with open(os.path.join(pkg, BUILD_INFO), "w", encoding="utf-8") as f:
            json.dump({"torch": info}, f, indent=2)
            f.write("\n")

    def initialize_options(self):
        super().initialize_options()
        self.parallel = os.cpu_count() or 1

    def build_extension(self, ext):
        # setuptools hands C flags to the C++ compile too; strip C-only ones per extension.
        if ext.language == "c++":
            self.compiler.compiler_so = [a for a in self.compiler.compiler_so if a != "-Wstrict-prototypes"]
        if not ext.name.endswith("libmt3_torch"):
            super().build_extension(ext)
            return
        # a build tree from another torch (version or location) is never reused
        stamp = os.path.join(self.build_temp, "engine-torch.txt")
        key = engine_build_key()
        try:
            with open(stamp, encoding="utf-8") as f:
                stale = f.read() != key
        except OSError:
            stale = True
        force, self.force = self.force, self.force or stale
        try:
            super().build_extension(ext)
        finally:
            self.force = force
        os.makedirs(self.build_temp, exist_ok=True)
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(key)

    def get_export_symbols(self, ext):
        if ext.name.endswith("libmt3_torch"):
            return []  # not a Python module: no PyInit_ symbol
        return super().get_export_symbols(ext)


exts = [core_extension()]
eng = engine_extension()
if eng is not None:
    exts.append(eng)

setup(ext_modules=exts, cmdclass={"build_ext": BuildExt})
