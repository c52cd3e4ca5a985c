#include "python/py_common.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>

static PyObject *exception_class(const char *name)
{
    PyObject *mod = PyImport_ImportModule("mt3_infer.exceptions");
    if (!mod)
        return NULL;
    PyObject *cls = PyObject_GetAttrString(mod, name);
    Py_DECREF(mod);
    return cls;
}

PyObject *mt3py_raise_named(const char *name, const char *fmt, ...)
{
    char buf[MT3_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    PyObject *cls = exception_class(name);
    if (!cls)
        return NULL; /* import error already set */
    PyErr_SetString(cls, buf);
    Py_DECREF(cls);
    return NULL;
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
        return mt3py_raise_named("AudioError", "%s", msg);
    case MT3_E_CHECKPOINT:
        return mt3py_raise_named("CheckpointError", "%s", msg);
    case MT3_E_FRAMEWORK:
        return mt3py_raise_named("FrameworkError", "%s", msg);
    case MT3_E_INFERENCE:
        return mt3py_raise_named("InferenceError", "%s", msg);
    default:
        PyErr_Format(PyExc_RuntimeError, "mt3_infer internal error: %s", msg);
        return NULL;
    }
}

int mt3py_parse_sr(PyObject *o, int *sr)
{
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyObject *r = PyObject_Repr(o);
        mt3py_raise_named("AudioError",
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
        mt3py_raise_named("AudioError",
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
        mt3py_raise_named("AudioError",
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
        mt3py_raise_named("AudioError",
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
        mt3py_raise_named("AudioError", "audio is empty (shape %s); pass at least one sample",
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
