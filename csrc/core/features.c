/* Spectrogram presets (see features.h). */
#include "core/features.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kiss_fftr.h>

#define NFFT 2048
#define NSPEC (NFFT / 2 + 1) /* 1025 one-sided bins */
#define N_MELS 512
#define MT3_HOP 128
#define MT3_SEG 32768                /* 256 hops */
#define MT3_SEG_512 65536            /* 512 hops (mt3_reference_512) */
#define END_PAD 1920                 /* 2048 + 128*255 - 32768 */
#define CENTER_PAD (NFFT / 2)        /* reflect padding of center=True */
#define SEG_BUF (MT3_SEG_512 + 2 * CENTER_PAD) /* the longest segment and its padding */
#define MEL_MAX_NNZ 16384
#define MAX_THREADS 64

static const mt3_preset_info INFO[MT3_PRESET_COUNT] = {
    [MT3_PRESET_MR_MT3] = {.name = "mr_mt3", .sample_rate = 16000, .n_fft = NFFT, .hop = MT3_HOP,
                           .segment_samples = MT3_SEG, .n_frames = 256, .n_bins = N_MELS,
                           .segment_seconds = 2.048, .resampler = MT3_RESAMPLE_SINC},
    [MT3_PRESET_MT3_PYTORCH] = {.name = "mt3_pytorch", .sample_rate = 16000, .n_fft = NFFT, .hop = MT3_HOP,
                                .segment_samples = MT3_SEG, .n_frames = 257, .n_bins = N_MELS,
                                .segment_seconds = 2.048, .resampler = MT3_RESAMPLE_SOXR_HQ},
    [MT3_PRESET_MT3_REFERENCE] = {.name = "mt3_reference", .sample_rate = 16000, .n_fft = NFFT,
                                  .hop = MT3_HOP, .segment_samples = MT3_SEG, .n_frames = 256,
                                  .n_bins = N_MELS, .segment_seconds = 2.048,
                                  .resampler = MT3_RESAMPLE_SOXR_HQ},
    [MT3_PRESET_MT3_REFERENCE_512] = {.name = "mt3_reference_512", .sample_rate = 16000, .n_fft = NFFT,
                                      .hop = MT3_HOP, .segment_samples = MT3_SEG_512, .n_frames = 512,
                                      .n_bins = N_MELS, .segment_seconds = 4.096,
                                      .resampler = MT3_RESAMPLE_SOXR_HQ},
    [MT3_PRESET_YOURMT3] = {.name = "yourmt3", .sample_rate = 16000, .n_fft = NFFT, .hop = 300,
                            .segment_samples = 32767, .n_frames = 110, .n_bins = 1024,
                            .segment_seconds = 32767.0 / 16000.0, .resampler = MT3_RESAMPLE_SINC},
};

static int preset_ok(mt3_preset p)
{
    return (int)p >= 0 && (int)p < MT3_PRESET_COUNT;
}

const mt3_preset_info *mt3_preset_get_info(mt3_preset p)
{
    return preset_ok(p) ? &INFO[p] : NULL;
}

int mt3_preset_from_name(const char *name, mt3_preset *out, mt3_error *err)
{
    if (name)
        for (int i = 0; i < MT3_PRESET_COUNT; i++)
            if (strcmp(name, INFO[i].name) == 0) {
                if (out)
                    *out = (mt3_preset)i;
                return MT3_OK;
            }
    return mt3_error_set(err, MT3_E_VALUE,
                         "unknown feature preset '%s'; valid presets: mr_mt3, mt3_pytorch, "
                         "mt3_reference, yourmt3, mt3_reference_512",
                         name ? name : "(null)");
}

/* ---- segmentation ------------------------------------------------------ */

/* Hops per segment of an MT3 preset (256; 512 for mt3_reference_512). */
static size_t seg_hops(mt3_preset p)
{
    return (size_t)INFO[p].segment_samples / MT3_HOP;
}

/* Number of 128-sample hops the preset frames N samples into. */
static size_t mt3_hops(mt3_preset p, size_t n)
{
    if (n == 0)
        return 0;
    if (p == MT3_PRESET_MR_MT3)
        return n / MT3_HOP;   /* trailing partial hop dropped */
    return n / MT3_HOP + 1;   /* padded with 1..128 zeros */
}

