/* Python bindings of core/codec, core/notes and core/midi.
 *
 *   decode_tokens(tokens, scheme, segment_starts=None, corrected=False, flags=0, sort=True)
 *       -> notes (structured array, NOTE dtype)
 *   notes_to_midi(notes, style, auto_filter=True, corrected=False, flags=0) -> bytes
 *   tokens_to_midi(tokens, scheme, segment_starts=None, corrected=False, flags=0,
 *                  auto_filter=True, midi_flags=0) -> (bytes, notes in scheme order)
 *   vocab_decode(vocab, ids) -> (types int32, values int32)
 *   vocab_encode(vocab, type_name, value) -> int (-1 = none)
 *   vocab_table(vocab) -> list of (type_name, first_id, count, min_value)
 *   segment_starts(scheme, n) -> float64 array of the scheme's default start times
 *
 * Names: SCHEMES ("mt3_pytorch", "mr_mt3", "yourmt3", "magenta", "magenta_piano"),
 * VOCABS ("mt3", "yourmt3", "magenta_piano"), MIDI_STYLES.
 *
 * Native work runs with the GIL released; nothing inside touches Python objects. */
#include "python/py_common.h"

#include <string.h>

#include "core/codec.h"
#include "core/midi.h"
#include "core/notes.h"
#include "core/pipeline.h"

/* ---- name parsing -------------------------------------------------------- */

/* The names the module accepts: one table each, also exported as
 * _core.SCHEMES / _core.MIDI_STYLES (the canonical names: those before the
 * aliases), so Python never keeps its own list. */
static const struct {
    const char *name;
    mt3_scheme value;
} k_scheme_names[] = {
    {"mt3_pytorch", MT3_SCHEME_MT3_PYTORCH},
    {"mr_mt3", MT3_SCHEME_MR_MT3},
    {"yourmt3", MT3_SCHEME_YOURMT3},
    {"magenta", MT3_SCHEME_MAGENTA},
    {"magenta_piano", MT3_SCHEME_MAGENTA_PIANO},
};
#define N_SCHEME_NAMES (sizeof k_scheme_names / sizeof k_scheme_names[0])

static const struct {
    const char *name;
    mt3_vocab value;
} k_vocab_names[] = {
    {"mt3", MT3_VOCAB_MT3},
    {"yourmt3", MT3_VOCAB_YOURMT3},
    {"magenta_piano", MT3_VOCAB_MAGENTA_PIANO},
};
#define N_VOCAB_NAMES (sizeof k_vocab_names / sizeof k_vocab_names[0])

static const struct {
    const char *name;
    mt3_midi_style value;
} k_style_names[] = {
    {"mr_mt3", MT3_MIDI_MR_MT3},      {"pretty", MT3_MIDI_PRETTY},
    {"yourmt3", MT3_MIDI_YOURMT3},    {"magenta", MT3_MIDI_MAGENTA},
    {"pretty_midi", MT3_MIDI_PRETTY}, {"mt3_pytorch", MT3_MIDI_PRETTY}, /* aliases */
};
#define N_STYLE_NAMES (sizeof k_style_names / sizeof k_style_names[0])
#define N_CANONICAL_STYLES 4

const char *mt3py_scheme_name(mt3_scheme s)
{
    for (size_t i = 0; i < N_SCHEME_NAMES; i++)
        if (k_scheme_names[i].value == s)
            return k_scheme_names[i].name;
    return NULL;
}

static int parse_scheme(PyObject *o, mt3_scheme *s)
{
    if (PyUnicode_Check(o)) {
        const char *name = PyUnicode_AsUTF8(o);
        if (!name)
            return -1;
        for (size_t i = 0; i < N_SCHEME_NAMES; i++)
            if (!strcmp(name, k_scheme_names[i].name)) {
                *s = k_scheme_names[i].value;
                return 0;
            }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown decoding scheme %R; use 'mt3_pytorch', 'mr_mt3', 'yourmt3', 'magenta' "
                 "or 'magenta_piano'",
                 o);
    return -1;
}

static int parse_style(PyObject *o, mt3_midi_style *st)
{
    if (PyUnicode_Check(o)) {
        const char *name = PyUnicode_AsUTF8(o);
        if (!name)
            return -1;
        for (size_t i = 0; i < N_STYLE_NAMES; i++)
            if (!strcmp(name, k_style_names[i].name)) {
                *st = k_style_names[i].value;
                return 0;
            }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown MIDI style %R; use 'mr_mt3', 'pretty' (alias 'mt3_pytorch'), "
                 "'yourmt3' or 'magenta'",
                 o);
    return -1;
}

