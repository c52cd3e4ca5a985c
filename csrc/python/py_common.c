#include "python/py_common.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- module state (see py_common.h) ------------------------------------ */

static const char *const k_exc_names[MT3PY_N_EXC] = {
    [MT3PY_AUDIO_ERROR] = "AudioError",
    [MT3PY_CHECKPOINT_ERROR] = "CheckpointError",
    [MT3PY_FRAMEWORK_ERROR] = "FrameworkError",
    [MT3PY_INFERENCE_ERROR] = "InferenceError",
};

/* The note record: one definition, from which the dtype and the packing
 * offsets of mt3py_notes_array both follow. */
enum { NOTE_ONSET, NOTE_OFFSET, NOTE_PITCH, NOTE_VELOCITY, NOTE_PROGRAM, NOTE_IS_DRUM, NOTE_N_FIELDS };
static const struct {
    const char *name, *format;
    size_t size;
} k_note_fields[NOTE_N_FIELDS] = {
    [NOTE_ONSET] = {"onset", "<f8", 8},     [NOTE_OFFSET] = {"offset", "<f8", 8},
    [NOTE_PITCH] = {"pitch", "<i4", 4},     [NOTE_VELOCITY] = {"velocity", "<i4", 4},
    [NOTE_PROGRAM] = {"program", "<i4", 4}, [NOTE_IS_DRUM] = {"is_drum", "?", 1},
};

static struct {
    int ready;
    PyObject *exc[MT3PY_N_EXC];
    PyArray_Descr *note_descr;
    size_t note_offset[NOTE_N_FIELDS], note_size;
    unsigned long main_thread;
} g_state;

int mt3py_state_init(PyObject *module)
{
    if (g_state.ready)
        return 0;
    PyObject *mod = PyImport_ImportModule("mt3_infer.exceptions");
    if (!mod)
        return -1;
    for (int i = 0; i < MT3PY_N_EXC; i++) {
        g_state.exc[i] = PyObject_GetAttrString(mod, k_exc_names[i]);
        if (!g_state.exc[i]) {
            Py_DECREF(mod);
            return -1;
        }
    }
    Py_DECREF(mod);
    PyObject *spec = PyList_New(NOTE_N_FIELDS);
    if (!spec)
        return -1;
    size_t off = 0;
    for (int i = 0; i < NOTE_N_FIELDS; i++) {
        PyObject *f = Py_BuildValue("(ss)", k_note_fields[i].name, k_note_fields[i].format);
        if (!f) {
            Py_DECREF(spec);
            return -1;
        }
        PyList_SET_ITEM(spec, i, f);
        g_state.note_offset[i] = off;
        off += k_note_fields[i].size;
    }
    g_state.note_size = off;
    int ok = PyArray_DescrConverter(spec, &g_state.note_descr);
    Py_DECREF(spec);
    if (!ok)
        return -1;
    npy_intp one = 1;
    Py_INCREF(g_state.note_descr); /* stolen by the probe */
    PyObject *probe = PyArray_NewFromDescr(&PyArray_Type, g_state.note_descr, 1, &one, NULL, NULL, 0, NULL);
    if (!probe)
        return -1;
    const size_t itemsize = (size_t)PyArray_ITEMSIZE((PyArrayObject *)probe);
    Py_DECREF(probe);
    if (itemsize != g_state.note_size) {
        PyErr_SetString(PyExc_RuntimeError, "mt3_infer internal error: the note dtype is not packed");
        return -1;
    }
    Py_INCREF(g_state.note_descr);
    if (PyModule_AddObject(module, "NOTE_DTYPE", (PyObject *)g_state.note_descr) < 0) {
        Py_DECREF(g_state.note_descr);
        return -1;
    }
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *main = threading ? PyObject_CallMethod(threading, "main_thread", NULL) : NULL;
    PyObject *ident = main ? PyObject_GetAttrString(main, "ident") : NULL;
    g_state.main_thread = ident ? PyLong_AsUnsignedLong(ident) : 0;
    Py_XDECREF(ident);
    Py_XDECREF(main);
    Py_XDECREF(threading);
    if (PyErr_Occurred())
        return -1;
    g_state.ready = 1;
    return 0;
}

int mt3py_on_main_thread(void)
{
    return PyThread_get_thread_ident() == g_state.main_thread;
}