size_t mt3_features_num_segments(mt3_preset p, size_t n)
{
    if (!preset_ok(p) || n == 0)
        return 0;
    if (p == MT3_PRESET_YOURMT3)
        return (n + (size_t)INFO[p].segment_samples - 1) / (size_t)INFO[p].segment_samples;
    size_t f = mt3_hops(p, n);
    return (f + seg_hops(p) - 1) / seg_hops(p);
}

int mt3_features_valid_frames(mt3_preset p, size_t n, size_t seg)
{
    if (seg >= mt3_features_num_segments(p, n))
        return 0;
    if (p == MT3_PRESET_YOURMT3)
        return INFO[p].n_frames;
    size_t f = mt3_hops(p, n) - seg * seg_hops(p);
    return f < seg_hops(p) ? (int)f : (int)seg_hops(p);
}

double mt3_features_segment_start(mt3_preset p, size_t seg)
{
    if (p == MT3_PRESET_YOURMT3)
        return (double)INFO[p].segment_samples * (double)seg / 16000.0;
    if (!preset_ok(p))
        return 0.0;
    return (double)(seg_hops(p) * seg) / 125.0;
}

/* ---- one-time tables ---------------------------------------------------- */

/* Sparse triangular filterbank: band m covers FFT bins start[m] .. start[m]+len[m]-1
 * with weights w[off[m] ...]. */
typedef struct melbank {
    int start[N_MELS], len[N_MELS], off[N_MELS];
    float w[MEL_MAX_NNZ];
    int ok;
} melbank;

static float g_window[NFFT];
static pthread_once_t g_window_once = PTHREAD_ONCE_INIT;
static melbank g_mel[3]; /* mr_mt3, mt3_pytorch, mt3_reference */
static pthread_once_t g_mel_once[3] = {PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT, PTHREAD_ONCE_INIT};

/* torch.hann_window(2048) (periodic) in float32: 0.5 + (-0.5) * cos(n * f32(2pi/2048)),
 * the angle rounded in float32 as torch does.  The cosine is taken in double and
 * rounded once, so the table is the same on every CPU (glibc's cosf has per-CPU
 * FMA/SSE variants that differ in the last bit). */
static void init_window(void)
{
    const float step = (float)(2.0 * M_PI / NFFT);
    for (int i = 0; i < NFFT; i++) {
        const float c = (float)cos((double)((float)i * step));
        g_window[i] = c * -0.5f + 0.5f;
    }
}

/* Store the dense column `col` (NSPEC weights) of band m into the sparse bank. */
static int mel_store(melbank *mb, int m, const float *col, int *nnz)
{
    int lo = -1, hi = -1;
    for (int k = 0; k < NSPEC; k++)
        if (col[k] != 0.0f) {
            if (lo < 0)
                lo = k;
            hi = k;
        }
    mb->off[m] = *nnz;
    if (lo < 0) { /* all-zero band */
        mb->start[m] = 0;
        mb->len[m] = 0;
        return 1;
    }
    int len = hi - lo + 1;
    if (*nnz + len > MEL_MAX_NNZ)
        return 0;
    mb->start[m] = lo;
    mb->len[m] = len;
    memcpy(mb->w + *nnz, col + lo, (size_t)len * sizeof(float));
    *nnz += len;
    return 1;
}

/* torchaudio.functional.melscale_fbanks(1025, 20, f_max, 512, 16000, norm=None,
 * mel_scale="htk"), spec section 2.3: HTK mel edges linspace(mel(20), mel(f_max),
 * 514), triangles in Hz.  Built in double and rounded to float32 once.
 *
 * torchaudio itself builds the table in float32 (float32 linspace, float32
 * powf, float32 slopes).  That table is ill-conditioned: one float32 ulp of an
 * edge near 8 kHz (4.9e-4 Hz) over a 42 Hz edge spacing moves a weight by
 * 1.2e-5, and the exact rounding sequence depends on the torch build and on
 * the CPU's pow/linspace code paths (up to ~6e-5 per entry between variants).
 * Emulating one variant therefore matches none of them; the double table is
 * the one every float32 variant scatters around, so it is both the closest to
 * the float64 definition (0.5 ulp per entry) and, on average, to whatever a
 * given torch computes.  The zero bands (1 and 10 for f_max 7600, 1 and 16 for
 * 8000) and the ~100 single-bin bands come out the same as in every float32
 * variant: the nearest bin lies 1.9e-3 Hz from an interior edge. */
