/* The engine model type and the adapter type.
 *
 * _core.EngineModel(engine_path, model_path, device="auto", dtype="float32",
 *                   num_threads=0, prepack=True)
 *     An exported network loaded through the libtorch engine (GIL released
 *     while loading).  Immutable; any number of threads may call decode()
 *     at once (each call owns its own engine session).
 *   .meta_json, .device                       (str)
 *   .decode(features, batch_size=0, max_new_tokens=0, num_threads=0)
 *     features: float32 [segments, frames, feature_bins] (C-contiguous copy
 *     made when needed).  Returns int64 [segments, channels, length] of
 *     generated ids (start token excluded, PAD after EOS).  GIL released.
 *     With stats=True: (ids, steps, row_steps).
 *
 * _core.AdapterCore(recipe)            recipe: "mr_mt3" | "mt3_pytorch" | "yourmt3" | "magenta_mt3" | "magenta_piano"
 *     The native half of MRMT3Adapter / MT3PyTorchAdapter / YourMT3Adapter
 *     (mt3_infer.adapters subclasses it together with MT3Base).  Holds one loaded network,
 *     shared read-only by every call; each call owns its engine session.
 *   ._load_export(engine_path, path, device, dtype, num_threads, prepack) -> meta json
 *   ._run(audio, sr, midi=True, notes=False, ...) -> (bytes|None, notes|None, stats|None)
 *   ._unload(), ._loaded, ._recipe, ._scheme, ._recipe_preset, ._device
 *
 * _core.parse_model_meta(text) -> dict   (the C reader of mt3_infer.json)
 */
#include "python/py_common.h"

#include <string.h>

#include "core/decode.h"
#include "core/engine_loader.h"
#include "core/pipeline.h"

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
    else if (!strcmp(s, "int8") || !strcmp(s, "qint8"))
        *out = MT3_DTYPE_INT8;
    else
        return -1;
    return 0;
}

/* Parse (engine_path, model_path, device="auto", dtype="float32",
 * num_threads=0, prepack=True), load the exported model with the GIL released and, when
 * `recipe` is given, check that the network fits it.  0 and *out on success;
 * -1 with an exception set otherwise. */
static int load_model_from_args(PyObject *args, PyObject *kw, const mt3_recipe *recipe, mt3_model **out)
{
    static char *kwlist[] = {"engine_path", "model_path", "device", "dtype", "num_threads", "prepack", NULL};
    PyObject *engine_obj = Py_None, *model_obj = NULL;
    const char *device = "auto", *dtype = "float32";
    int num_threads = 0, prepack = 1;
    *out = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO&|ssip", kwlist, &engine_obj, PyUnicode_FSConverter,
                                     &model_obj, &device, &dtype, &num_threads, &prepack))
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
        PyErr_Format(PyExc_ValueError, "dtype must be 'float32', 'bfloat16', 'float16' or 'int8', got '%s'", dtype);
        return -1;
    }
    const mt3_engine_load_opts opts = {
        .device = device, .dtype = code, .num_threads = num_threads, .no_prepack = !prepack};
    const char *epath = engine_bytes ? PyBytes_AS_STRING(engine_bytes) : NULL;
    const char *mpath = PyBytes_AS_STRING(model_obj);
    mt3_error err;
    mt3_error_clear(&err);
    mt3_model *m = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mt3_model_load(epath, mpath, &opts, &m, &err);
    if (!rc && recipe) {
        rc = mt3_recipe_check_model(recipe, m, &err);
        if (rc) {
            mt3_model_free(m);
            m = NULL;
        }
    }
    Py_END_ALLOW_THREADS
    Py_DECREF(model_obj);
    Py_XDECREF(engine_bytes);
    if (rc) {
        mt3py_raise(&err);
        return -1;
    }
    *out = m;
    return 0;
}

static int EngineModel_init(EngineModelObject *self, PyObject *args, PyObject *kw)
{
    if (self->model) { /* decode() may be running on it in another thread */
        PyErr_SetString(PyExc_RuntimeError, "EngineModel is already loaded; create a new one");
        return -1;
    }
    mt3_model *m = NULL;
    if (load_model_from_args(args, kw, NULL, &m) < 0)
        return -1;
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
    return PyUnicode_FromString(self->model->meta_json);
}

