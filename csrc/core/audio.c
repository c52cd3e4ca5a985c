/* Audio conditioning: validation, mono mix, resampling to 16 kHz (see audio.h). */
#include "core/audio.h"

#include "core/wav.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <soxr.h>

/* Input samples handled per chunk by the streaming resamplers. */
#define CHUNK_SAMPLES 65536
/* Largest sinc kernel (floats) accepted: 64 MB.  Common rates need < 1 MB;
 * rates sharing only a tiny gcd with 16000 (e.g. 44101 Hz) would need GBs. */
#define SINC_MAX_KERNEL ((size_t)16 << 20)

const char *mt3_sample_type_name(mt3_sample_type t)
{
    switch (t) {
    case MT3_SAMPLE_F32:
        return "float32";
    case MT3_SAMPLE_F64:
        return "float64";
    case MT3_SAMPLE_I16:
        return "int16";
    case MT3_SAMPLE_I32:
        return "int32";
    }
    return "unknown";
}

int mt3_audio_check_sr(long long sr, mt3_error *err)
{
    if (sr <= 0)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "sample rate must be a positive integer number of Hz, got %lld; pass "
                             "the rate of the audio (%d..%d Hz), e.g. 44100",
                             sr, MT3_AUDIO_MIN_SR, MT3_AUDIO_MAX_SR);
    if (sr < MT3_AUDIO_MIN_SR)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "sample rate %lld Hz is implausibly small (accepted %d..%d Hz): below "
                             "%d Hz no musical content survives and resampling to 16 kHz would "
                             "stretch the audio %lldx; pass the rate of the audio in Hz, e.g. 44100",
                             sr, MT3_AUDIO_MIN_SR, MT3_AUDIO_MAX_SR, MT3_AUDIO_MIN_SR,
                             (MT3_AUDIO_TARGET_SR + sr - 1) / sr);
    if (sr > MT3_AUDIO_MAX_SR)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "sample rate %lld Hz is implausibly large (accepted %d..%d Hz); pass "
                             "the rate of the audio in Hz, e.g. 44100",
                             sr, MT3_AUDIO_MIN_SR, MT3_AUDIO_MAX_SR);
    return MT3_OK;
}

/* ---- sample access ---------------------------------------------------- */

static inline const char *sample_ptr(const mt3_audio_view *v, size_t i, size_t c)
{
    return (const char *)v->data + (ptrdiff_t)i * v->sample_stride +
           (ptrdiff_t)c * v->channel_stride;
}

