/* The engine model type and (later) the adapter types.
 *
 * _core.EngineModel(engine_path, model_path, device="auto", dtype="float32",
 *                   num_threads=0)
 *     An exported network loaded through the libtorch engine (GIL released
 *     while loading).  Immutable; any number of threads may call decode()
 *     at once (each call owns its own engine session).
 *   .meta_json, .device                       (str)
 *   .decode(features, batch_size=0, max_new_tokens=0, num_threads=0)
 *     features: float32 [segments, frames, feature_bins] (C-contiguous copy
 *     made when needed).  Returns int64 [segments, channels, length] of
 *     generated ids (start token excluded, PAD after EOS).  GIL released.
 *   .last_stats -> (steps, row_steps) of this thread's latest decode? no:
 *     decode_stats(...) returns (ids, steps, row_steps).
 *
 * _core.parse_model_meta(text) -> dict   (the C reader of mt3_infer.json)
 */
#include "python/py_common.h"

#include <string.h>

#include "core/decode.h"
#include "core/engine_loader.h"

/* ---------------------------------------------------------------------------
 * EngineModel
 * ------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    mt3_model *model;
} EngineModelObject;

static int dtype_code(const char *s, int *out)
{
    if (!s || !strcmp(s, "float32") || !strcmp(s, "fp32"))
        *out = MT3_DTYPE_FLOAT32;
    else if (!strcmp(s, "float16") || !strcmp(s, "fp16") || !strcmp(s, "half"))
        *out = MT3_DTYPE_FLOAT16;
    else if (!strcmp(s, "bfloat16") || !strcmp(s, "bf16"))
        *out = MT3_DTYPE_BFLOAT16;
    else
        return -1;
    return 0;
}

static int EngineModel_init(EngineModelObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"engine_path", "model_path", "device", "dtype", "num_threads", NULL};
    PyObject *engine_obj = Py_None, *model_obj = NULL;
    const char *device = "auto", *dtype = "float32";
    int num_threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&|ssi", kwlist, &engine_obj, PyUnicode_FSConverter,
                                     &model_obj, &device, &dtype, &num_threads))
        return -1;
    PyObject *engine_bytes = NULL;
    if (engine_obj != Py_None && !PyUnicode_FSConverter(engine_obj, &engine_bytes)) {
        Py_DECREF(model_obj);
        return -1;
    }
    int code;
    if (dtype_code(dtype, &code) < 0) {
        Py_DECREF(model_obj);
        Py_XDECREF(engine_bytes);
        PyErr_Format(PyExc_ValueError, "dtype must be 'float32', 'float16' or 'bfloat16', got '%s'", dtype);
        return -1;
    }
    if (self->model) { /* re-init: drop the old model */
        mt3_model_free(self->model);
        self->model = NULL;
    }
    mt3_engine_load_opts opts = {device, code, num_threads};
    const char *epath = engine_bytes ? PyBytes_AS_STRING(engine_bytes) : NULL;
    const char *mpath = PyBytes_AS_STRING(model_obj);
    mt3_error err;
    mt3_error_clear(&err);
    mt3_model *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mt3_model_load(epath, mpath, &opts, &m, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(model_obj);
    Py_XDECREF(engine_bytes);
    if (rc) {
        mt3py_raise(&err);
        return -1;
    }
    self->model = m;
    return 0;
}

static void EngineModel_dealloc(EngineModelObject *self)
{
    mt3_model_free(self->model);
    self->model = NULL;
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_loaded(EngineModelObject *self)
{
    if (!self->model) {
        PyErr_SetString(PyExc_RuntimeError, "EngineModel is not loaded");
        return -1;
    }
    return 0;
}

static PyObject *EngineModel_get_meta_json(EngineModelObject *self, void *closure)
{
    (void)closure;
    if (check_loaded(self) < 0)
        return NULL;
    return PyUnicode_FromString(self->model->api->model_meta_json(self->model->handle));
}

static PyObject *EngineModel_get_device(EngineModelObject *self, void *closure)
{
    (void)closure;
    if (check_loaded(self) < 0)
        return NULL;
    const char *d = self->model->api->model_device ? self->model->api->model_device(self->model->handle) : "";
    return PyUnicode_FromString(d ? d : "");
}

/* Shared by the adapters: run the decode loop on a float32 feature block.
 * Returns a new int64 array [S, C, L] (and the step counters). */
PyObject *mt3py_engine_decode(const mt3_model *model, PyObject *features, int batch_size,
                              int max_new_tokens, int num_threads, int64_t *steps, int64_t *row_steps);

PyObject *mt3py_engine_decode(const mt3_model *model, PyObject *features, int batch_size,
                              int max_new_tokens, int num_threads, int64_t *steps, int64_t *row_steps)
{
    PyArrayObject *arr = (PyArrayObject *)PyArray_FROM_OTF(features, NPY_FLOAT32,
                                                           NPY_ARRAY_IN_ARRAY | NPY_ARRAY_FORCECAST);
    if (!arr)
        return NULL;
    if (PyArray_NDIM(arr) != 3) {
        Py_DECREF(arr);
        return PyErr_Format(PyExc_ValueError, "features must be 3-D [segments, frames, bins], got %d-D",
                            PyArray_NDIM(arr));
    }
    npy_intp *dims = PyArray_DIMS(arr);
    if (dims[2] != model->meta.feature_bins) {
        Py_DECREF(arr);
        return PyErr_Format(PyExc_ValueError, "features have %zd bins per frame; this model needs %d",
                            (Py_ssize_t)dims[2], model->meta.feature_bins);
    }
    if (dims[0] > INT32_MAX || dims[1] > INT32_MAX) {
        Py_DECREF(arr);
        return PyErr_Format(PyExc_ValueError, "features too large");
    }
    mt3_decode_opts opts = {batch_size, max_new_tokens, num_threads, NULL};
    mt3_tokens toks;
    memset(&toks, 0, sizeof toks);
    mt3_error err;
    mt3_error_clear(&err);
    int rc;
    const float *data = (const float *)PyArray_DATA(arr);
    int S = (int)dims[0], T = (int)dims[1];
    Py_BEGIN_ALLOW_THREADS
    rc = mt3_decode_greedy(model, data, S, T, &opts, &toks, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(arr);
    if (rc)
        return mt3py_raise(&err);
    npy_intp odims[3] = {toks.n_segments, toks.channels, toks.length};
    PyArrayObject *res = (PyArrayObject *)PyArray_SimpleNew(3, odims, NPY_INT64);
    if (!res) {
        mt3_tokens_free(&toks);
        return NULL;
    }
    size_t n = (size_t)toks.n_segments * (size_t)toks.channels * (size_t)toks.length;
    if (n)
        memcpy(PyArray_DATA(res), toks.ids, n * sizeof(int64_t));
    if (steps)
        *steps = toks.steps;
    if (row_steps)
        *row_steps = toks.row_steps;
    mt3_tokens_free(&toks);
    return (PyObject *)res;
}

static PyObject *EngineModel_decode(EngineModelObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"features", "batch_size", "max_new_tokens", "num_threads", "stats", NULL};
    PyObject *features;
    int batch_size = 0, max_new = 0, threads = 0, stats = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|iiip", kwlist, &features, &batch_size, &max_new,
                                     &threads, &stats))
        return NULL;
    if (check_loaded(self) < 0)
        return NULL;
    if (max_new < 0 || batch_size < 0) {
        PyErr_SetString(PyExc_ValueError, "batch_size and max_new_tokens must be >= 0 (0 = default)");
        return NULL;
    }
    int64_t steps = 0, row_steps = 0;
    PyObject *ids = mt3py_engine_decode(self->model, features, batch_size, max_new, threads, &steps, &row_steps);
    if (!ids || !stats)
        return ids;
    return Py_BuildValue("NLL", ids, (long long)steps, (long long)row_steps);
}