static PyObject *EngineModel_get_device(EngineModelObject *self, void *closure)
{
    (void)closure;
    if (check_loaded(self) < 0)
        return NULL;
    return PyUnicode_FromString(self->model->device);
}

/* Shared by the adapters: run the decode loop on a float32 feature block.
 * Returns a new int64 array [S, C, L] (and the step counters). */
PyObject *mt3py_engine_decode(const mt3_model *model, PyObject *features, int batch_size,
                              int max_new_tokens, int num_threads, int drain_only, int rule,
                              int64_t *steps, int64_t *row_steps);

/* "greedy" / "beam1" -> MT3_DECODE_*; ValueError otherwise. */
static int decode_rule_from_name(const char *name, int *rule)
{
    if (!strcmp(name, "greedy"))
        *rule = MT3_DECODE_GREEDY;
    else if (!strcmp(name, "beam1"))
        *rule = MT3_DECODE_BEAM1;
    else {
        PyErr_Format(PyExc_ValueError,
                     "decoding must be 'beam1' (t5x beam search with one beam, Magenta's) or 'greedy', got '%s'",
                     name);
        return -1;
    }
    return 0;
}

PyObject *mt3py_engine_decode(const mt3_model *model, PyObject *features, int batch_size,
                              int max_new_tokens, int num_threads, int drain_only, int rule,
                              int64_t *steps, int64_t *row_steps)
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
    const mt3_decode_opts opts = {.batch_size = batch_size, .max_new_tokens = max_new_tokens,
                                  .num_threads = num_threads, .drain_only = drain_only, .rule = rule};
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
    static char *kwlist[] = {"features", "batch_size", "max_new_tokens", "num_threads", "stats", "drain_only",
                             "decoding", NULL};
    PyObject *features;
    int batch_size = 0, max_new = 0, threads = 0, stats = 0, drain_only = 0, rule = MT3_DECODE_GREEDY;
    const char *decoding = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|iiippz", kwlist, &features, &batch_size, &max_new,
                                     &threads, &stats, &drain_only, &decoding))
        return NULL;
    if (decoding && decode_rule_from_name(decoding, &rule) < 0)
        return NULL;
    if (check_loaded(self) < 0)
        return NULL;
    if (max_new < 0 || batch_size < 0) {
        PyErr_SetString(PyExc_ValueError, "batch_size and max_new_tokens must be >= 0 (0 = default)");
        return NULL;
    }
    int64_t steps = 0, row_steps = 0;
    PyObject *ids = mt3py_engine_decode(self->model, features, batch_size, max_new, threads, drain_only, rule,
                                        &steps, &row_steps);
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
     "decode(features, batch_size=0, max_new_tokens=0, num_threads=0, stats=False, drain_only=False,\n"
     "       decoding='greedy')\n"
     "Decode float32 features [segments, frames, bins] (greedy, or 'beam1': t5x beam search with one\n"
     "beam and length penalty 0.6) -> int64 ids\n"
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
 * AdapterCore
 * ------------------------------------------------------------------------- */

/* A loaded model shared by the calls running on it.  `refs` is only touched
 * with the GIL held; the model is freed when the last holder lets go (a
 * reload while calls run does not pull the network from under them). */
typedef struct model_ref {
    mt3_model *model;
    Py_ssize_t refs;
} model_ref;

static model_ref *model_ref_new(mt3_model *m)
{
    model_ref *r = PyMem_Malloc(sizeof *r);
    if (!r)
        return NULL;
    r->model = m;
    r->refs = 1;
    return r;
}

static void model_ref_release(model_ref *r)
{
    if (r && --r->refs == 0) {
        mt3_model *m = r->model;
        PyMem_Free(r);
        Py_BEGIN_ALLOW_THREADS
        mt3_model_free(m);
        Py_END_ALLOW_THREADS
    }
}

typedef struct {
    PyObject_HEAD
    const mt3_recipe *recipe;
    model_ref *ref;
} AdapterCoreObject;

