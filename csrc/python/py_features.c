/* _core.compute_features / _core.resample / _core.feature_layout. */
#include "python/py_common.h"

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "core/audio.h"
#include "core/features.h"


static int parse_preset(PyObject *o, mt3_preset *p)
{
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_ValueError,
                     "preset must be a str (mr_mt3, mt3_pytorch, mt3_reference, yourmt3), got %s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    const char *s = PyUnicode_AsUTF8(o);
    if (!s)
        return -1;
    mt3_error err;
    mt3_error_clear(&err);
    if (mt3_preset_from_name(s, p, &err) != MT3_OK) {
        mt3py_raise(&err);
        return -1;
    }
    return 0;
}

static int parse_threads(PyObject *o, int *nt)
{
    if (o == NULL || o == Py_None) {
        *nt = 1;
        return 0;
    }
    if (PyBool_Check(o) || !PyIndex_Check(o)) {
        PyErr_Format(PyExc_ValueError, "num_threads must be an int >= 0, got %s",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0) {
        PyErr_Format(PyExc_ValueError, "num_threads must be >= 0 (0 = all cores), got %ld", v);
        return -1;
    }
    if (v == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        v = c > 0 ? c : 1;
    }
    *nt = v > 64 ? 64 : (int)v;
    return 0;
}

static int parse_stage(PyObject *o, mt3_feature_stage *st)
{
    const char *s = (o && PyUnicode_Check(o)) ? PyUnicode_AsUTF8(o) : NULL;
    if (o == NULL || o == Py_None || (s && strcmp(s, "final") == 0))
        *st = MT3_STAGE_FINAL;
    else if (s && strcmp(s, "log") == 0)
        *st = MT3_STAGE_LOG;
    else if (s && strcmp(s, "linear") == 0)
        *st = MT3_STAGE_LINEAR;
    else {
        PyErr_SetString(PyExc_ValueError, "stage must be 'final', 'log' or 'linear'");
        return -1;
    }
    return 0;
}

static PyObject *py_compute_features(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"audio",     "sr",    "preset",        "num_threads",
                             "resampler", "stage", "segment_range", NULL};
    PyObject *audio, *sr_o = NULL, *preset_o = NULL, *nt_o = NULL, *rs_o = NULL, *stage_o = NULL;
    PyObject *range_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|OOOOOO:compute_features", kwlist, &audio, &sr_o,
                                     &preset_o, &nt_o, &rs_o, &stage_o, &range_o))
        return NULL;
    Py_ssize_t rbeg = 0, rend = -1; /* segment_range=(begin, end): only those segments */
    if (range_o && range_o != Py_None) {
        if (!PyArg_ParseTuple(range_o, "nn;segment_range must be a (begin, end) tuple", &rbeg, &rend))
            return NULL;
        if (rbeg < 0 || rend < rbeg) {
            PyErr_SetString(PyExc_ValueError, "segment_range must satisfy 0 <= begin <= end");
            return NULL;
        }
    }
    int sr = MT3_AUDIO_TARGET_SR, nt;
    mt3_preset preset = MT3_PRESET_MT3_PYTORCH;
    mt3_resampler rs;
    mt3_feature_stage stage;
    mt3_audio_view view;
    PyArrayObject *keep = NULL;
    if (mt3py_audio_view(audio, &view, &keep) < 0)
        return NULL;
    if ((sr_o && mt3py_parse_sr(sr_o, &sr) < 0) || (preset_o && parse_preset(preset_o, &preset) < 0) ||
        parse_threads(nt_o, &nt) < 0 || mt3py_parse_resampler(rs_o, 1, mt3_preset_get_info(preset)->resampler, &rs) < 0 ||
        parse_stage(stage_o, &stage) < 0) {
        Py_DECREF(keep);
        return NULL;
    }

    mt3_error err;
    mt3_error_clear(&err);
    mt3_features feat;
    memset(&feat, 0, sizeof feat);
    int rc;
    Py_BEGIN_ALLOW_THREADS
    const int direct = sr == MT3_AUDIO_TARGET_SR && view.type == MT3_SAMPLE_F32 &&
                       view.n_channels == 1 && view.sample_stride == (ptrdiff_t)sizeof(float) &&
                       ((uintptr_t)view.data % _Alignof(float)) == 0;
    float *mono = NULL;
    size_t n = 0;
    if (direct) { /* contiguous float32 mono at 16 kHz: no copy */
        rc = mt3_audio_validate(&view, &err);
        n = view.n_samples;
    } else {
        rc = mt3_audio_prepare(&view, sr, rs, &mono, &n, &err);
    }
    const float *x = direct ? (const float *)view.data : mono;
    if (rc == MT3_OK && rend < 0) {
        rc = mt3_features_compute_ex(preset, x, n, nt, stage, &feat, &err);
    } else if (rc == MT3_OK) {
        const mt3_preset_info *in = mt3_preset_get_info(preset);
        size_t total = mt3_features_num_segments(preset, n);
        size_t cnt = (size_t)rend - (size_t)rbeg;
        feat.n_frames = in->n_frames;
        feat.n_bins = in->n_bins;
        if ((size_t)rend > total) {
            rc = mt3_error_set(&err, MT3_E_VALUE, "segment_range (%zd, %zd) beyond the %zu segments",
                               rbeg, rend, total);
        } else if (cnt > 0) {
            feat.data = malloc(cnt * (size_t)in->n_frames * (size_t)in->n_bins * sizeof(float));
            if (!feat.data)
                rc = mt3_error_set(&err, MT3_E_NOMEM, "out of memory");
            else
                rc = mt3_features_compute_range(preset, x, n, (size_t)rbeg, (size_t)rend, stage, nt,
                                                feat.data, NULL, &err);
            if (rc != MT3_OK)
                mt3_features_free(&feat);
            else
                feat.n_segments = (int)cnt;
        }
    }
    free(mono);
    Py_END_ALLOW_THREADS
    Py_DECREF(keep);
    if (rc != MT3_OK)
        return mt3py_raise(&err);
    free(feat.valid_frames);
    npy_intp dims[3] = {feat.n_segments, feat.n_frames, feat.n_bins};
    return mt3py_wrap_floats(feat.data, 3, dims);
}