static void build_torchaudio_bank(melbank *mb, double f_max)
{
    const double m_min = 2595.0 * log10(1.0 + 20.0 / 700.0);
    const double m_max = 2595.0 * log10(1.0 + f_max / 700.0);
    double f_pts[N_MELS + 2];
    float col[NSPEC];
    for (int i = 0; i < N_MELS + 2; i++) {
        double m = i == N_MELS + 1 ? m_max : m_min + (m_max - m_min) * (double)i / (N_MELS + 1);
        f_pts[i] = 700.0 * (pow(10.0, m / 2595.0) - 1.0);
    }
    int nnz = 0, ok = 1;
    for (int m = 0; m < N_MELS && ok; m++) {
        const double lo = f_pts[m], c = f_pts[m + 1], hi = f_pts[m + 2];
        for (int k = 0; k < NSPEC; k++) {
            const double f = 8000.0 * (double)k / (double)(NSPEC - 1); /* exact: k * 7.8125 */
            double up = (f - lo) / (c - lo), down = (hi - f) / (hi - c);
            double v = up < down ? up : down;
            col[k] = v > 0.0 ? (float)v : 0.0f;
        }
        ok = mel_store(mb, m, col, &nnz);
    }
    mb->ok = ok;
}

static double tf_hz_to_mel(double f)
{
    return 1127.0 * log(1.0 + f / 700.0);
}

/* tf.signal.linear_to_mel_weight_matrix(512, 1025, 16000, 20.0, 7600.0): mel
 * = 1127 ln(1 + f/700), triangles in the mel domain over the mel values of
 * bins 1..1024, edges linspace(mel(20), mel(7600), 514), DC row zero.  Built
 * in double and rounded to float32 once: TF's own float32 arithmetic (about
 * 2e-4 mel of rounding on 5.4-mel-wide bands) is not reproduced. */
static void build_tf_bank(melbank *mb)
{
    const double lo = tf_hz_to_mel(20.0), hi = tf_hz_to_mel(7600.0);
    double edges[N_MELS + 2], bin_mel[NSPEC];
    float col[NSPEC];
    for (int i = 0; i < N_MELS + 2; i++)
        edges[i] = lo + (hi - lo) * (double)i / (double)(N_MELS + 1);
    edges[N_MELS + 1] = hi;
    for (int k = 0; k < NSPEC; k++)
        bin_mel[k] = tf_hz_to_mel(8000.0 * (double)k / (double)(NSPEC - 1));
    int nnz = 0, ok = 1;
    for (int m = 0; m < N_MELS && ok; m++) {
        col[0] = 0.0f; /* bands_to_zero = 1: the DC row */
        for (int k = 1; k < NSPEC; k++) {
            double lower = (bin_mel[k] - edges[m]) / (edges[m + 1] - edges[m]);
            double upper = (edges[m + 2] - bin_mel[k]) / (edges[m + 2] - edges[m + 1]);
            double v = lower < upper ? lower : upper;
            col[k] = v > 0.0 ? (float)v : 0.0f;
        }
        ok = mel_store(mb, m, col, &nnz);
    }
    mb->ok = ok;
}

static void init_mel_mr(void)
{
    build_torchaudio_bank(&g_mel[MT3_PRESET_MR_MT3], 7600.0);
}
static void init_mel_pt(void)
{
    build_torchaudio_bank(&g_mel[MT3_PRESET_MT3_PYTORCH], 8000.0);
}
static void init_mel_ref(void)
{
    build_tf_bank(&g_mel[MT3_PRESET_MT3_REFERENCE]);
}

