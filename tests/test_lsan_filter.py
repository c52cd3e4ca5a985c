"""tools/asan/leaks.py, the filter `make asan` applies to LeakSanitizer's
reports: a leak allocated by the C core fails the run; CPython's, numpy's
and OpenSSL's interpreter-lifetime allocations do not."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "asan"))

import leaks  # noqa: E402

REPORT = """=================================================================
==1==ERROR: LeakSanitizer: detected memory leaks

Direct leak of 4096 byte(s) in 1 object(s) allocated from:
    #0 0x7f00 in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x7f01 in _PyObject_Malloc Objects/obmalloc.c:1996
    #2 0x7f02 in PyUnicode_New (/usr/lib/libpython3.11.so.1.0+0x1234)

Direct leak of 232 byte(s) in 1 object(s) allocated from:
    #0 0x7f00 in __interceptor_calloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:77
    #1 0x7f10 in mt3_notes_reserve /work/main/csrc/core/notes.c:120
    #2 0x7f11 in mt3_decode_tokens /work/main/csrc/core/notes.c:900
    #3 0x7f12 in py_decode (/work/main/build/asan/mt3_infer/_core.cpython-311-x86_64-linux-gnu.so+0x99)
    #4 0x7f13 in _PyEval_EvalFrameDefault (/usr/lib/libpython3.11.so.1.0+0x5678)

Indirect leak of 16 byte(s) in 1 object(s) allocated from:
    #0 0x7f00 in __interceptor_malloc ../../../../src/libsanitizer/asan/asan_malloc_linux.cpp:69
    #1 0x7f20 in CRYPTO_zalloc (/lib/x86_64-linux-gnu/libcrypto.so.3+0x23e844)

SUMMARY: AddressSanitizer: 4344 byte(s) leaked in 3 allocation(s).
"""


def test_a_leak_of_the_c_core_fails_and_the_interpreters_do_not(tmp_path, capsys):
    rep = tmp_path / "report.1"
    rep.write_text(REPORT)
    assert leaks.main([str(rep)]) == 1
    out = capsys.readouterr().out
    assert "3 leak records" in out and "1 from the C core" in out and "mt3_notes_reserve" in out
    clean = tmp_path / "report.2"
    clean.write_text(REPORT.replace("/work/main/csrc/core/notes.c", "Objects/listobject.c")
                     .replace("/work/main/build/asan/mt3_infer/_core.cpython-311-x86_64-linux-gnu.so",
                              "/usr/lib/libpython3.11.so.1.0"))
    assert leaks.main([str(clean)]) == 0
    assert "0 from the C core" in capsys.readouterr().out


def test_only_the_allocating_frames_decide(tmp_path):
    # the C core far down the stack (it called back into Python, which allocated) is not our leak
    deep = """Direct leak of 8 byte(s) in 1 object(s) allocated from:
    #0 0x1 in __interceptor_malloc x.cpp:1
    #1 0x2 in _PyObject_Malloc Objects/obmalloc.c:1996
    #2 0x3 in PyList_New Objects/listobject.c:1
    #3 0x4 in PyObject_Call Objects/call.c:1
    #4 0x5 in call_progress /work/main/csrc/python/py_adapters.c:500

"""
    rep = tmp_path / "report.3"
    rep.write_text(deep)
    assert leaks.main([str(rep)]) == 0