static int recipe_from_name(const char *name, const mt3_recipe **out)
{
    for (int i = 0;; i++) {
        const mt3_recipe *r = mt3_recipe_get((mt3_recipe_id)i);
        if (!r)
            break;
        if (!strcmp(r->name, name)) {
            *out = r;
            return 0;
        }
    }
    PyErr_Format(PyExc_ValueError, "unknown recipe '%s'; expected 'mr_mt3', 'mt3_pytorch', 'yourmt3', "
                 "'magenta_mt3' or 'magenta_piano'", name);
    return -1;
}

static int AdapterCore_init(AdapterCoreObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"recipe", NULL};
    const char *name;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &name))
        return -1;
    const mt3_recipe *r;
    if (recipe_from_name(name, &r) < 0)
        return -1;
    if (self->ref && self->recipe != r) {
        PyErr_SetString(PyExc_RuntimeError, "cannot change the recipe of a loaded adapter");
        return -1;
    }
    self->recipe = r;
    return 0;
}

static void AdapterCore_dealloc(AdapterCoreObject *self)
{
    model_ref *r = self->ref;
    self->ref = NULL;
    model_ref_release(r);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int core_ready(AdapterCoreObject *self)
{
    if (!self->recipe) {
        PyErr_SetString(PyExc_RuntimeError, "AdapterCore.__init__ was not called");
        return -1;
    }
    return 0;
}

static PyObject *AdapterCore_load_export(AdapterCoreObject *self, PyObject *args, PyObject *kw)
{
    if (core_ready(self) < 0)
        return NULL;
    mt3_model *m = NULL;
    if (load_model_from_args(args, kw, self->recipe, &m) < 0)
        return NULL;
    model_ref *nr = model_ref_new(m);
    if (!nr) {
        mt3_model_free(m);
        return PyErr_NoMemory();
    }
    model_ref *old = self->ref;
    self->ref = nr;
    model_ref_release(old);
    return PyUnicode_FromString(m->meta_json);
}

static PyObject *AdapterCore_unload(AdapterCoreObject *self, PyObject *noargs)
{
    (void)noargs;
    model_ref *old = self->ref;
    self->ref = NULL;
    model_ref_release(old);
    Py_RETURN_NONE;
}

/* Progress / Ctrl-C bridge for _run: the decoder calls run_progress_cb on
 * the calling thread (GIL released); it takes the GIL, calls the user's
 * callable (if any) and, on the main thread, runs pending signal handlers.
 * An exception from either stops the run; it is stashed here and re-raised
 * once the native call returns. */
typedef struct {
    PyObject *callable; /* borrowed (alive for the call) or NULL */
    int check_signals;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc;
#else
    PyObject *exc_type, *exc_value, *exc_tb;
#endif
    int stashed;
} run_progress;

static void run_progress_stash(run_progress *p)
{
#if PY_VERSION_HEX >= 0x030C0000
    p->exc = PyErr_GetRaisedException();
#else
    PyErr_Fetch(&p->exc_type, &p->exc_value, &p->exc_tb);
#endif
    p->stashed = 1;
}

static void run_progress_restore(run_progress *p)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(p->exc);
    p->exc = NULL;
#else
    PyErr_Restore(p->exc_type, p->exc_value, p->exc_tb);
    p->exc_type = p->exc_value = p->exc_tb = NULL;
#endif
    p->stashed = 0;
}

static int run_progress_cb(void *user, int segments_done, int segments_total, int64_t tokens_done)
{
    run_progress *p = user;
    PyGILState_STATE g = PyGILState_Ensure();
    int stop = p->stashed;
    if (!stop && p->callable) {
        PyObject *r = PyObject_CallFunction(p->callable, "iiL", segments_done, segments_total,
                                            (long long)tokens_done);
        if (r)
            Py_DECREF(r);
        else
            stop = 1;
    }
    if (!stop && p->check_signals && PyErr_CheckSignals() < 0)
        stop = 1;
    if (stop && !p->stashed)
        run_progress_stash(p);
    PyGILState_Release(g);
    return stop;
}

