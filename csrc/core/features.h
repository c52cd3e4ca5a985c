/* Per-model spectrogram presets: framing, segmentation and features.
 *
 * Input: mono float32 audio at 16 kHz (see core/audio.h).  Output: a batch
 * [n_segments, n_frames, n_bins] of float32, one row per frame (time-major),
 * ready for the encoder.  Facts: specs/mt3-family.md §2, specs/yourmt3.md §2-3.
 *
 *  preset          frames x bins  segment      framing of N samples
 *  mr_mt3          256 x 512      32768 smp    F = floor(N/128) hops (trailing
 *                                              partial hop dropped; N < 128 gives
 *                                              zero segments), S = ceil(F/256)
 *  mt3_pytorch     257 x 512      32768 smp    pad 1..128 zeros: F = floor(N/128)+1,
 *                                              S = ceil(F/256)
 *  mt3_reference   256 x 512      32768 smp    as mt3_pytorch
 *  mt3_reference_512  512 x 512   65536 smp    as mt3_pytorch, S = ceil(F/512)
 *                                              (Magenta's ismir2021 piano model)
 *  yourmt3         110 x 1024     32767 smp    S = ceil(N/32767), zero-padded
 * N = 0 gives zero segments for every preset.
 *
 *  mr_mt3         magnitude STFT (n_fft 2048, hop 128, periodic Hann, frames
 *                 left-aligned after 1920 zeros of end padding), torchaudio HTK
 *                 mel 20-7600 Hz (Hz-domain triangles, float32 linspace), log
 *                 with values <= 0 replaced by 1e-5.
 *  mt3_pytorch    power STFT, centred (reflect padding 1024), mel 20-8000 Hz,
 *                 ln(x + 1e-6).
 *  mt3_reference  magnitude STFT left-aligned as mr_mt3, TensorFlow
 *                 linear_to_mel_weight_matrix (1127 ln mel, mel-domain triangles,
 *                 20-7600 Hz, DC row zero), safe log (<= 0 -> 1e-5).
 *  yourmt3        magnitude STFT hop 300 centred (reflect), bins 1..1024,
 *                 ln(|X| + 1e-5), then per segment (S - min) / (max - min + 0.008);
 *                 NaN -> 0, +-Inf -> +-FLT_MAX.
 *
 *  mt3_reference_512  the same features over 512-frame segments.
 *
 * Padding rows: for the four MT3 presets, rows t >= valid_frames[i] of segment
 * i are exactly 0.0 (the mt3_pytorch row 256 is always zero).  yourmt3 zeroes
 * nothing; its valid_frames are all 110.
 *
 * Window and filterbanks are built once per preset (pthread_once); every
 * function here is thread-safe and results never depend on num_threads. */
#ifndef MT3_FEATURES_H
#define MT3_FEATURES_H

#include <stddef.h>

#include "core/audio.h"
#include "core/mt3_error.h"

typedef enum mt3_preset {
    MT3_PRESET_MR_MT3 = 0,
    MT3_PRESET_MT3_PYTORCH = 1,
    MT3_PRESET_MT3_REFERENCE = 2,
    MT3_PRESET_YOURMT3 = 3,
    MT3_PRESET_MT3_REFERENCE_512 = 4
} mt3_preset;

#define MT3_PRESET_COUNT 5

/* Which stage to return (tests and diagnostics; adapters use FINAL). */
typedef enum mt3_feature_stage {
    MT3_STAGE_FINAL = 0,  /* what the encoder gets */
    MT3_STAGE_LOG = 1,    /* yourmt3: ln(|X| + 1e-5) before min/max normalisation;
                             the other presets: same as FINAL */
    MT3_STAGE_LINEAR = 2  /* before the log: mel energies (magnitude or power per
                             preset), or yourmt3's |X| for bins 1..1024 */
} mt3_feature_stage;

/* Static description of a preset. */
typedef struct mt3_preset_info {
    const char *name;       /* "mr_mt3", "mt3_pytorch", "mt3_reference", "yourmt3" */
    int sample_rate;        /* 16000 */
    int n_fft;              /* 2048 */
    int hop;                /* samples between frames: 128 or 300 */
    int segment_samples;    /* 32768 or 32767 */
    int n_frames;           /* frames per segment in the output: 256, 257, 256, 110 */
    int n_bins;             /* 512 mel bands, or 1024 linear bins */
    double segment_seconds; /* nominal segment duration: 2.048 or 2.0479375 */
    mt3_resampler resampler; /* how audio at other rates is brought to 16 kHz for these features, as
                                their upstream does: librosa's soxr_hq for MT3-PyTorch's (and the
                                reference) spectrogram, torchaudio's sinc for MR-MT3's and YourMT3's */
} mt3_preset_info;

typedef struct mt3_features {
    float *data;       /* [n_segments, n_frames, n_bins]; NULL when n_segments == 0 */
    int n_segments, n_frames, n_bins;
    int *valid_frames; /* [n_segments]; NULL when n_segments == 0 */
} mt3_features;

/* Info for a preset, or NULL for an unknown value. */
const mt3_preset_info *mt3_preset_get_info(mt3_preset p);

/* Parse "mr_mt3" | "mt3_pytorch" | "mt3_reference" | "yourmt3" | "mt3_reference_512" (exact, lower
 * case).  Unknown name -> MT3_E_VALUE with a message listing the valid ones. */
int mt3_preset_from_name(const char *name, mt3_preset *out, mt3_error *err);

/* Number of segments for n samples of 16 kHz audio (0 for n == 0). */
size_t mt3_features_num_segments(mt3_preset p, size_t n);

/* Valid (non-padding) rows of segment seg for n samples (0 if seg is out of
 * range). */
int mt3_features_valid_frames(mt3_preset p, size_t n, size_t seg);

/* Nominal start time of segment seg in seconds, double: 256*seg/125.0 for the
 * MT3 presets (512*seg/125.0 for mt3_reference_512), 32767*seg/16000.0 for yourmt3.  (MT3-PyTorch's 10 ms flooring
 * belongs to its decoder, not here.) */
double mt3_features_segment_start(mt3_preset p, size_t seg);

/* Compute segments [seg_begin, seg_end) of the batch for the whole signal
 * mono16k[0..n) into out, which must hold (seg_end - seg_begin) * n_frames *
 * n_bins floats; valid_frames (may be NULL) receives seg_end - seg_begin ints.
 * Lets a caller compute long audio in chunks: the result of a range equals the
 * same rows of the full computation.  num_threads <= 1 runs on the calling
 * thread; more threads split segments (results are identical). */
int mt3_features_compute_range(mt3_preset p, const float *mono16k, size_t n, size_t seg_begin,
                               size_t seg_end, mt3_feature_stage stage, int num_threads,
                               float *out, int *valid_frames, mt3_error *err);

/* Whole batch, single-threaded, final stage.  On success *out owns malloc'ed
 * buffers (release with mt3_features_free); on failure *out is zeroed. */
int mt3_features_compute(mt3_preset p, const float *mono16k, size_t n, mt3_features *out,
                         mt3_error *err);

/* As mt3_features_compute with a thread count and a stage. */
int mt3_features_compute_ex(mt3_preset p, const float *mono16k, size_t n, int num_threads,
                            mt3_feature_stage stage, mt3_features *out, mt3_error *err);

/* Release the buffers of *f and zero it.  Safe on NULL and on a zeroed struct. */
void mt3_features_free(mt3_features *f);

#endif
