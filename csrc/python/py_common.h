/* Shared helpers for the CPython layer (the only folder that includes Python.h). */
#ifndef MT3_PY_COMMON_H
#define MT3_PY_COMMON_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#define PY_ARRAY_UNIQUE_SYMBOL mt3_ARRAY_API
#ifndef MT3_PY_MODULE_C
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include "core/audio.h"
#include "core/mt3_error.h"
#include "core/notes.h"

/* The package's own exception classes (mt3_infer.exceptions) the module raises. */
typedef enum mt3py_exc {
    MT3PY_AUDIO_ERROR = 0,
    MT3PY_CHECKPOINT_ERROR,
    MT3PY_FRAMEWORK_ERROR,
    MT3PY_INFERENCE_ERROR,
    MT3PY_N_EXC
} mt3py_exc;

/* The module's state, made once when mt3_infer._core is imported (module
 * init runs once per process under the GIL: single-phase init) and only read
 * afterwards: the exception classes, the note dtype (also exported as
 * _core.NOTE_DTYPE, which mt3_infer.codec.NOTE_DTYPE is) and
 * threading.main_thread's ident.  0, or -1 with an exception set. */
int mt3py_state_init(PyObject *module);

/* Raise the Python exception matching err->code (classes from
 * mt3_infer.exceptions) with err->msg; always returns NULL.  Call with the
 * GIL held. */
PyObject *mt3py_raise(const mt3_error *err);

/* Raise one of the package's exceptions with a formatted message; returns NULL. */
PyObject *mt3py_raise_exc(mt3py_exc which, const char *fmt, ...);

/* Notes -> a new structured array of the note dtype (onset, offset: <f8;
 * pitch, velocity, program: <i4; is_drum: ?), in the given order: the one
 * converter of the module. */
PyObject *mt3py_notes_array(const mt3_note *notes, size_t n);

/* Parse a resampler name ('soxr_hq' | 'sinc'); NULL/None gives `def` when
 * have_default, else ValueError.  The one resampler parser of the module. */
int mt3py_parse_resampler(PyObject *o, int have_default, mt3_resampler def, mt3_resampler *rs);

/* A float32 ndarray of shape dims that owns `data` (malloc'ed; NULL: an
 * empty array); frees data on failure. */
PyObject *mt3py_wrap_floats(float *data, int nd, npy_intp *dims);

/* Whether the calling thread is Python's main thread (signal handlers run there). */
int mt3py_on_main_thread(void);

/* Check a NumPy audio array ((n,) or (n, channels); float32/float64/int16/
 * int32; non-empty) and describe it as an mt3_audio_view without copying
 * (unless its byte order is foreign).  *keep receives a new reference to the
 * array the view points into; release it after the native work.  Raises
 * AudioError naming the problem and returns -1 on bad input. */
int mt3py_audio_view(PyObject *audio, mt3_audio_view *v, PyArrayObject **keep);

/* Parse a sample rate: a Python int or NumPy integer (bool and float
 * refused) within MT3_AUDIO_MIN_SR..MT3_AUDIO_MAX_SR (mt3_audio_check_sr;
 * huge values are reported as too large, not as OverflowError).  Raises
 * AudioError and returns -1 otherwise.  The one sr parser of the module. */
int mt3py_parse_sr(PyObject *o, int *sr);

/* The canonical name of a decoding scheme (_core.SCHEMES; "mt3_pytorch",
 * "magenta", ...), or NULL for an unknown value: the one scheme name table
 * of the module lives in py_codec.c. */
const char *mt3py_scheme_name(mt3_scheme s);

/* Registration hooks, one per area (each defined in its own file). */
int mt3py_register_features(PyObject *m);
int mt3py_register_codec(PyObject *m);
int mt3py_register_adapters(PyObject *m);
int mt3py_register_io(PyObject *m);

#endif