/* (midi bytes | None, notes | None, stats | None) of one result. */
static PyObject *result_tuple(const mt3_run_result *res, int want_midi, int want_notes, int stats)
{
    PyObject *midi_obj = NULL, *notes_obj = NULL, *stats_obj = NULL;
    if (want_midi)
        midi_obj = PyBytes_FromStringAndSize((const char *)res->midi, (Py_ssize_t)res->midi_len);
    else
        midi_obj = Py_NewRef(Py_None);
    if (midi_obj)
        notes_obj = want_notes ? mt3py_notes_array(res->notes.items, res->notes.n) : Py_NewRef(Py_None);
    if (notes_obj) {
        if (stats)
            stats_obj = Py_BuildValue("{s:i,s:i,s:i,s:i,s:i,s:L,s:L,s:L,s:d,s:n,s:d,s:d,s:d,s:d}", "segments",
                                      res->n_segments, "window", res->window, "batch", res->batch,
                                      "encode_chunk", res->encode_chunk, "token_length", res->token_length, "steps", (long long)res->steps,
                                      "row_steps", (long long)res->row_steps, "slot_steps",
                                      (long long)res->slot_steps, "padding",
                                      res->slot_steps > 0 ? 1.0 - (double)res->row_steps / (double)res->slot_steps
                                                          : 0.0,
                                      "samples_16k", (Py_ssize_t)res->samples_16k, "t_audio", res->t_audio,
                                      "t_features", res->t_features, "t_network", res->t_network, "t_notes",
                                      res->t_notes);
        else
            stats_obj = Py_NewRef(Py_None);
    }
    if (stats_obj && stats_obj != Py_None && res->tokens) {
        const int ch = res->channels > 0 ? res->channels : 1;
        npy_intp dims[3] = {(npy_intp)res->n_segments, (npy_intp)ch, (npy_intp)res->token_length};
        PyObject *t = PyArray_SimpleNew(3, dims, NPY_INT64);
        if (t) {
            memcpy(PyArray_DATA((PyArrayObject *)t), res->tokens,
                   (size_t)dims[0] * (size_t)dims[1] * (size_t)dims[2] * sizeof(int64_t));
            if (PyDict_SetItemString(stats_obj, "tokens", t) < 0)
                Py_CLEAR(stats_obj);
            Py_DECREF(t);
        } else {
            Py_CLEAR(stats_obj);
        }
    }
    if (!midi_obj || !notes_obj || !stats_obj) {
        Py_XDECREF(midi_obj);
        Py_XDECREF(notes_obj);
        Py_XDECREF(stats_obj);
        return NULL;
    }
    return Py_BuildValue("NNN", midi_obj, notes_obj, stats_obj);
}

/* The exception object an mt3_error would raise (a new reference), or NULL. */
static PyObject *error_object(const mt3_error *e)
{
    mt3py_raise(e);
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value)
        PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
}

/* _run and _run_many: `many` = 0: audio_o is one array and sr_o one rate,
 * the result one tuple (errors raised); many = 1: sequences of arrays and
 * rates, the result a list with a tuple or an exception object per input. */