static inline double read_f32(const char *p)
{
    float x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline double read_f64(const char *p)
{
    double x;
    memcpy(&x, p, sizeof x);
    return x;
}
static inline double read_i16(const char *p)
{
    int16_t x;
    memcpy(&x, p, sizeof x);
    return (double)x / 32768.0;
}
static inline double read_i32(const char *p)
{
    int32_t x;
    memcpy(&x, p, sizeof x);
    return (double)x / 2147483648.0;
}

/* Mono mix of [begin, begin+count) into double; for float32 input the mean is
 * rounded to float32 (the anchor's cast back to the input dtype). */
static void mix_chunk(const mt3_audio_view *v, size_t begin, size_t count, double *out)
{
    const size_t nc = v->n_channels ? v->n_channels : 1;
    const double dn = (double)nc;
#define MIX_LOOP(READ)                                                                             \
    for (size_t k = 0; k < count; k++) {                                                           \
        const char *p = sample_ptr(v, begin + k, 0);                                               \
        double s = READ(p);                                                                        \
        for (size_t c = 1; c < nc; c++)                                                            \
            s += READ(p + (ptrdiff_t)c * v->channel_stride);                                       \
        out[k] = nc == 1 ? s : s / dn;                                                              \
    }
    switch (v->type) {
    case MT3_SAMPLE_F32:
        MIX_LOOP(read_f32)
        if (nc > 1)
            for (size_t k = 0; k < count; k++)
                out[k] = (float)out[k];
        break;
    case MT3_SAMPLE_F64:
        MIX_LOOP(read_f64)
        break;
    case MT3_SAMPLE_I16:
        MIX_LOOP(read_i16)
        break;
    case MT3_SAMPLE_I32:
        MIX_LOOP(read_i32)
        break;
    }
#undef MIX_LOOP
}

void mt3_audio_mix_mono(const mt3_audio_view *in, size_t begin, size_t count, float *out)
{
    double buf[1024];
    while (count > 0) {
        size_t m = count < 1024 ? count : 1024;
        mix_chunk(in, begin, m, buf);
        for (size_t k = 0; k < m; k++)
            out[k] = (float)buf[k];
        out += m;
        begin += m;
        count -= m;
    }
}

/* ---- validation -------------------------------------------------------- */

int mt3_audio_validate(const mt3_audio_view *in, mt3_error *err)
{
    if (!in || !in->data)
        return mt3_error_set(err, MT3_E_AUDIO, "audio buffer is NULL");
    if (in->type != MT3_SAMPLE_F32 && in->type != MT3_SAMPLE_F64 && in->type != MT3_SAMPLE_I16 &&
        in->type != MT3_SAMPLE_I32)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "unsupported sample type %d; use float32, float64, int16 or int32",
                             (int)in->type);
    if (in->n_channels == 0)
        return mt3_error_set(err, MT3_E_AUDIO, "audio has 0 channels (shape (%zu, 0)); pass "
                             "(n_samples,) or (n_samples, n_channels)", in->n_samples);
    if (in->n_samples == 0)
        return mt3_error_set(err, MT3_E_AUDIO, "audio is empty (0 samples)");
    if (in->n_channels > 1 && in->n_channels > in->n_samples)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "audio of shape (%zu, %zu) looks channels-first (%zu channels of %zu "
                             "samples, as librosa/torchaudio return); arrays are (n_samples, "
                             "n_channels), samples first: pass audio.T (or a 1-D mono array)",
                             in->n_samples, in->n_channels, in->n_samples, in->n_channels);
    if (in->n_channels > MT3_AUDIO_MAX_CHANNELS)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "audio of shape (%zu, %zu) has %zu channels (limit %d); arrays are "
                             "(n_samples, n_channels): if yours is (n_channels, n_samples), pass "
                             "audio.T, else mix it down to mono first",
                             in->n_samples, in->n_channels, in->n_channels, MT3_AUDIO_MAX_CHANNELS);
    if (in->type == MT3_SAMPLE_I16 || in->type == MT3_SAMPLE_I32)
        return MT3_OK;
    const int is32 = in->type == MT3_SAMPLE_F32;
    for (size_t i = 0; i < in->n_samples; i++) {
        for (size_t c = 0; c < in->n_channels; c++) {
            const char *p = sample_ptr(in, i, c);
            double x = is32 ? read_f32(p) : read_f64(p);
            if (!isfinite(x)) {
                const char *what = isnan(x) ? "NaN" : (x > 0 ? "+Inf" : "-Inf");
                if (in->n_channels == 1)
                    return mt3_error_set(err, MT3_E_AUDIO,
                                         "audio contains %s at sample %zu; remove or replace "
                                         "non-finite samples (e.g. numpy.nan_to_num)",
                                         what, i);
                return mt3_error_set(err, MT3_E_AUDIO,
                                     "audio contains %s at sample %zu, channel %zu; remove or "
                                     "replace non-finite samples (e.g. numpy.nan_to_num)",
                                     what, i, c);
            }
        }
    }
    return MT3_OK;
}

/* ---- lengths ----------------------------------------------------------- */