PyObject *mt3py_raise_exc(mt3py_exc which, const char *fmt, ...)
{
    char buf[MT3_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    PyErr_SetString(g_state.exc[which], buf);
    return NULL;
}

PyObject *mt3py_notes_array(const mt3_note *v, size_t n)
{
    npy_intp dims[1] = {(npy_intp)n};
    Py_INCREF(g_state.note_descr); /* PyArray_NewFromDescr steals it */
    PyArrayObject *a = (PyArrayObject *)PyArray_NewFromDescr(&PyArray_Type, g_state.note_descr, 1, dims, NULL,
                                                             NULL, 0, NULL);
    if (!a)
        return NULL;
    char *p = PyArray_BYTES(a);
    const size_t *o = g_state.note_offset;
    for (size_t i = 0; i < n; i++, p += g_state.note_size) {
        memcpy(p + o[NOTE_ONSET], &v[i].onset, 8);
        memcpy(p + o[NOTE_OFFSET], &v[i].offset, 8);
        memcpy(p + o[NOTE_PITCH], &v[i].pitch, 4);
        memcpy(p + o[NOTE_VELOCITY], &v[i].velocity, 4);
        memcpy(p + o[NOTE_PROGRAM], &v[i].program, 4);
        p[o[NOTE_IS_DRUM]] = (char)(v[i].is_drum ? 1 : 0);
    }
    return (PyObject *)a;
}

PyObject *mt3py_raise(const mt3_error *err)
{
    const char *msg = (err && err->msg[0]) ? err->msg : "unknown error";
    switch (err ? err->code : MT3_E_INTERNAL) {
    case MT3_E_VALUE:
        PyErr_SetString(PyExc_ValueError, msg);
        return NULL;
    case MT3_E_NOMEM:
        PyErr_SetString(PyExc_MemoryError, msg);
        return NULL;
    case MT3_E_IO:
        PyErr_SetString(PyExc_OSError, msg);
        return NULL;
    case MT3_E_CANCELLED:
        PyErr_SetString(PyExc_KeyboardInterrupt, msg);
        return NULL;
    case MT3_E_AUDIO:
        return mt3py_raise_exc(MT3PY_AUDIO_ERROR, "%s", msg);
    case MT3_E_CHECKPOINT:
        return mt3py_raise_exc(MT3PY_CHECKPOINT_ERROR, "%s", msg);
    case MT3_E_FRAMEWORK:
        return mt3py_raise_exc(MT3PY_FRAMEWORK_ERROR, "%s", msg);
    case MT3_E_INFERENCE:
        return mt3py_raise_exc(MT3PY_INFERENCE_ERROR, "%s", msg);
    default:
        PyErr_Format(PyExc_RuntimeError, "mt3_infer internal error: %s", msg);
        return NULL;
    }
}

int mt3py_parse_sr(PyObject *o, int *sr)
{
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyObject *r = PyObject_Repr(o);
        mt3py_raise_exc(MT3PY_AUDIO_ERROR,
                          "sr must be a positive int (the sample rate in Hz), got %s %s",
                          Py_TYPE(o)->tp_name, r ? PyUnicode_AsUTF8(r) : "?");
        Py_XDECREF(r);
        return -1;
    }
    PyObject *idx = PyNumber_Index(o);
    if (!idx)
        return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(idx, &overflow);
    Py_DECREF(idx);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow)
        v = overflow > 0 ? LLONG_MAX : LLONG_MIN;
    mt3_error err;
    mt3_error_clear(&err);
    if (mt3_audio_check_sr(v, &err) != MT3_OK) {
        mt3py_raise(&err);
        return -1;
    }
    *sr = (int)v;
    return 0;
}

/* Check the array and describe it as a view.  *keep receives a new reference
 * to the array the view points into (the input, or a native-byte-order copy). */