/* Build (once) what preset p needs; returns its mel bank or NULL (yourmt3). */
static const melbank *preset_tables(mt3_preset p, mt3_error *err, int *rc)
{
    static void (*const init[3])(void) = {init_mel_mr, init_mel_pt, init_mel_ref};
    *rc = MT3_OK;
    pthread_once(&g_window_once, init_window);
    if (p == MT3_PRESET_YOURMT3)
        return NULL;
    if (p == MT3_PRESET_MT3_REFERENCE_512)
        p = MT3_PRESET_MT3_REFERENCE; /* the same filterbank, longer segments */
    pthread_once(&g_mel_once[p], init[p]);
    if (!g_mel[p].ok)
        *rc = mt3_error_set(err, MT3_E_INTERNAL, "mel filterbank for %s exceeds its table",
                            INFO[p].name);
    return &g_mel[p];
}

/* ---- per-segment computation ------------------------------------------- */

typedef struct worker {
    kiss_fftr_cfg cfg;
    float *xp; /* padded segment, SEG_BUF floats */
    float frame[NFFT];
    kiss_fft_cpx spec[NSPEC];
    double pw[NSPEC];   /* |X|^2, then |X| where the preset wants magnitude */
    double mel[N_MELS];
} worker;

static worker *worker_new(void)
{
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->cfg = kiss_fftr_alloc(NFFT, 0, NULL, NULL);
    w->xp = calloc(SEG_BUF, sizeof *w->xp);
    if (!w->cfg || !w->xp) {
        if (w->cfg)
            kiss_fftr_free(w->cfg);
        free(w->xp);
        free(w);
        return NULL;
    }
    return w;
}

static void worker_free(worker *w)
{
    if (!w)
        return;
    kiss_fftr_free(w->cfg);
    free(w->xp);
    free(w);
}

/* Windowed frame at src -> w->spec.  Everything after the FFT runs in double
 * and is rounded to float32 once per output value: |X|^2 = re^2 + im^2 exactly
 * (two float32 squares are exact in double), |X| and the mel sums with one
 * double rounding each, ln with glibc's double log (correctly rounded in
 * practice on every x86-64 code path, unlike the float variants that differ
 * by an ulp between the FMA and SSE paths).  The float32 error that is left
 * is the FFT's (kissfft, ~1e-7 of the frame norm) and the window's. */
static void frame_power(worker *w, const float *src)
{
    for (int i = 0; i < NFFT; i++)
        w->frame[i] = src[i] * g_window[i];
    kiss_fftr(w->cfg, w->frame, w->spec);
    for (int k = 0; k < NSPEC; k++) {
        const double re = w->spec[k].r, im = w->spec[k].i;
        w->pw[k] = re * re + im * im;
    }
}

static void apply_mel(const melbank *mb, const double *v, double *row)
{
    for (int m = 0; m < N_MELS; m++) {
        const float *wt = mb->w + mb->off[m];
        const double *x = v + mb->start[m];
        double acc = 0.0;
        for (int j = 0; j < mb->len[m]; j++)
            acc += (double)wt[j] * x[j];
        row[m] = acc;
    }
}