/* A tuple of the first n names of a name table (stride: the row size). */
static PyObject *name_tuple(const void *table, size_t stride, size_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t && i < n; i++) {
        const char *name = *(const char *const *)((const char *)table + i * stride);
        PyObject *u = PyUnicode_FromString(name);
        if (!u) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, u);
    }
    return t;
}

static int parse_vocab(PyObject *o, mt3_vocab *v)
{
    if (PyUnicode_Check(o)) {
        const char *name = PyUnicode_AsUTF8(o);
        if (!name)
            return -1;
        for (size_t i = 0; i < N_VOCAB_NAMES; i++)
            if (!strcmp(name, k_vocab_names[i].name)) {
                *v = k_vocab_names[i].value;
                return 0;
            }
    }
    PyErr_Format(PyExc_ValueError,
                 "unknown vocabulary %R; use 'mt3', 'yourmt3' or 'magenta_piano'", o);
    return -1;
}

static int parse_flags(PyObject *o, unsigned *flags)
{
    if (!o || o == Py_None) {
        *flags = 0;
        return 0;
    }
    unsigned long v = PyLong_AsUnsignedLong(o);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "flags must be a non-negative int, got %R", o);
        return -1;
    }
    if (v > 0xFFFFFFFFul) {
        PyErr_Format(PyExc_ValueError, "flags out of range: %R", o);
        return -1;
    }
    *flags = (unsigned)v;
    return 0;
}

/* ---- array conversions ---------------------------------------------------- */