static PyObject *adapter_run(AdapterCoreObject *self, PyObject *args, PyObject *kw, int many)
{
    static char *kwlist[] = {"audio",       "sr",           "midi",          "notes",
                             "sort_notes",  "batch_size",   "max_new_tokens", "num_threads",
                             "allow_resample", "decode_flags", "midi_flags",  "stats",
                             "preset",      "progress",     "max_memory_mb", "drain_only", "tokens", "max_segments",
                             "decoding",    NULL};
    PyObject *audio_o, *sr_o;
    int want_midi = 1, want_notes = 0, sort_notes = 1, batch = 0, max_new = 0, threads = 0;
    int allow_resample = 0, stats = 0, max_mb = 0, drain_only = 0, want_tokens = 0, max_segments = 0;
    unsigned int decode_flags = 0;
    long long midi_flags = -1;
    const char *preset_name = NULL, *decoding = NULL;
    PyObject *progress = Py_None;
    if (core_ready(self) < 0)
        return NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|pppiiipILpzOippiz", kwlist, &audio_o, &sr_o, &want_midi,
                                     &want_notes, &sort_notes, &batch, &max_new, &threads,
                                     &allow_resample, &decode_flags, &midi_flags, &stats,
                                     &preset_name, &progress, &max_mb, &drain_only, &want_tokens,
                                     &max_segments, &decoding))
        return NULL;
    int decode_rule = -1;
    if (decoding && decode_rule_from_name(decoding, &decode_rule) < 0)
        return NULL;
    if (progress != Py_None && !PyCallable_Check(progress))
        return PyErr_Format(PyExc_TypeError,
                            "progress must be None or a callable(segments_done, segments_total, tokens_done)");
    if (!self->ref)
        return PyErr_Format(PyExc_RuntimeError, "Model not loaded. Call load_model() before transcription.");
    if (batch < 0 || max_new < 0 || threads < 0 || max_mb < 0)
        return PyErr_Format(PyExc_ValueError,
                            "batch_size, max_new_tokens, num_threads and max_memory_mb must be positive "
                            "(or None for the default)");
    mt3_preset preset_override = (mt3_preset)-1;
    if (preset_name) {
        mt3_error perr;
        mt3_error_clear(&perr);
        if (mt3_preset_from_name(preset_name, &preset_override, &perr))
            return mt3py_raise(&perr);
    }
    /* inputs */
    Py_ssize_t n = 1;
    PyObject *aseq = NULL, *sseq = NULL;
    if (many) {
        aseq = PySequence_Fast(audio_o, "audios must be a sequence of arrays");
        if (!aseq)
            return NULL;
        sseq = PySequence_Fast(sr_o, "srs must be a sequence of sample rates");
        if (!sseq) {
            Py_DECREF(aseq);
            return NULL;
        }
        n = PySequence_Fast_GET_SIZE(aseq);
        if (PySequence_Fast_GET_SIZE(sseq) != n || n > (1 << 20)) {
            Py_DECREF(aseq);
            Py_DECREF(sseq);
            return PyErr_Format(PyExc_ValueError, "audios and srs must have the same length (at most 2^20)");
        }
    }
    mt3_audio_view *views = calloc((size_t)(n > 0 ? n : 1), sizeof *views);
    int *srs = calloc((size_t)(n > 0 ? n : 1), sizeof *srs);
    PyArrayObject **keeps = calloc((size_t)(n > 0 ? n : 1), sizeof *keeps);
    PyObject **bad = calloc((size_t)(n > 0 ? n : 1), sizeof *bad); /* exception per input refused here */
    int *slot = calloc((size_t)(n > 0 ? n : 1), sizeof *slot);     /* input -> index in the native call */
    mt3_run_result *res = NULL;
    mt3_error *errs = NULL;
    PyObject *result = NULL;
    int n_native = 0;
    if (!views || !srs || !keeps || !bad || !slot) {
        PyErr_NoMemory();
        goto out;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = many ? PySequence_Fast_GET_ITEM(aseq, i) : audio_o;
        PyObject *r = many ? PySequence_Fast_GET_ITEM(sseq, i) : sr_o;
        int sr;
        mt3_audio_view v;
        PyArrayObject *keep = NULL;
        if (mt3py_parse_sr(r, &sr) < 0 || mt3py_audio_view(a, &v, &keep) < 0) {
            if (!many)
                goto out;
            PyObject *type, *value, *tb;
            PyErr_Fetch(&type, &value, &tb);
            PyErr_NormalizeException(&type, &value, &tb);
            Py_XDECREF(type);
            Py_XDECREF(tb);
            bad[i] = value;
            slot[i] = -1;
            continue;
        }
        views[n_native] = v;
        srs[n_native] = sr;
        keeps[n_native] = keep;
        slot[i] = n_native++;
    }
    res = calloc((size_t)(n_native > 0 ? n_native : 1), sizeof *res);
    errs = calloc((size_t)(n_native > 0 ? n_native : 1), sizeof *errs);
    if (!res || !errs) {
        PyErr_NoMemory();
        goto out;
    }
    {
        const mt3_recipe *recipe = self->recipe;
        mt3_run_opts o = mt3_run_opts_default(recipe);
        o.preset_override = (int)preset_override;
        o.batch_size = batch;
        o.max_new_tokens = max_new;
        o.num_threads = threads;
        o.max_memory_mb = max_mb;
        o.drain_only = drain_only;
        o.decode_rule = decode_rule;
        o.want_tokens = want_tokens && stats;
        o.max_segments = max_segments > 0 ? max_segments : 0;
        o.allow_resample = allow_resample;
        o.decode_flags = decode_flags;
        if (midi_flags >= 0)
            o.midi_flags = (unsigned)midi_flags;
        o.want_midi = want_midi;
        o.want_notes = want_notes;
        run_progress prog;
        memset(&prog, 0, sizeof prog);
        prog.callable = progress == Py_None ? NULL : progress;
        prog.check_signals = mt3py_on_main_thread();
        if (prog.callable || prog.check_signals) {
            o.progress = run_progress_cb;
            o.progress_user = &prog;
        }
        model_ref *ref = self->ref;
        ref->refs++;
        mt3_error err;
        mt3_error_clear(&err);
        int rc;
        Py_BEGIN_ALLOW_THREADS
        rc = mt3_pipeline_run_many(recipe, ref->model, n_native, views, srs, &o, res, errs, &err);
        for (int i = 0; !rc && want_notes && sort_notes && i < n_native; i++)
            if (errs[i].code == MT3_OK && mt3_notes_sort(&res[i].notes, &errs[i]) != MT3_OK)
                mt3_run_result_free(&res[i]);
        Py_END_ALLOW_THREADS
        model_ref_release(ref);
        if (prog.stashed) { /* the callable raised, or Ctrl-C: re-raise that */
            run_progress_restore(&prog);
            goto out;
        }
        if (rc) {
            mt3py_raise(&err);
            goto out;
        }
        if (!many) {
            if (n_native != 1) {
                PyErr_SetString(PyExc_RuntimeError, "internal: one input expected");
                goto out;
            }
            if (errs[0].code != MT3_OK)
                mt3py_raise(&errs[0]);
            else
                result = result_tuple(&res[0], want_midi, want_notes, stats);
            goto out;
        }
        result = PyList_New(n);
        if (!result)
            goto out;
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item;
            if (slot[i] < 0) {
                item = bad[i];
                bad[i] = NULL;
            } else if (errs[slot[i]].code != MT3_OK) {
                item = error_object(&errs[slot[i]]);
            } else {
                item = result_tuple(&res[slot[i]], want_midi, want_notes, stats);
            }
            if (!item) {
                Py_CLEAR(result);
                goto out;
            }
            PyList_SET_ITEM(result, i, item);
        }
    }