static long long gcd_ll(long long a, long long b)
{
    while (b) {
        long long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

size_t mt3_audio_output_length(size_t n, int sr, mt3_resampler rs)
{
    if (sr == MT3_AUDIO_TARGET_SR || n == 0)
        return n;
    if (rs == MT3_RESAMPLE_SOXR_HQ) {
        /* librosa: int(np.ceil(n * (target_sr / orig_sr))), all in double */
        double ratio = (double)MT3_AUDIO_TARGET_SR / (double)sr;
        double len = ceil((double)n * ratio);
        return len >= 18446744073709551615.0 ? SIZE_MAX : (size_t)len;
    }
    long long g = gcd_ll(sr, MT3_AUDIO_TARGET_SR);
    unsigned long long a = (unsigned long long)(sr / g), b = (unsigned long long)(MT3_AUDIO_TARGET_SR / g);
    /* ceil(b*n/a) without overflow: n = q*a + r */
    unsigned long long q = n / a, r = n % a;
    return (size_t)(q * b + (r * b + a - 1) / a);
}

/* ---- soxr -------------------------------------------------------------- */

static int resample_soxr(const mt3_audio_view *v, int sr, float *out, size_t n_out, mt3_error *err)
{
    const int f32 = v->type == MT3_SAMPLE_F32;
    soxr_io_spec_t io = soxr_io_spec(f32 ? SOXR_FLOAT32_I : SOXR_FLOAT64_I, SOXR_FLOAT32_I);
    soxr_quality_spec_t q = soxr_quality_spec(SOXR_HQ, SOXR_LINEAR_PHASE);
    soxr_runtime_spec_t rt = soxr_runtime_spec(1);
    soxr_error_t e = NULL;
    soxr_t s = soxr_create((double)sr, (double)MT3_AUDIO_TARGET_SR, 1, &e, &io, &q, &rt);
    if (!s || e) {
        if (s)
            soxr_delete(s);
        return mt3_error_set(err, MT3_E_INTERNAL, "libsoxr: cannot create resampler %d -> %d Hz: %s",
                             sr, MT3_AUDIO_TARGET_SR, e ? e : "unknown error");
    }
    double *dbuf = malloc(CHUNK_SAMPLES * sizeof *dbuf);
    float *fbuf = malloc(CHUNK_SAMPLES * sizeof *fbuf);
    if (!dbuf || !fbuf) {
        free(dbuf);
        free(fbuf);
        soxr_delete(s);
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory (resampling buffers)");
    }
    int rc = MT3_OK;
    size_t pos = 0;
    for (size_t i = 0; i < v->n_samples && rc == MT3_OK; i += CHUNK_SAMPLES) {
        size_t m = v->n_samples - i < CHUNK_SAMPLES ? v->n_samples - i : CHUNK_SAMPLES;
        mix_chunk(v, i, m, dbuf);
        const void *src = dbuf;
        if (f32) {
            for (size_t k = 0; k < m; k++)
                fbuf[k] = (float)dbuf[k];
            src = fbuf;
        }
        size_t odone = 0;
        e = soxr_process(s, src, m, NULL, out + pos, n_out - pos, &odone);
        if (e)
            rc = mt3_error_set(err, MT3_E_INTERNAL, "libsoxr: %s", e);
        pos += odone;
    }
    /* flush the filter tail */
    while (rc == MT3_OK && pos < n_out) {
        size_t odone = 0;
        e = soxr_process(s, NULL, 0, NULL, out + pos, n_out - pos, &odone);
        if (e)
            rc = mt3_error_set(err, MT3_E_INTERNAL, "libsoxr: %s", e);
        if (odone == 0)
            break;
        pos += odone;
    }
    /* librosa fix_length: zero-pad whatever soxr did not produce */
    if (rc == MT3_OK && pos < n_out)
        memset(out + pos, 0, (n_out - pos) * sizeof *out);
    free(dbuf);
    free(fbuf);
    soxr_delete(s);
    return rc;
}

/* ---- torchaudio windowed sinc ----------------------------------------- */

/* Kernel of torchaudio.functional._get_sinc_resample_kernel for a float32
 * waveform, reproducing its float32 operation order:
 *   idx = arange(-W, W + a) / a;  t = arange(0, -b, -1)[:, None] / b + idx
 *   t *= base; t = clamp(t, -6, 6); window = cos(t * pi / 6 / 2) ** 2
 *   t *= pi; k = (t == 0 ? 1 : sin(t) / t); k *= window * (base / a)      */
static void sinc_kernel(int a, int b, int W, double base, float *k)
{
    const int taps = 2 * W + a;
    const float af = (float)a, bf = (float)b, basef = (float)base, pif = (float)M_PI;
    const float scale = (float)(base / a);
    for (int j = 0; j < b; j++) {
        const float tj = (float)(-j) / bf;
        for (int m = 0; m < taps; m++) {
            float t = tj + (float)(m - W) / af;
            t = t * basef;
            if (t < -6.0f)
                t = -6.0f;
            if (t > 6.0f)
                t = 6.0f;
            float w = cosf(t * pif / 6.0f / 2.0f);
            w = w * w;
            t = t * pif;
            float v = t == 0.0f ? 1.0f : sinf(t) / t;
            k[(size_t)j * taps + m] = v * (w * scale);
        }
    }
}

static inline float dot_f32(const float *restrict x, const float *restrict h, int n)
{
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++)
            acc[l] += x[i + l] * h[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += x[i] * h[i];
    return s;
}

/* Four dot products of x with consecutive kernel rows (one load of x serves
 * four phases); each result is summed exactly as dot_f32 sums it. */
static inline void dot4_f32(const float *restrict x, const float *restrict h, size_t stride, int n,
                            float *restrict res)
{
    float acc[4][8];
    memset(acc, 0, sizeof acc);
    const float *h0 = h, *h1 = h + stride, *h2 = h + 2 * stride, *h3 = h + 3 * stride;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) {
            const float xv = x[i + l];
            acc[0][l] += xv * h0[i + l];
            acc[1][l] += xv * h1[i + l];
            acc[2][l] += xv * h2[i + l];
            acc[3][l] += xv * h3[i + l];
        }
    for (int r = 0; r < 4; r++) {
        const float *a = acc[r], *hr = h + (size_t)r * stride;
        float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for (int q = i; q < n; q++)
            s += x[q] * hr[q];
        res[r] = s;
    }
}

static int resample_sinc(const mt3_audio_view *v, int sr, float *out, size_t n_out, mt3_error *err)
{
    const long long g = gcd_ll(sr, MT3_AUDIO_TARGET_SR);
    const int a = (int)(sr / g), b = (int)(MT3_AUDIO_TARGET_SR / g);
    const double base = (a < b ? a : b) * 0.99;
    const int W = (int)ceil(6.0 * a / base);
    const int taps = 2 * W + a;
    if ((size_t)b * (size_t)taps > SINC_MAX_KERNEL)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "sample rate %d Hz: the torchaudio-style sinc resampler would need a "
                             "%d x %d kernel (%.0f MB) because gcd(%d, 16000) = %lld; resample with "
                             "soxr_hq instead, or to a common rate first",
                             sr, b, taps, (double)b * taps * 4.0 / 1e6, sr, g);
    /* strides (groups of b outputs) per chunk */
    const size_t K = a >= CHUNK_SAMPLES ? 1 : CHUNK_SAMPLES / (size_t)a;
    const size_t span = K * (size_t)a + (size_t)taps; /* input samples one chunk reads */
    float *kern = malloc((size_t)b * taps * sizeof *kern);
    float *buf = malloc(span * sizeof *buf);
    double *dbuf = malloc(span * sizeof *dbuf);
    if (!kern || !buf || !dbuf) {
        free(kern);
        free(buf);
        free(dbuf);
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory (resampling kernel %d x %d)", b, taps);
    }
    sinc_kernel(a, b, W, base, kern);
    const size_t n = v->n_samples;
    const size_t n_strides = (n_out + (size_t)b - 1) / (size_t)b;
    for (size_t k0 = 0; k0 < n_strides; k0 += K) {
        const size_t kn = n_strides - k0 < K ? n_strides - k0 : K;
        /* buf[i] = x[k0*a - W + i], zero outside [0, n) */
        const long long first = (long long)(k0 * (size_t)a) - W;
        const size_t len = kn * (size_t)a + (size_t)taps - (size_t)a;
        size_t i = 0;
        for (; i < len && first + (long long)i < 0; i++)
            buf[i] = 0.0f;
        size_t lo = (size_t)(first + (long long)i);
        size_t avail = lo < n ? n - lo : 0;
        size_t want = len - i < avail ? len - i : avail;
        if (want) {
            mix_chunk(v, lo, want, dbuf);
            for (size_t q = 0; q < want; q++)
                buf[i + q] = (float)dbuf[q]; /* the waveform is float32 in torchaudio */
            i += want;
        }
        for (; i < len; i++)
            buf[i] = 0.0f;
        for (size_t kk = 0; kk < kn; kk++) {
            const float *x = buf + kk * (size_t)a;
            const size_t o = (k0 + kk) * (size_t)b;
            int j = 0;
            for (; j + 4 <= b && o + (size_t)j + 4 <= n_out; j += 4)
                dot4_f32(x, kern + (size_t)j * taps, (size_t)taps, taps, out + o + j);
            for (; j < b && o + (size_t)j < n_out; j++)
                out[o + j] = dot_f32(x, kern + (size_t)j * taps, taps);
        }
    }
    free(kern);
    free(buf);
    free(dbuf);
    (void)err;
    return MT3_OK;
}