/* tokens -> C-contiguous int64 array with the scheme's shape; new reference. */
static PyArrayObject *tokens_array(PyObject *obj, mt3_scheme s)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(obj);
    if (!a)
        return NULL;
    if (!PyArray_ISINTEGER(a)) {
        PyObject *d = PyObject_Str((PyObject *)PyArray_DESCR(a));
        PyErr_Format(PyExc_ValueError,
                     "tokens must be an integer array of decoder ids, got dtype %S", d);
        Py_XDECREF(d);
        Py_DECREF(a);
        return NULL;
    }
    int nd = PyArray_NDIM(a);
    if (s == MT3_SCHEME_YOURMT3) {
        if (nd != 3 || PyArray_DIM(a, 1) != 13) {
            PyErr_Format(PyExc_ValueError,
                         "YourMT3 tokens must have shape (segments, 13, length), got a %d-d "
                         "array%s",
                         nd, nd == 3 ? " whose second axis is not 13" : "");
            Py_DECREF(a);
            return NULL;
        }
    } else if (nd != 2) {
        PyErr_Format(PyExc_ValueError,
                     "MT3 tokens must have shape (segments, length), got a %d-d array", nd);
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FromArray(
        a, PyArray_DescrFromType(NPY_INT64), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    return c;
}

/* segment_starts -> contiguous float64 of length n, or NULL with *out = NULL for None */
static int starts_array(PyObject *obj, npy_intp n, PyArrayObject **out)
{
    *out = NULL;
    if (!obj || obj == Py_None)
        return 0;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(obj);
    if (!a)
        return -1;
    if (!(PyArray_ISINTEGER(a) || PyArray_ISFLOAT(a)) || PyArray_NDIM(a) != 1 ||
        PyArray_DIM(a, 0) != n) {
        PyErr_Format(PyExc_ValueError,
                     "segment_starts must be a 1-d array of %zd real numbers (seconds), one per "
                     "segment",
                     (Py_ssize_t)n);
        Py_DECREF(a);
        return -1;
    }
    *out = (PyArrayObject *)PyArray_FromArray(a, PyArray_DescrFromType(NPY_DOUBLE),
                                              NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    return *out ? 0 : -1;
}

/* One field of a structured note array as a contiguous 1-d array of `type`. */
static PyArrayObject *note_field(PyObject *notes, const char *name, int want_int)
{
    PyObject *col;
    PyObject *key = PyUnicode_FromString(name);
    if (!key)
        return NULL;
    col = PyObject_GetItem(notes, key);
    Py_DECREF(key);
    if (!col) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError,
                     "notes must be a structured array with fields onset, offset, pitch, "
                     "velocity, program, is_drum (missing '%s')",
                     name);
        return NULL;
    }
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(col);
    Py_DECREF(col);
    if (!a)
        return NULL;
    int ok = want_int ? (PyArray_ISINTEGER(a) || PyArray_ISBOOL(a))
                      : (PyArray_ISINTEGER(a) || PyArray_ISFLOAT(a));
    if (!ok || PyArray_NDIM(a) != 1) {
        PyObject *d = PyObject_Str((PyObject *)PyArray_DESCR(a));
        PyErr_Format(PyExc_ValueError, "notes field '%s' must be a 1-d %s column, got dtype %S",
                     name, want_int ? "integer" : "real", d);
        Py_XDECREF(d);
        Py_DECREF(a);
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FromArray(
        a, PyArray_DescrFromType(want_int ? NPY_INT64 : NPY_DOUBLE),
        NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    return c;
}

/* structured array -> malloc'd mt3_note[]; integer ranges checked here (values
 * must fit before narrowing), times by mt3_notes_validate later. */
static int notes_from_array(PyObject *notes, mt3_note **out, size_t *n_out)
{
    *out = NULL;
    *n_out = 0;
    if (!PyArray_Check(notes) || !PyDataType_HASFIELDS(PyArray_DESCR((PyArrayObject *)notes))) {
        PyErr_SetString(PyExc_ValueError,
                        "notes must be a NumPy structured array with fields onset, offset, "
                        "pitch, velocity, program, is_drum (see mt3_infer.codec.NOTE_DTYPE)");
        return -1;
    }
    if (PyArray_NDIM((PyArrayObject *)notes) != 1) {
        PyErr_SetString(PyExc_ValueError, "notes must be a 1-d structured array");
        return -1;
    }
    static const char *const names[6] = {"onset", "offset", "pitch", "velocity", "program",
                                         "is_drum"};
    PyArrayObject *cols[6] = {0};
    int rc = -1;
    for (int k = 0; k < 6; k++) {
        cols[k] = note_field(notes, names[k], k >= 2);
        if (!cols[k])
            goto done;
    }
    size_t n = (size_t)PyArray_DIM(cols[0], 0);
    mt3_note *v = malloc((n ? n : 1) * sizeof *v);
    if (!v) {
        PyErr_NoMemory();
        goto done;
    }
    const double *on = PyArray_DATA(cols[0]), *off = PyArray_DATA(cols[1]);
    const int64_t *pi = PyArray_DATA(cols[2]), *ve = PyArray_DATA(cols[3]),
                  *pr = PyArray_DATA(cols[4]), *dr = PyArray_DATA(cols[5]);
    for (size_t i = 0; i < n; i++) {
        if (pi[i] < 0 || pi[i] > 127 || ve[i] < 0 || ve[i] > 127 || pr[i] < 0 || pr[i] > 128 ||
            dr[i] < 0 || dr[i] > 1) {
            PyErr_Format(PyExc_ValueError,
                         "note %zu: pitch %lld / velocity %lld must be in 0..127, program %lld in "
                         "0..127 (128 for drums), is_drum %lld 0 or 1",
                         i, (long long)pi[i], (long long)ve[i], (long long)pr[i],
                         (long long)dr[i]);
            free(v);
            goto done;
        }
        v[i].onset = on[i];
        v[i].offset = off[i];
        v[i].pitch = (int32_t)pi[i];
        v[i].velocity = (int32_t)ve[i];
        v[i].program = (int32_t)pr[i];
        v[i].is_drum = (uint8_t)dr[i];
    }
    *out = v;
    *n_out = n;
    rc = 0;
done:
    for (int k = 0; k < 6; k++)
        Py_XDECREF(cols[k]);
    return rc;
}

/* ---- decode_tokens / tokens_to_midi ---------------------------------------- */

static PyObject *decode_common(PyObject *args, PyObject *kw, int want_midi)
{
    static char *kw_decode[] = {"tokens", "scheme", "segment_starts", "corrected", "flags",
                                "sort", NULL};
    static char *kw_midi[] = {"tokens",    "scheme",      "segment_starts", "corrected",
                              "flags",     "auto_filter", "midi_flags",     NULL};
    PyObject *tok_obj, *scheme_obj, *starts_obj = Py_None, *flags_obj = Py_None,
                                    *mflags_obj = Py_None;
    int corrected = 0, sort = 1, auto_filter = 1;
    if (want_midi) {
        if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OpOpO:tokens_to_midi", kw_midi, &tok_obj,
                                         &scheme_obj, &starts_obj, &corrected, &flags_obj,
                                         &auto_filter, &mflags_obj))
            return NULL;
    } else if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OpOp:decode_tokens", kw_decode,
                                            &tok_obj, &scheme_obj, &starts_obj, &corrected,
                                            &flags_obj, &sort)) {
        return NULL;
    }
    mt3_scheme s;
    unsigned flags, mflags;
    if (parse_scheme(scheme_obj, &s) < 0 || parse_flags(flags_obj, &flags) < 0 ||
        parse_flags(mflags_obj, &mflags) < 0)
        return NULL;
    if (corrected) {
        flags |= MT3_DECODE_CORRECTED;
        mflags |= MT3_MIDI_CORRECTED;
    }
    if (auto_filter && s == MT3_SCHEME_MT3_PYTORCH)
        mflags |= MT3_MIDI_AUTO_FILTER;

    PyArrayObject *tok = tokens_array(tok_obj, s);
    if (!tok)
        return NULL;
    size_t nseg = (size_t)PyArray_DIM(tok, 0);
    size_t nch = mt3_scheme_channels(s);
    size_t len = (size_t)PyArray_DIM(tok, PyArray_NDIM(tok) - 1);
    PyArrayObject *starts = NULL;
    if (starts_array(starts_obj, (npy_intp)nseg, &starts) < 0) {
        Py_DECREF(tok);
        return NULL;
    }
    const int64_t *tp = PyArray_DATA(tok);
    const double *sp = starts ? PyArray_DATA(starts) : NULL;
    mt3_notes notes = {0};
    mt3_error err;
    mt3_error_clear(&err);
    uint8_t *bytes = NULL;
    size_t nbytes = 0;
    const mt3_recipe *recipe = want_midi ? mt3_recipe_for_scheme(s) : NULL;
    if (want_midi && !recipe) {
        Py_DECREF(tok);
        Py_XDECREF(starts);
        return PyErr_Format(PyExc_ValueError,
                            "scheme %R has no MIDI recipe; use decode_tokens(..., sort=False) "
                            "and notes_to_midi",
                            scheme_obj);
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS;
    if (want_midi)
        rc = mt3_recipe_tokens_to_midi(recipe, tp, nseg, nch, len, sp, flags, mflags,
                                       &notes, &bytes, &nbytes, &err);
    else {
        rc = mt3_decode_tokens(s, tp, nseg, nch, len, sp, flags, &notes, &err);
        if (!rc && sort)
            rc = mt3_notes_sort(&notes, &err);
    }
    Py_END_ALLOW_THREADS;
    Py_DECREF(tok);
    Py_XDECREF(starts);
    PyObject *res = NULL;
    if (rc) {
        mt3py_raise(&err);
        goto done;
    }
    PyObject *arr = mt3py_notes_array(notes.items, notes.n);
    if (!arr)
        goto done;
    if (!want_midi) {
        res = arr;
        goto done;
    }
    PyObject *b = PyBytes_FromStringAndSize((const char *)bytes, (Py_ssize_t)nbytes);
    if (!b) {
        Py_DECREF(arr);
        goto done;
    }
    res = PyTuple_Pack(2, b, arr);
    Py_DECREF(b);
    Py_DECREF(arr);
done:
    free(bytes);
    mt3_notes_free(&notes);
    return res;
}