static void compute_segment(worker *w, mt3_preset p, const melbank *mb, const float *x, size_t n,
                            size_t seg, mt3_feature_stage stage, float *out)
{
    const mt3_preset_info *in = &INFO[p];
    const size_t L = (size_t)in->segment_samples;
    const int valid = mt3_features_valid_frames(p, n, seg);
    const int centered = p == MT3_PRESET_MT3_PYTORCH || p == MT3_PRESET_YOURMT3;
    /* samples that exist in the framed signal; beyond them the preset sees zeros */
    const size_t avail = p == MT3_PRESET_MR_MT3 ? mt3_hops(p, n) * MT3_HOP : n;
    const size_t begin = seg * L;
    const size_t have = avail > begin ? (avail - begin < L ? avail - begin : L) : 0;
    float *s = w->xp + (centered ? CENTER_PAD : 0);
    if (have)
        memcpy(s, x + begin, have * sizeof *s);
    memset(s + have, 0, (L - have) * sizeof *s);
    if (centered) {
        for (int i = 1; i <= CENTER_PAD; i++) {
            s[-i] = s[i];                          /* xp[1024 - i] = x[i] */
            s[L - 1 + (size_t)i] = s[L - 1 - (size_t)i]; /* mirror about the last sample */
        }
    } else {
        memset(s + L, 0, END_PAD * sizeof *s);
    }

    const int nb = in->n_bins;
    const int lin = stage == MT3_STAGE_LINEAR;
    /* the floors are the anchor's float32 constants, added in double */
    const double floor_mr = (double)1e-5f, eps_pt = (double)1e-6f, eps_y = (double)1e-5f;
    for (int t = 0; t < in->n_frames; t++) {
        float *row = out + (size_t)t * (size_t)nb;
        if (p != MT3_PRESET_YOURMT3 && t >= valid) {
            memset(row, 0, (size_t)nb * sizeof *row);
            continue;
        }
        frame_power(w, w->xp + (size_t)t * (size_t)in->hop);
        switch (p) {
        case MT3_PRESET_MR_MT3:
        case MT3_PRESET_MT3_REFERENCE:
        case MT3_PRESET_MT3_REFERENCE_512:
            for (int k = 0; k < NSPEC; k++)
                w->pw[k] = sqrt(w->pw[k]);
            apply_mel(mb, w->pw, w->mel);
            for (int m = 0; m < nb; m++) {
                const float v = (float)w->mel[m];
                /* safe_log: values <= 0 (in float32, as the anchor sees them) -> 1e-5 */
                row[m] = lin ? v : (float)log(v <= 0.0f ? floor_mr : w->mel[m]);
            }
            break;
        case MT3_PRESET_MT3_PYTORCH:
            apply_mel(mb, w->pw, w->mel);
            for (int m = 0; m < nb; m++)
                row[m] = lin ? (float)w->mel[m] : (float)log(w->mel[m] + eps_pt);
            break;
        case MT3_PRESET_YOURMT3:
            for (int k = 0; k < nb; k++) {
                const double mag = sqrt(w->pw[k + 1]);
                row[k] = lin ? (float)mag : (float)log(mag + eps_y);
            }
            break;
        }
    }

    if (p == MT3_PRESET_YOURMT3 && stage == MT3_STAGE_FINAL) {
        const size_t total = (size_t)in->n_frames * (size_t)nb;
        float lo = out[0], hi = out[0];
        int has_nan = 0;
        for (size_t i = 0; i < total; i++) {
            float v = out[i];
            if (isnan(v))
                has_nan = 1;
            if (v < lo)
                lo = v;
            if (v > hi)
                hi = v;
        }
        if (has_nan) { /* torch min/max propagate NaN: the whole segment becomes NaN -> 0 */
            memset(out, 0, total * sizeof *out);
            return;
        }
        /* (S - min) / (max - min + 0.008) in double, rounded once */
        const double denom = ((double)hi - (double)lo) + (double)0.008f;
        for (size_t i = 0; i < total; i++) {
            float v = (float)(((double)out[i] - (double)lo) / denom);
            if (isnan(v))
                v = 0.0f;
            else if (isinf(v))
                v = v > 0 ? FLT_MAX : -FLT_MAX;
            out[i] = v;
        }
    }
}

/* ---- drivers ------------------------------------------------------------ */

typedef struct job {
    mt3_preset p;
    const melbank *mb;
    const float *x;
    size_t n, seg_begin, seg_end;
    mt3_feature_stage stage;
    float *out;
    size_t seg_floats;
    int stride, first; /* this thread handles segments seg_begin + first + k*stride */
    int rc;
} job;

static void *run_job(void *arg)
{
    job *j = arg;
    worker *w = worker_new();
    if (!w) {
        j->rc = MT3_E_NOMEM;
        return NULL;
    }
    for (size_t s = j->seg_begin + (size_t)j->first; s < j->seg_end; s += (size_t)j->stride)
        compute_segment(w, j->p, j->mb, j->x, j->n, s, j->stage,
                        j->out + (s - j->seg_begin) * j->seg_floats);
    worker_free(w);
    j->rc = MT3_OK;
    return NULL;
}

