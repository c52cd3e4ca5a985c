#include "python/py_common.h"

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