static PyObject *py_decode_tokens(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return decode_common(args, kw, 0);
}

static PyObject *py_tokens_to_midi(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    return decode_common(args, kw, 1);
}

/* ---- notes_to_midi ---------------------------------------------------------- */

static PyObject *py_notes_to_midi(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"notes", "style", "auto_filter", "corrected", "flags", NULL};
    PyObject *notes_obj, *style_obj, *flags_obj = Py_None;
    int auto_filter = 1, corrected = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|ppO:notes_to_midi", kwlist, &notes_obj,
                                     &style_obj, &auto_filter, &corrected, &flags_obj))
        return NULL;
    mt3_midi_style st;
    unsigned flags;
    if (parse_style(style_obj, &st) < 0 || parse_flags(flags_obj, &flags) < 0)
        return NULL;
    if (auto_filter && st == MT3_MIDI_PRETTY)
        flags |= MT3_MIDI_AUTO_FILTER;
    if (corrected)
        flags |= MT3_MIDI_CORRECTED;
    mt3_note *v = NULL;
    size_t n = 0;
    if (notes_from_array(notes_obj, &v, &n) < 0)
        return NULL;
    uint8_t *bytes = NULL;
    size_t len = 0;
    mt3_error err;
    mt3_error_clear(&err);
    int rc;
    Py_BEGIN_ALLOW_THREADS;
    rc = mt3_midi_write(st, v, n, flags, &bytes, &len, &err);
    Py_END_ALLOW_THREADS;
    free(v);
    if (rc)
        return mt3py_raise(&err);
    PyObject *res = PyBytes_FromStringAndSize((const char *)bytes, (Py_ssize_t)len);
    free(bytes);
    return res;
}