int mt3_features_compute_range(mt3_preset p, const float *mono16k, size_t n, size_t seg_begin,
                               size_t seg_end, mt3_feature_stage stage, int num_threads,
                               float *out, int *valid_frames, mt3_error *err)
{
    if (!preset_ok(p))
        return mt3_error_set(err, MT3_E_VALUE, "unknown feature preset %d", (int)p);
    if (stage != MT3_STAGE_FINAL && stage != MT3_STAGE_LOG && stage != MT3_STAGE_LINEAR)
        return mt3_error_set(err, MT3_E_VALUE, "unknown feature stage %d", (int)stage);
    const size_t total = mt3_features_num_segments(p, n);
    if (seg_begin > seg_end || seg_end > total)
        return mt3_error_set(err, MT3_E_VALUE,
                             "segment range [%zu, %zu) outside the %zu segments of %zu samples",
                             seg_begin, seg_end, total, n);
    if (seg_begin == seg_end)
        return MT3_OK;
    if (!mono16k || !out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_features_compute_range: NULL buffer");
    int rc;
    const melbank *mb = preset_tables(p, err, &rc);
    if (rc != MT3_OK)
        return rc;
    if (valid_frames)
        for (size_t s = seg_begin; s < seg_end; s++)
            valid_frames[s - seg_begin] = mt3_features_valid_frames(p, n, s);

    const size_t nseg = seg_end - seg_begin;
    int nt = num_threads < 1 ? 1 : num_threads > MAX_THREADS ? MAX_THREADS : num_threads;
    if ((size_t)nt > nseg)
        nt = (int)nseg;
    job jobs[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    int started[MAX_THREADS] = {0};
    for (int t = 0; t < nt; t++) {
        jobs[t] = (job){p, mb, mono16k, n, seg_begin, seg_end, stage, out,
                        (size_t)INFO[p].n_frames * (size_t)INFO[p].n_bins, nt, t, MT3_OK};
    }
    /* extra threads for 1..nt-1; the calling thread runs job 0.  If a thread
     * cannot start, the calling thread runs its share afterwards. */
    for (int t = 1; t < nt; t++)
        started[t] = pthread_create(&tid[t], NULL, run_job, &jobs[t]) == 0;
    run_job(&jobs[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            run_job(&jobs[t]);
    }
    for (int t = 0; t < nt; t++)
        if (jobs[t].rc != MT3_OK)
            return mt3_error_set(err, jobs[t].rc, "out of memory (FFT work buffers)");
    return MT3_OK;
}

void mt3_features_free(mt3_features *f)
{
    if (!f)
        return;
    free(f->data);
    free(f->valid_frames);
    memset(f, 0, sizeof *f);
}

int mt3_features_compute_ex(mt3_preset p, const float *mono16k, size_t n, int num_threads,
                            mt3_feature_stage stage, mt3_features *out, mt3_error *err)
{
    if (!out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_features_compute: NULL output");
    memset(out, 0, sizeof *out);
    if (!preset_ok(p))
        return mt3_error_set(err, MT3_E_VALUE, "unknown feature preset %d", (int)p);
    const mt3_preset_info *in = &INFO[p];
    const size_t nseg = mt3_features_num_segments(p, n);
    const size_t seg_floats = (size_t)in->n_frames * (size_t)in->n_bins;
    if (nseg > (size_t)INT_MAX || nseg > SIZE_MAX / sizeof(float) / seg_floats)
        return mt3_error_set(err, MT3_E_AUDIO, "audio too long: %zu samples give %zu segments", n,
                             nseg);
    out->n_frames = in->n_frames;
    out->n_bins = in->n_bins;
    if (nseg == 0)
        return MT3_OK;
    out->data = malloc(nseg * seg_floats * sizeof(float));
    out->valid_frames = malloc(nseg * sizeof(int));
    if (!out->data || !out->valid_frames) {
        mt3_features_free(out);
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory (%zu feature segments of %dx%d)",
                             nseg, in->n_frames, in->n_bins);
    }
    int rc = mt3_features_compute_range(p, mono16k, n, 0, nseg, stage, num_threads, out->data,
                                        out->valid_frames, err);
    if (rc != MT3_OK) {
        mt3_features_free(out);
        return rc;
    }
    out->n_segments = (int)nseg;
    out->n_frames = in->n_frames;
    out->n_bins = in->n_bins;
    return MT3_OK;
}

int mt3_features_compute(mt3_preset p, const float *mono16k, size_t n, mt3_features *out,
                         mt3_error *err)
{
    return mt3_features_compute_ex(p, mono16k, n, 1, MT3_STAGE_FINAL, out, err);
}