/* ---- entry points ------------------------------------------------------ */

static int resample_view(const mt3_audio_view *in, int sr, mt3_resampler rs, float **mono16k,
                         size_t *n_out, mt3_error *err)
{
    if (rs != MT3_RESAMPLE_SOXR_HQ && rs != MT3_RESAMPLE_SINC)
        return mt3_error_set(err, MT3_E_VALUE, "unknown resampler %d (use soxr_hq or sinc)", (int)rs);
    const size_t n = in->n_samples;
    const size_t m = mt3_audio_output_length(n, sr, rs);
    if (m > MT3_AUDIO_MAX_OUT)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "audio too long: %zu samples at %d Hz would give %zu samples at "
                             "16 kHz (limit %zu = 24 hours of 16 kHz audio); split it into shorter "
                             "pieces",
                             n, sr, m, (size_t)MT3_AUDIO_MAX_OUT);
    float *out = malloc((m ? m : 1) * sizeof *out);
    if (!out)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory (%zu output samples)", m);
    int rc = MT3_OK;
    if (m == 0)
        rc = MT3_OK;
    else if (sr == MT3_AUDIO_TARGET_SR)
        mt3_audio_mix_mono(in, 0, n, out);
    else if (rs == MT3_RESAMPLE_SOXR_HQ)
        rc = resample_soxr(in, sr, out, m, err);
    else
        rc = resample_sinc(in, sr, out, m, err);
    if (rc != MT3_OK) {
        free(out);
        return rc;
    }
    *mono16k = out;
    *n_out = m;
    return MT3_OK;
}

