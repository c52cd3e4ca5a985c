/* Audio file I/O bindings: the C WAV reader (csrc/core/wav.h).
 *
 *   _core.read_wav(path, mono=False) -> (float32 ndarray (frames, channels) or (frames,), sample_rate)
 *   _core.load_wav_16k(path, method="sinc") -> (float32 (n,) at 16 kHz, the file's rate): read,
 *                             mix and resample in one native pass (mt3_audio_load_wav)
 *   _core.decode_wav(buffer)  -> same as read_wav, from an in-memory WAV image
 *   _core.wav_info(path)      -> dict(sample_rate, channels, frames, bits,
 *                                     encoding ("int"/"float"), format_tag)
 * Errors: mt3_infer.AudioError (also a ValueError) naming the problem.
 */
#include "python/py_common.h"


#include "core/audio.h"
#include "core/wav.h"

/* Decode everything behind an opened reader into a new array (GIL released
 * around the native work). */
static PyObject *read_all(mt3_wav_reader *r, const mt3_wav_info *info, int mono)
{
    npy_intp dims[2] = {(npy_intp)info->frames, (npy_intp)info->channels};
    PyObject *arr = PyArray_SimpleNew(mono ? 1 : 2, dims, NPY_FLOAT32);
    if (!arr)
        return NULL;
    mt3_error err;
    mt3_error_clear(&err);
    int st;
    float *dst = (float *)PyArray_DATA((PyArrayObject *)arr);
    Py_BEGIN_ALLOW_THREADS
    st = mono ? mt3_wav_read_mono(r, info, dst, &err) : mt3_wav_read(r, info, dst, &err);
    Py_END_ALLOW_THREADS
    if (st != MT3_OK) {
        Py_DECREF(arr);
        return mt3py_raise(&err);
    }
    PyObject *out = Py_BuildValue("(Nk)", arr, (unsigned long)info->sample_rate);
    return out;
}

static PyObject *py_read_wav(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "mono", NULL};
    PyObject *bytes_path = NULL;
    int mono = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|p", kwlist, PyUnicode_FSConverter, &bytes_path, &mono))
        return NULL;
    const char *path = PyBytes_AS_STRING(bytes_path);
    mt3_wav_reader r;
    mt3_wav_info info;
    mt3_error err;
    mt3_error_clear(&err);
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = mt3_wav_open_file(&r, path, &info, &err);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (st != MT3_OK)
        mt3py_raise(&err);
    else
        out = read_all(&r, &info, mono);
    mt3_wav_close(&r);
    Py_DECREF(bytes_path);
    return out;
}

static PyObject *py_load_wav_16k(PyObject *self, PyObject *args, PyObject *kw)
{
    (void)self;
    static char *kwlist[] = {"path", "method", NULL};
    PyObject *bytes_path = NULL, *method = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O&|O", kwlist, PyUnicode_FSConverter, &bytes_path, &method))
        return NULL;
    mt3_resampler rs;
    if (mt3py_parse_resampler(method, 1, MT3_RESAMPLE_SINC, &rs) < 0) {
        Py_DECREF(bytes_path);
        return NULL;
    }
    mt3_error err;
    mt3_error_clear(&err);
    float *out = NULL;
    size_t n = 0;
    int sr_in = 0, st;
    const char *path = PyBytes_AS_STRING(bytes_path);
    Py_BEGIN_ALLOW_THREADS
    st = mt3_audio_load_wav(path, rs, &out, &n, &sr_in, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(bytes_path);
    if (st != MT3_OK)
        return mt3py_raise(&err);
    npy_intp dims[1] = {(npy_intp)n};
    PyObject *arr = mt3py_wrap_floats(out, 1, dims);
    return arr ? Py_BuildValue("(Ni)", arr, sr_in) : NULL;
}

static PyObject *py_decode_wav(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    mt3_wav_reader r;
    mt3_wav_info info;
    mt3_error err;
    mt3_error_clear(&err);
    int st;
    Py_BEGIN_ALLOW_THREADS
    st = mt3_wav_open_memory(&r, view.buf, (uint64_t)view.len, &info, &err);
    Py_END_ALLOW_THREADS
    PyObject *out = NULL;
    if (st != MT3_OK)
        mt3py_raise(&err);
    else
        out = read_all(&r, &info, 0);
    mt3_wav_close(&r);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *py_wav_info(PyObject *self, PyObject *arg)
{
    (void)self;
    PyObject *bytes_path = NULL;
    if (!PyUnicode_FSConverter(arg, &bytes_path))
        return NULL;
    mt3_wav_reader r;
    mt3_wav_info info;
    mt3_error err;
    mt3_error_clear(&err);
    int st;
    const char *path = PyBytes_AS_STRING(bytes_path);
    Py_BEGIN_ALLOW_THREADS
    st = mt3_wav_open_file(&r, path, &info, &err);
    Py_END_ALLOW_THREADS
    mt3_wav_close(&r);
    Py_DECREF(bytes_path);
    if (st != MT3_OK)
        return mt3py_raise(&err);
    return Py_BuildValue("{s:k,s:i,s:K,s:i,s:s,s:i}", "sample_rate", (unsigned long)info.sample_rate,
                         "channels", info.channels, "frames", (unsigned long long)info.frames, "bits",
                         info.bits, "encoding", info.encoding == MT3_WAV_FLOAT ? "float" : "int",
                         "format_tag", info.format_tag);
}

static PyMethodDef io_methods[] = {
    {"read_wav", (PyCFunction)(void (*)(void))py_read_wav, METH_VARARGS | METH_KEYWORDS,
     "read_wav(path, mono=False) -> (float32 ndarray of shape (frames, channels), sample_rate)\n\n"
     "mono=True: the channel mean per frame, shape (frames,), mixed while reading (the file\n"
     "is never held at its channel count).\n"
     "Read a RIFF/WAVE or RF64 file: integer PCM 8/16/24/32-bit or IEEE float 32/64-bit,\n"
     "plain or WAVE_FORMAT_EXTENSIBLE, any channel count.  Raises AudioError."},
    {"load_wav_16k", (PyCFunction)(void (*)(void))py_load_wav_16k, METH_VARARGS | METH_KEYWORDS,
     "load_wav_16k(path, method='sinc') -> (float32 (n,), the file's rate): the WAV file read, mixed to "
     "mono block by block and resampled to 16 kHz in one native call (GIL released)"},
    {"decode_wav", py_decode_wav, METH_O,
     "decode_wav(buffer) -> (float32 ndarray (frames, channels), sample_rate) from WAV bytes."},
    {"wav_info", py_wav_info, METH_O,
     "wav_info(path) -> dict with sample_rate, channels, frames, bits, encoding, format_tag."},
    {NULL, NULL, 0, NULL},
};

int mt3py_register_io(PyObject *m)
{
    return PyModule_AddFunctions(m, io_methods);
}
