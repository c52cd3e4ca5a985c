"""Coverage-guided fuzzing (atheris) of the Python parsers of outside bytes.

    .venv/bin/python tools/fuzz/fuzz_py.py TARGET [libFuzzer flags...] [CORPUS...]

Targets:
  unpickler  the restricted unpickler that reads YourMT3 checkpoints
             (export.yourmt3._RestrictedUnpickler) on arbitrary pickle bytes.
             Property: whatever the bytes, no global outside its allow-list
             is ever called -- a canary module whose functions set a flag is
             importable, and the seeds reference it; the flag must stay down.
             Any exception is fine (a refusal), a call is not.
  download   the strings a user or a server controls on the download path:
             model names (registry.resolve_model_name: a registry id or
             ModelNotFoundError, never a path), the mirror variable
             (registry.file_url: the URL stays under the mirror, the file
             name is the registry's) and the server's Content-Range header
             (download._content_range_start: None or an int >= 0).

`make fuzz` runs both after the C targets, from tests/fuzz/corpus/py_<target>.
"""
import os
import pickle
import sys
import types

import atheris

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

CALLED = []


def _install_canary():
    mod = types.ModuleType("mt3_canary")

    def boom(*a, **k):
        CALLED.append(a)
        return 0

    boom.__module__, boom.__qualname__ = "mt3_canary", "boom"
    mod.boom = boom
    mod.Boom = type("Boom", (), {"__reduce__": lambda self: (boom, ()), "__module__": "mt3_canary"})
    sys.modules["mt3_canary"] = mod
    return mod


def seeds_unpickler():
    """Pickles that would call the canary (or os.system) if allowed, and benign ones."""
    canary = _install_canary()
    out = [pickle.dumps(canary.boom), pickle.dumps({"a": [1, 2.5, "x"], "b": (None, True)}),
           b"cos\nsystem\n(S'true'\ntR.", b"cmt3_canary\nboom\n(tR.",
           b"\x80\x04\x95\x1c\x00\x00\x00\x00\x00\x00\x00\x8c\nmt3_canary\x94\x8c\x04boom\x94\x93\x94)R\x94."]
    for proto in range(0, pickle.HIGHEST_PROTOCOL + 1):
        out.append(pickle.dumps(canary.Boom(), protocol=proto))
        out.append(pickle.dumps({"state_dict": {"w": [0.0] * 3}, "hyper_parameters": {"x": 1}}, protocol=proto))
    return out


def target_unpickler():
    import io

    import torch  # noqa: F401  (imported first: only the package is instrumented)

    with atheris.instrument_imports(include=["mt3_infer"]):
        from mt3_infer.export import yourmt3 as Y
    _install_canary()

    def one(data):
        try:
            Y._RestrictedUnpickler(io.BytesIO(data)).load()
        except Exception:  # any refusal is fine (RecursionError included)
            pass
        if CALLED:
            raise AssertionError(f"the restricted unpickler called a global: {CALLED!r} on {data!r}")

    return one


def target_download():
    with atheris.instrument_imports(include=["mt3_infer"]):
        from mt3_infer import download, registry
        from mt3_infer.exceptions import ModelNotFoundError
    ids = set(registry.model_ids())

    def one(data):
        fdp = atheris.FuzzedDataProvider(data)
        name = fdp.ConsumeUnicodeNoSurrogates(40)
        try:
            mid = registry.resolve_model_name(name)
            assert mid in ids, (name, mid)
        except ModelNotFoundError:
            pass
        header = fdp.ConsumeUnicodeNoSurrogates(40)
        start = download._content_range_start(header)
        assert start is None or (isinstance(start, int) and start >= 0), (header, start)
        mirror = "https://m.example/" + fdp.ConsumeUnicodeNoSurrogates(30).replace("\0", "")  # (no NUL in env)
        os.environ[registry.MIRROR_ENV] = mirror
        try:
            for mid in sorted(ids):
                for spec in registry.files_for(mid):
                    url = registry.file_url(mid, spec)
                    if url is not None:
                        assert url.startswith(mirror.rstrip("/") + "/"), (mirror, url)
                        assert url.endswith("/" + mid + "/" + spec["name"]), url
        finally:
            del os.environ[registry.MIRROR_ENV]

    return one


def seeds_download():
    return [b"mt3_pytorch\x00bytes 100-199/200", b"..%2F..%2Fetc\x00bytes -5-7/9", b"offline\x00bytes 0-0/1",
            b"/etc/passwd\x00bytes x", b"MultiTask \x00"]


TARGETS = {"unpickler": (target_unpickler, seeds_unpickler), "download": (target_download, seeds_download)}


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: fuzz_py.py {{{','.join(TARGETS)}}} [libFuzzer flags] [corpus dirs]")
    name = sys.argv.pop(1)
    if "--write-seeds" in sys.argv:
        d = os.path.join(ROOT, "tests", "fuzz", "corpus", f"py_{name}")
        os.makedirs(d, exist_ok=True)
        for i, s in enumerate(TARGETS[name][1]()):
            with open(os.path.join(d, f"seed{i:02d}"), "wb") as fh:
                fh.write(s)
        return
    one = TARGETS[name][0]()
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
