"""pytest plugin loaded into the anchor-suite run (``-p anchor_suite_plugin``).

* registers the ``network`` marker of 0.2.0's pyproject;
* lets test files that import private modules of 0.2.0 which this package
  does not have (its vendored YourMT3 model code) still be collected: such a
  module is a placeholder whose every attribute raises
  :class:`AnchorPrivateName` when used, so each test that touches it fails
  with that name and the runner classes it "private internals", while the
  other tests of the file run against the real package;
* writes every test's outcome to ``$ANCHOR_SUITE_RESULTS`` (JSON lines).
"""
import importlib.abc
import importlib.machinery
import json
import os
import sys
import types

# Module prefixes of 0.2.0 that are private and absent here (see run.py).
PRIVATE_PREFIXES = ("mt3_infer.models.yourmt3",)


class AnchorPrivateName(Exception):
    """A test used a private internal of mt3-infer 0.2.0 that this package does not have."""


class _Placeholder:
    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def _refuse(self, *args, **kwargs):
        raise AnchorPrivateName(f"{self._name} is a private internal of mt3-infer 0.2.0 "
                                "that this package does not have")

    __call__ = _refuse
    __enter__ = _refuse
    __iter__ = _refuse

    def __getattr__(self, attr):
        return _Placeholder(f"{self._name}.{attr}")

    def __mro_entries__(self, bases):  # class X(<placeholder>): ... -> fails when used
        self._refuse()


class _PrivateModule(types.ModuleType):
    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Placeholder(f"{self.__name__}.{attr}")


class _PrivateFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: answers only for PRIVATE_PREFIXES modules that
    no real finder found."""

    def find_spec(self, fullname, path=None, target=None):
        if any(fullname == p or fullname.startswith(p + ".") for p in PRIVATE_PREFIXES):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None  # everything else (the real package included) is left to the real finders

    def create_module(self, spec):
        mod = _PrivateModule(spec.name)
        mod.__path__ = []
        return mod

    def exec_module(self, module):
        pass


def pytest_configure(config):
    config.addinivalue_line("markers", "network: needs network access (0.2.0's marker)")
    sys.meta_path.append(_PrivateFinder())


_RESULTS = {}
_DESELECTED = []


def _record(nodeid, outcome, when, text):
    old = _RESULTS.get(nodeid)
    if old is not None and old["outcome"] == "failed":
        return  # keep the first failure (call before teardown)
    _RESULTS[nodeid] = {"nodeid": nodeid, "outcome": outcome, "when": when, "text": text}


def pytest_runtest_logreport(report):
    text = str(report.longrepr) if report.longrepr is not None else ""
    if report.failed:
        _record(report.nodeid, "failed", report.when, text)
    elif report.skipped:
        _record(report.nodeid, "skipped", report.when, text)
    elif report.when == "call":
        _record(report.nodeid, "passed", report.when, "")


def pytest_deselected(items):
    for item in items:
        _DESELECTED.append(item.nodeid)


def pytest_collectreport(report):
    if report.failed:
        _record(report.nodeid, "error", "collect", str(report.longrepr))


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("ANCHOR_SUITE_RESULTS")
    if path:
        mod = sys.modules.get("mt3_infer")
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps({"package": getattr(mod, "__file__", None),
                                "version": getattr(mod, "__version__", None),
                                "deselected": list(_DESELECTED)}) + "\n")
            for r in _RESULTS.values():
                f.write(json.dumps(r) + "\n")