out:
    for (int i = 0; res && i < n_native; i++)
        mt3_run_result_free(&res[i]);
    for (int i = 0; keeps && i < n_native; i++)
        Py_XDECREF(keeps[i]);
    for (Py_ssize_t i = 0; bad && i < n; i++)
        Py_XDECREF(bad[i]);
    free(views);
    free(srs);
    free(keeps);
    free(bad);
    free(slot);
    free(res);
    free(errs);
    Py_XDECREF(aseq);
    Py_XDECREF(sseq);
    return result;
}

static PyObject *AdapterCore_run(AdapterCoreObject *self, PyObject *args, PyObject *kw)
{
    return adapter_run(self, args, kw, 0);
}

static PyObject *AdapterCore_run_many(AdapterCoreObject *self, PyObject *args, PyObject *kw)
{
    return adapter_run(self, args, kw, 1);
}

static PyObject *AdapterCore_get_loaded(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    return PyBool_FromLong(self->ref != NULL);
}

static PyObject *AdapterCore_get_recipe(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    if (!self->recipe)
        Py_RETURN_NONE;
    return PyUnicode_FromString(self->recipe->name);
}

static PyObject *AdapterCore_get_scheme(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    const char *name = self->recipe ? mt3py_scheme_name(self->recipe->scheme) : NULL;
    if (!name)
        Py_RETURN_NONE;
    return PyUnicode_FromString(name);
}