/* ---- vocabulary helpers -------------------------------------------------------- */

static PyObject *py_vocab_decode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *vocab_obj, *ids_obj;
    if (!PyArg_ParseTuple(args, "OO:vocab_decode", &vocab_obj, &ids_obj))
        return NULL;
    mt3_vocab v;
    if (parse_vocab(vocab_obj, &v) < 0)
        return NULL;
    PyArrayObject *a = (PyArrayObject *)PyArray_FROM_O(ids_obj);
    if (!a)
        return NULL;
    if (!PyArray_ISINTEGER(a)) {
        Py_DECREF(a);
        PyErr_SetString(PyExc_ValueError, "ids must be an integer array");
        return NULL;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_FromArray(
        a, PyArray_DescrFromType(NPY_INT64), NPY_ARRAY_CARRAY_RO | NPY_ARRAY_FORCECAST);
    Py_DECREF(a);
    if (!c)
        return NULL;
    PyArrayObject *types = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(c), PyArray_DIMS(c),
                                                              NPY_INT32);
    PyArrayObject *vals = (PyArrayObject *)PyArray_SimpleNew(PyArray_NDIM(c), PyArray_DIMS(c),
                                                             NPY_INT32);
    if (!types || !vals) {
        Py_XDECREF(types);
        Py_XDECREF(vals);
        Py_DECREF(c);
        return NULL;
    }
    npy_intp n = PyArray_SIZE(c);
    const int64_t *ids = PyArray_DATA(c);
    int32_t *tp = PyArray_DATA(types), *vp = PyArray_DATA(vals);
    for (npy_intp i = 0; i < n; i++) {
        mt3_event e = mt3_codec_decode(v, ids[i]);
        tp[i] = e.type;
        vp[i] = e.value;
    }
    Py_DECREF(c);
    PyObject *res = PyTuple_Pack(2, types, vals);
    Py_DECREF(types);
    Py_DECREF(vals);
    return res;
}

static int type_from_name(const char *name)
{
    for (int t = 0; t < MT3_EVENT_TYPE_COUNT; t++)
        if (!strcmp(name, mt3_event_type_name(t)))
            return t;
    return -1;
}

static PyObject *py_vocab_encode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *vocab_obj;
    const char *tname;
    long long value;
    if (!PyArg_ParseTuple(args, "OsL:vocab_encode", &vocab_obj, &tname, &value))
        return NULL;
    mt3_vocab v;
    if (parse_vocab(vocab_obj, &v) < 0)
        return NULL;
    int t = type_from_name(tname);
    if (t < 0)
        return PyErr_Format(PyExc_ValueError, "unknown event type '%s'", tname);
    if (value < INT32_MIN || value > INT32_MAX)
        return PyLong_FromLong(-1);
    mt3_event e = {t, (int32_t)value};
    return PyLong_FromLongLong((long long)mt3_codec_encode(v, e));
}

static PyObject *py_vocab_table(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *vocab_obj;
    if (!PyArg_ParseTuple(args, "O:vocab_table", &vocab_obj))
        return NULL;
    mt3_vocab v;
    if (parse_vocab(vocab_obj, &v) < 0)
        return NULL;
    size_t n = 0;
    const mt3_vocab_range *t = mt3_vocab_table(v, &n);
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (!list)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        PyObject *item = Py_BuildValue("(siii)", mt3_event_type_name(t[i].type),
                                       (int)t[i].first_id, (int)t[i].count, (int)t[i].min_value);
        if (!item) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

static PyObject *py_segment_starts(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *scheme_obj;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "On:segment_starts", &scheme_obj, &n))
        return NULL;
    mt3_scheme s;
    if (parse_scheme(scheme_obj, &s) < 0)
        return NULL;
    if (n < 0)
        return PyErr_Format(PyExc_ValueError, "n must be >= 0");
    npy_intp dims[1] = {n};
    PyArrayObject *a = (PyArrayObject *)PyArray_SimpleNew(1, dims, NPY_DOUBLE);
    if (!a)
        return NULL;
    double *p = PyArray_DATA(a);
    for (Py_ssize_t i = 0; i < n; i++)
        p[i] = mt3_segment_start(s, (size_t)i);
    return (PyObject *)a;
}