static PyGetSetDef EngineModel_getset[] = {
    {"meta_json", (getter)EngineModel_get_meta_json, NULL, "the artifact's mt3_infer.json text", NULL},
    {"device", (getter)EngineModel_get_device, NULL, "the resolved device", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef EngineModel_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))EngineModel_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(features, batch_size=0, max_new_tokens=0, num_threads=0, stats=False)\n"
     "Greedy-decode float32 features [segments, frames, bins] -> int64 ids\n"
     "[segments, channels, length] (with stats: (ids, steps, row_steps))."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineModelType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mt3_infer._core.EngineModel",
    .tp_basicsize = sizeof(EngineModelObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "EngineModel(engine_path, model_path, device='auto', dtype='float32', num_threads=0)\n"
              "An exported MT3-family network loaded through the libtorch engine.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)EngineModel_init,
    .tp_dealloc = (destructor)EngineModel_dealloc,
    .tp_methods = EngineModel_methods,
    .tp_getset = EngineModel_getset,
};

/* ---------------------------------------------------------------------------
 * parse_model_meta
 * ------------------------------------------------------------------------- */

static PyObject *py_parse_model_meta(PyObject *mod, PyObject *arg)
{
    (void)mod;
    const char *buf;
    Py_ssize_t len;
    PyObject *bytes = NULL;
    if (PyUnicode_Check(arg)) {
        bytes = PyUnicode_AsUTF8String(arg);
        if (!bytes)
            return NULL;
        buf = PyBytes_AS_STRING(bytes);
        len = PyBytes_GET_SIZE(bytes);
    } else if (PyBytes_Check(arg)) {
        buf = PyBytes_AS_STRING(arg);
        len = PyBytes_GET_SIZE(arg);
    } else {
        return PyErr_Format(PyExc_TypeError, "parse_model_meta expects str or bytes");
    }
    mt3_model_meta m;
    mt3_error err;
    mt3_error_clear(&err);
    int rc = mt3_meta_parse(buf, (size_t)len, &m, &err);
    Py_XDECREF(bytes);
    if (rc)
        return mt3py_raise(&err);
    return Py_BuildValue(
        "{s:i,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:O,s:s,s:s}",
        "format_version", m.format_version, "family", m.family, "frames", m.frames, "min_frames",
        m.min_frames, "feature_bins", m.feature_bins, "channels", m.channels, "n_layers", m.n_layers,
        "n_heads", m.n_heads, "d_kv", m.d_kv, "memory_len", m.memory_len, "max_len", m.max_len,
        "vocab_size", m.vocab_size, "start_id", m.start_id, "eos_id", m.eos_id, "pad_id", m.pad_id,
        "max_new_tokens", m.max_new_tokens, "check_first_eos", m.check_first_eos ? Py_True : Py_False,
        "source_sha256", m.source_sha256, "exporter_version", m.exporter_version);
}

static PyMethodDef adapter_functions[] = {
    {"parse_model_meta", py_parse_model_meta, METH_O,
     "parse_model_meta(text) -> dict: the C reader of an exported model's mt3_infer.json"},
    {NULL, NULL, 0, NULL},
};

int mt3py_register_adapters(PyObject *m)
{
    if (PyType_Ready(&EngineModelType) < 0)
        return -1;
    Py_INCREF(&EngineModelType);
    if (PyModule_AddObject(m, "EngineModel", (PyObject *)&EngineModelType) < 0) {
        Py_DECREF(&EngineModelType);
        return -1;
    }
    if (PyModule_AddFunctions(m, adapter_functions) < 0)
        return -1;
    return 0;
}