int mt3_audio_prepare(const mt3_audio_view *in, int sr, mt3_resampler rs, float **mono16k,
                      size_t *n_out, mt3_error *err)
{
    if (!mono16k || !n_out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_audio_prepare: NULL output pointer");
    *mono16k = NULL;
    *n_out = 0;
    int rc = mt3_audio_check_sr(sr, err);
    if (rc == MT3_OK)
        rc = mt3_audio_validate(in, err);
    if (rc != MT3_OK)
        return rc;
    return resample_view(in, sr, rs, mono16k, n_out, err);
}

int mt3_audio_resample_mono(const float *x, size_t n, int sr, mt3_resampler rs, float **out,
                            size_t *n_out, mt3_error *err)
{
    if (!out || !n_out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_audio_resample_mono: NULL output pointer");
    *out = NULL;
    *n_out = 0;
    int rc = mt3_audio_check_sr(sr, err);
    if (rc != MT3_OK)
        return rc;
    if (!x && n)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_audio_resample_mono: NULL input");
    static const float dummy = 0.0f;
    mt3_audio_view v = {x ? (const void *)x : (const void *)&dummy, MT3_SAMPLE_F32, n, 1,
                        (ptrdiff_t)sizeof(float), 0};
    return resample_view(&v, sr, rs, out, n_out, err);
}

int mt3_audio_load_wav(const char *path, mt3_resampler rs, float **mono16k, size_t *n_out, int *sr_in,
                       mt3_error *err)
{
    if (!path || !mono16k || !n_out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_audio_load_wav: NULL argument");
    *mono16k = NULL;
    *n_out = 0;
    mt3_wav_reader r;
    mt3_wav_info info;
    int rc = mt3_wav_open_file(&r, path, &info, err);
    if (rc) {
        mt3_wav_close(&r);
        return rc;
    }
    rc = mt3_audio_check_sr((long long)info.sample_rate, err);
    if (sr_in)
        *sr_in = rc ? 0 : (int)info.sample_rate;
    if (rc || info.frames == 0) {
        mt3_wav_close(&r);
        return rc;
    }
    if (info.frames > SIZE_MAX / sizeof(float)) {
        mt3_wav_close(&r);
        return mt3_error_set(err, MT3_E_AUDIO, "WAV file too long (%llu frames)", (unsigned long long)info.frames);
    }
    float *mono = malloc((size_t)info.frames * sizeof *mono);
    if (!mono) {
        mt3_wav_close(&r);
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory for %llu samples", (unsigned long long)info.frames);
    }
    rc = mt3_wav_read_mono(&r, &info, mono, err);
    mt3_wav_close(&r);
    if (rc) {
        free(mono);
        return rc;
    }
    if (info.sample_rate == MT3_AUDIO_TARGET_SR) {
        *mono16k = mono;
        *n_out = (size_t)info.frames;
        return MT3_OK;
    }
    rc = mt3_audio_resample_mono(mono, (size_t)info.frames, (int)info.sample_rate, rs, mono16k, n_out, err);
    free(mono);
    return rc;
}