static PyObject *py_resample(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"audio", "sr", "method", NULL};
    PyObject *audio, *sr_o, *m_o = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|O:resample", kwlist, &audio, &sr_o, &m_o))
        return NULL;
    int sr;
    mt3_resampler rs;
    mt3_audio_view view;
    PyArrayObject *keep = NULL;
    if (mt3py_audio_view(audio, &view, &keep) < 0)
        return NULL;
    if (mt3py_parse_sr(sr_o, &sr) < 0 || mt3py_parse_resampler(m_o, 1, MT3_RESAMPLE_SOXR_HQ, &rs) < 0) {
        Py_DECREF(keep);
        return NULL;
    }
    mt3_error err;
    mt3_error_clear(&err);
    float *out = NULL;
    size_t n = 0;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mt3_audio_prepare(&view, sr, rs, &out, &n, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(keep);
    if (rc != MT3_OK)
        return mt3py_raise(&err);
    npy_intp dims[1] = {(npy_intp)n};
    return mt3py_wrap_floats(out, 1, dims);
}

static PyObject *py_feature_layout(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"n_samples", "preset", NULL};
    Py_ssize_t n;
    PyObject *preset_o;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nO:feature_layout", kwlist, &n, &preset_o))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n_samples must be >= 0");
        return NULL;
    }
    mt3_preset p;
    if (parse_preset(preset_o, &p) < 0)
        return NULL;
    const mt3_preset_info *in = mt3_preset_get_info(p);
    size_t nseg = mt3_features_num_segments(p, (size_t)n);
    PyObject *valid = PyList_New((Py_ssize_t)nseg);
    PyObject *starts = PyList_New((Py_ssize_t)nseg);
    if (!valid || !starts) {
        Py_XDECREF(valid);
        Py_XDECREF(starts);
        return NULL;
    }
    for (size_t i = 0; i < nseg; i++) {
        PyList_SET_ITEM(valid, (Py_ssize_t)i, PyLong_FromLong(mt3_features_valid_frames(p, (size_t)n, i)));
        PyList_SET_ITEM(starts, (Py_ssize_t)i, PyFloat_FromDouble(mt3_features_segment_start(p, i)));
    }
    return Py_BuildValue("{s:s,s:n,s:i,s:i,s:i,s:i,s:d,s:N,s:N}", "preset", in->name,
                         "n_segments", (Py_ssize_t)nseg, "n_frames", in->n_frames, "n_bins",
                         in->n_bins, "hop", in->hop, "segment_samples", in->segment_samples,
                         "segment_seconds", in->segment_seconds, "valid_frames", valid,
                         "segment_starts", starts);
}