static PyObject *AdapterCore_get_preset(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    const mt3_preset_info *info = self->recipe ? mt3_preset_get_info(self->recipe->preset) : NULL;
    if (!info)
        Py_RETURN_NONE;
    return PyUnicode_FromString(info->name);
}

static PyObject *AdapterCore_get_device(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    if (!self->ref)
        Py_RETURN_NONE;
    const mt3_model *m = self->ref->model;
    return PyUnicode_FromString(m->device);
}

static PyObject *AdapterCore_get_meta_json(AdapterCoreObject *self, void *closure)
{
    (void)closure;
    if (!self->ref)
        Py_RETURN_NONE;
    const mt3_model *m = self->ref->model;
    return PyUnicode_FromString(m->meta_json);
}

static PyGetSetDef AdapterCore_getset[] = {
    {"_loaded", (getter)AdapterCore_get_loaded, NULL, "whether a network is loaded", NULL},
    {"_recipe", (getter)AdapterCore_get_recipe, NULL, "the recipe name", NULL},
    {"_scheme", (getter)AdapterCore_get_scheme, NULL, "the recipe's decoding scheme (a _core.SCHEMES name)", NULL},
    {"_recipe_preset", (getter)AdapterCore_get_preset, NULL, "the recipe's spectrogram preset name", NULL},
    {"_device", (getter)AdapterCore_get_device, NULL, "the resolved device (None before loading)", NULL},
    {"_meta_json", (getter)AdapterCore_get_meta_json, NULL, "the loaded artifact's mt3_infer.json", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef AdapterCore_methods[] = {
    {"_load_export", (PyCFunction)(void (*)(void))AdapterCore_load_export, METH_VARARGS | METH_KEYWORDS,
     "_load_export(engine_path, model_path, device='auto', dtype='float32', num_threads=0, prepack=True) -> meta json\n"
     "Load an exported network (GIL released) and check it fits the recipe."},
    {"_unload", (PyCFunction)AdapterCore_unload, METH_NOARGS, "Drop the loaded network."},
    {"_run", (PyCFunction)(void (*)(void))AdapterCore_run, METH_VARARGS | METH_KEYWORDS,
     "_run(audio, sr, midi=True, notes=False, sort_notes=True, batch_size=0, max_new_tokens=0,\n"
     "     num_threads=0, allow_resample=False, decode_flags=0, midi_flags=-1, stats=False,\n"
     "     preset=None, progress=None, max_memory_mb=0, drain_only=False, tokens=False)\n"
     "(tokens with stats: the generated ids in stats['tokens'], (segments, channels, length))\n"
     "-> (midi bytes | None, notes | None, stats dict | None).  GIL released throughout, taken\n"
     "back briefly (at most every ~0.2 s) to call progress(segments_done, segments_total,\n"
     "tokens_done) and, on the main thread, to honour Ctrl-C; an exception from either stops\n"
     "the run and propagates."},
    {"_run_many", (PyCFunction)(void (*)(void))AdapterCore_run_many, METH_VARARGS | METH_KEYWORDS,
     "_run_many(audios, srs, **same options as _run) -> list, per input in order: the tuple _run\n"
     "returns, or the exception object that input raised (the others complete).  The segments of\n"
     "all inputs share one decoder (windows, continuous batching); each result equals _run's."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AdapterCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "mt3_infer._core.AdapterCore",
    .tp_basicsize = sizeof(AdapterCoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "AdapterCore(recipe): native pipeline of an adapter ('mr_mt3', 'mt3_pytorch', 'yourmt3', 'magenta_mt3' or 'magenta_piano').",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)AdapterCore_init,
    .tp_dealloc = (destructor)AdapterCore_dealloc,
    .tp_methods = AdapterCore_methods,
    .tp_getset = AdapterCore_getset,
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
    if (PyType_Ready(&AdapterCoreType) < 0)
        return -1;
    Py_INCREF(&AdapterCoreType);
    if (PyModule_AddObject(m, "AdapterCore", (PyObject *)&AdapterCoreType) < 0) {
        Py_DECREF(&AdapterCoreType);
        return -1;
    }
    if (PyModule_AddFunctions(m, adapter_functions) < 0)
        return -1;
    return 0;
}