int mt3py_audio_view(PyObject *audio, mt3_audio_view *v, PyArrayObject **keep)
{
    if (!PyArray_Check(audio)) {
        mt3py_raise_exc(MT3PY_AUDIO_ERROR,
                          "audio must be a numpy.ndarray of shape (n_samples,) or (n_samples, "
                          "n_channels), got %s",
                          Py_TYPE(audio)->tp_name);
        return -1;
    }
    PyArrayObject *arr = (PyArrayObject *)audio;
    PyArray_Descr *d = PyArray_DESCR(arr);
    mt3_sample_type t;
    if (d->kind == 'f' && PyArray_ITEMSIZE(arr) == 4)
        t = MT3_SAMPLE_F32;
    else if (d->kind == 'f' && PyArray_ITEMSIZE(arr) == 8)
        t = MT3_SAMPLE_F64;
    else if (d->kind == 'i' && PyArray_ITEMSIZE(arr) == 2)
        t = MT3_SAMPLE_I16;
    else if (d->kind == 'i' && PyArray_ITEMSIZE(arr) == 4)
        t = MT3_SAMPLE_I32;
    else {
        PyObject *s = PyObject_Str((PyObject *)d);
        mt3py_raise_exc(MT3PY_AUDIO_ERROR,
                          "unsupported audio dtype %s; use float32, float64, int16 or int32 "
                          "(e.g. audio.astype(numpy.float32))",
                          s ? PyUnicode_AsUTF8(s) : "?");
        Py_XDECREF(s);
        return -1;
    }
    const int nd = PyArray_NDIM(arr);
    if (nd != 1 && nd != 2) {
        PyObject *shape = PyObject_GetAttrString(audio, "shape");
        PyObject *r = shape ? PyObject_Repr(shape) : NULL;
        mt3py_raise_exc(MT3PY_AUDIO_ERROR,
                          "audio must be 1-D (n_samples,) or 2-D (n_samples, n_channels), got a "
                          "%d-D array of shape %s",
                          nd, r ? PyUnicode_AsUTF8(r) : "?");
        Py_XDECREF(r);
        Py_XDECREF(shape);
        return -1;
    }
    if (PyArray_SIZE(arr) == 0) {
        PyObject *shape = PyObject_GetAttrString(audio, "shape");
        PyObject *r = shape ? PyObject_Repr(shape) : NULL;
        mt3py_raise_exc(MT3PY_AUDIO_ERROR, "audio is empty (shape %s); pass at least one sample",
                          r ? PyUnicode_AsUTF8(r) : "?");
        Py_XDECREF(r);
        Py_XDECREF(shape);
        return -1;
    }
    if (!PyArray_ISNOTSWAPPED(arr)) {
        PyArray_Descr *native = PyArray_DescrNewByteorder(d, NPY_NATIVE);
        if (!native)
            return -1;
        arr = (PyArrayObject *)PyArray_CastToType(arr, native, 0); /* steals native */
        if (!arr)
            return -1;
    } else {
        Py_INCREF(arr);
    }
    v->data = PyArray_DATA(arr);
    v->type = t;
    v->n_samples = (size_t)PyArray_DIM(arr, 0);
    v->n_channels = nd == 2 ? (size_t)PyArray_DIM(arr, 1) : 1;
    v->sample_stride = (ptrdiff_t)PyArray_STRIDE(arr, 0);
    v->channel_stride = nd == 2 ? (ptrdiff_t)PyArray_STRIDE(arr, 1) : 0;
    *keep = arr;
    return 0;
}

#define BUFFER_CAPSULE "mt3_infer._core.buffer"

static void free_buffer_capsule(PyObject *cap)
{
    free(PyCapsule_GetPointer(cap, BUFFER_CAPSULE));
}

/* A float32 ndarray that owns `data` (malloc'ed); frees data on failure. */
PyObject *mt3py_wrap_floats(float *data, int nd, npy_intp *dims)
{
    if (!data) /* empty result */
        return PyArray_ZEROS(nd, dims, NPY_FLOAT32, 0);
    PyObject *arr = PyArray_SimpleNewFromData(nd, dims, NPY_FLOAT32, data);
    if (!arr) {
        free(data);
        return NULL;
    }
    PyObject *cap = PyCapsule_New(data, BUFFER_CAPSULE, free_buffer_capsule);
    if (!cap) {
        Py_DECREF(arr);
        free(data);
        return NULL;
    }
    /* steals cap, also on failure (then the capsule frees data) */
    if (PyArray_SetBaseObject((PyArrayObject *)arr, cap) < 0) {
        Py_DECREF(arr);
        return NULL;
    }
    return arr;
}

int mt3py_parse_resampler(PyObject *o, int have_default, mt3_resampler def, mt3_resampler *rs)
{
    if (o == NULL || o == Py_None) {
        if (!have_default) {
            PyErr_SetString(PyExc_ValueError, "resampler must be 'soxr_hq' or 'sinc'");
            return -1;
        }
        *rs = def;
        return 0;
    }
    const char *s = PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    if (s && strcmp(s, "soxr_hq") == 0)
        *rs = MT3_RESAMPLE_SOXR_HQ;
    else if (s && strcmp(s, "sinc") == 0)
        *rs = MT3_RESAMPLE_SINC;
    else {
        PyObject *r = PyObject_Repr(o);
        PyErr_Format(PyExc_ValueError,
                     "unknown resampler %s; valid: 'soxr_hq' (libsoxr HQ, librosa's default) "
                     "or 'sinc' (torchaudio windowed sinc)",
                     r ? PyUnicode_AsUTF8(r) : "?");
        Py_XDECREF(r);
        return -1;
    }
    return 0;
}