static PyMethodDef codec_methods[] = {
    {"decode_tokens", (PyCFunction)(void (*)(void))py_decode_tokens, METH_VARARGS | METH_KEYWORDS,
     "decode_tokens(tokens, scheme, segment_starts=None, corrected=False, flags=0, sort=True)\n"
     "Raw decoder ids -> notes (structured array)."},
    {"tokens_to_midi", (PyCFunction)(void (*)(void))py_tokens_to_midi,
     METH_VARARGS | METH_KEYWORDS,
     "tokens_to_midi(tokens, scheme, segment_starts=None, corrected=False, flags=0, "
     "auto_filter=True, midi_flags=0)\n-> (midi bytes, notes in the scheme's order)."},
    {"notes_to_midi", (PyCFunction)(void (*)(void))py_notes_to_midi, METH_VARARGS | METH_KEYWORDS,
     "notes_to_midi(notes, style, auto_filter=True, corrected=False, flags=0) -> bytes"},
    {"vocab_decode", py_vocab_decode, METH_VARARGS,
     "vocab_decode(vocab, ids) -> (types, values) int32 arrays"},
    {"vocab_encode", py_vocab_encode, METH_VARARGS,
     "vocab_encode(vocab, type_name, value) -> raw id or -1"},
    {"vocab_table", py_vocab_table, METH_VARARGS,
     "vocab_table(vocab) -> [(type_name, first_id, count, min_value), ...]"},
    {"segment_starts", py_segment_starts, METH_VARARGS,
     "segment_starts(scheme, n) -> the scheme's default start times (s) of n segments"},
    {NULL, NULL, 0, NULL}};

int mt3py_register_codec(PyObject *m)
{
    if (PyModule_AddFunctions(m, codec_methods) < 0)
        return -1;
    PyObject *schemes = name_tuple(k_scheme_names, sizeof k_scheme_names[0], N_SCHEME_NAMES);
    PyObject *styles = name_tuple(k_style_names, sizeof k_style_names[0], N_CANONICAL_STYLES);
    PyObject *vocabs = name_tuple(k_vocab_names, sizeof k_vocab_names[0], N_VOCAB_NAMES);
    int bad = !schemes || !styles || !vocabs || PyModule_AddObjectRef(m, "SCHEMES", schemes) < 0 ||
              PyModule_AddObjectRef(m, "MIDI_STYLES", styles) < 0 ||
              PyModule_AddObjectRef(m, "VOCABS", vocabs) < 0;
    Py_XDECREF(schemes);
    Py_XDECREF(styles);
    Py_XDECREF(vocabs);
    if (bad)
        return -1;
    struct {
        const char *name;
        long value;
    } consts[] = {
        {"DECODE_MRMT3_DROP_RULE", MT3_DECODE_MRMT3_DROP_RULE},
        {"DECODE_MRMT3_MAGENTA_DRUMS", MT3_DECODE_MRMT3_MAGENTA_DRUMS},
        {"DECODE_YMT3_TRIM_AFTER_REMAP", MT3_DECODE_YMT3_TRIM_AFTER_REMAP},
        {"DECODE_YMT3_NO_REMAP", MT3_DECODE_YMT3_NO_REMAP},
        {"DECODE_CORRECTED", MT3_DECODE_CORRECTED},
        {"MIDI_AUTO_FILTER", MT3_MIDI_AUTO_FILTER},
        {"MIDI_ABS_TICKS", MT3_MIDI_ABS_TICKS},
        {"MIDI_PROGRAM_CHANNELS", MT3_MIDI_PROGRAM_CHANNELS},
        {"MIDI_CORRECTED", MT3_MIDI_CORRECTED},
    };
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            return -1;
    PyObject *names = PyTuple_New(MT3_EVENT_TYPE_COUNT);
    if (!names)
        return -1;
    for (int t = 0; t < MT3_EVENT_TYPE_COUNT; t++) {
        PyObject *s = PyUnicode_FromString(mt3_event_type_name(t));
        if (!s) {
            Py_DECREF(names);
            return -1;
        }
        PyTuple_SET_ITEM(names, t, s);
    }
    if (PyModule_AddObject(m, "EVENT_TYPE_NAMES", names) < 0) {
        Py_DECREF(names);
        return -1;
    }
    return 0;
}