static PyObject *py_check_sample_rate(PyObject *self, PyObject *sr_o)
{
    (void)self;
    int sr;
    if (mt3py_parse_sr(sr_o, &sr) < 0)
        return NULL;
    return PyLong_FromLong(sr);
}

/* check_audio(audio): the C front end's validation (dtype, shape, empty,
 * channels-first, too many channels, NaN/Inf) without mixing or resampling. */
static PyObject *py_check_audio(PyObject *self, PyObject *audio)
{
    (void)self;
    mt3_audio_view v;
    PyArrayObject *keep = NULL;
    if (mt3py_audio_view(audio, &v, &keep) < 0)
        return NULL;
    mt3_error err;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = mt3_audio_validate(&v, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(keep);
    if (rc != MT3_OK)
        return mt3py_raise(&err);
    Py_RETURN_NONE;
}

static PyMethodDef feature_methods[] = {
    {"check_audio", (PyCFunction)py_check_audio, METH_O,
     "check_audio(audio) -> None; AudioError naming the problem (dtype, shape, empty, "
     "channels-first, NaN/Inf) exactly as the adapters' native front end would"},
    {"check_sample_rate", (PyCFunction)py_check_sample_rate, METH_O,
     "check_sample_rate(sr) -> int; AudioError unless sr is an int in "
     "AUDIO_MIN_SR..AUDIO_MAX_SR"},
    {"compute_features", (PyCFunction)(void (*)(void))py_compute_features,
     METH_VARARGS | METH_KEYWORDS,
     "compute_features(audio, sr=16000, preset='mt3_pytorch', num_threads=1, resampler=None, "
     "stage='final', segment_range=None) -> float32 ndarray (segments, frames, bins)"},
    {"resample", (PyCFunction)(void (*)(void))py_resample, METH_VARARGS | METH_KEYWORDS,
     "resample(audio, sr, method='soxr_hq') -> float32 16 kHz mono ndarray"},
    {"feature_layout", (PyCFunction)(void (*)(void))py_feature_layout,
     METH_VARARGS | METH_KEYWORDS,
     "feature_layout(n_samples, preset) -> dict with n_segments, n_frames, n_bins, hop, "
     "segment_samples, segment_seconds, valid_frames, segment_starts"},
    {NULL, NULL, 0, NULL},
};

int mt3py_register_features(PyObject *m)
{
    PyObject *max_out = PyLong_FromSize_t(MT3_AUDIO_MAX_OUT);
    int bad = !max_out || PyModule_AddObjectRef(m, "AUDIO_MAX_SAMPLES_16K", max_out) < 0;
    Py_XDECREF(max_out);
    PyObject *presets = PyTuple_New(MT3_PRESET_COUNT);
    for (int i = 0; presets && i < MT3_PRESET_COUNT; i++) {
        PyObject *u = PyUnicode_FromString(mt3_preset_get_info((mt3_preset)i)->name);
        if (!u) {
            Py_CLEAR(presets);
            break;
        }
        PyTuple_SET_ITEM(presets, i, u);
    }
    bad = bad || !presets || PyModule_AddObjectRef(m, "PRESETS", presets) < 0; /* the C table's names */
    Py_XDECREF(presets);
    if (bad || PyModule_AddIntConstant(m, "AUDIO_MIN_SR", MT3_AUDIO_MIN_SR) < 0 ||
        PyModule_AddIntConstant(m, "AUDIO_MAX_SR", MT3_AUDIO_MAX_SR) < 0 ||
        PyModule_AddIntConstant(m, "AUDIO_MAX_CHANNELS", MT3_AUDIO_MAX_CHANNELS) < 0)
        return -1;
    return PyModule_AddFunctions(m, feature_methods);
}
