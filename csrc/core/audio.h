/* Audio conditioning: validation, mono mix, resampling to 16 kHz.
 *
 * Input is a strided view of caller memory (no copy is made of the input):
 * shape (n_samples,) or (n_samples, n_channels) = samples x channels, the
 * layout of mt3-infer 0.2.0.  A channels-first array ((2, N) as librosa and
 * torchaudio return) would be mixed over the wrong axis and silently give
 * empty output, so mt3_audio_validate refuses a view with more channels than
 * samples or more than MT3_AUDIO_MAX_CHANNELS channels (MT3_E_AUDIO, telling
 * the caller to pass audio.T).
 *
 * Sample types: float32, float64, int16, int32.  Integers are scaled to
 * [-1, 1): int16 / 32768, int32 / 2147483648.
 *
 * Mono mix: arithmetic mean over channels, computed in double.  For float32
 * input the mono value is rounded to float32 (the anchor casts the mean back
 * to the input dtype); other types keep double precision until the single
 * final rounding to float32.
 *
 * Resamplers (output is always float32 at 16 kHz):
 *   MT3_RESAMPLE_SOXR_HQ  libsoxr, recipe SOXR_HQ (20-bit), linear phase -- the
 *                         quality of librosa's default res_type "soxr_hq"
 *                         (used by the MT3-PyTorch adapter).  Output trimmed or
 *                         zero-padded to ceil(N * (16000.0 / sr)) evaluated in
 *                         double, as librosa does.
 *   MT3_RESAMPLE_SINC     torchaudio.functional.resample defaults (windowed
 *                         sinc, Hann window, lowpass_filter_width 6, rolloff
 *                         0.99), kernel computed in float32 like torchaudio for
 *                         a float32 waveform (used by YourMT3 and the anchor's
 *                         load_audio).  Output length ceil(b * N / a) (exact
 *                         integer arithmetic), b/a = 16000/sr reduced.  Rates
 *                         sharing only a tiny gcd with 16000 (e.g. 44101 Hz)
 *                         would need a kernel over 64 MB and are refused with
 *                         MT3_E_AUDIO (soxr_hq handles any rate).
 * When sr == 16000 no resampler runs (both adapters skip resampling then).
 *
 * Everything streams in bounded chunks: memory use is the output buffer plus a
 * few hundred KiB, so an hour of 44.1 kHz stereo audio is fine.
 *
 * Thread safety: all functions are reentrant (no global state). */
#ifndef MT3_AUDIO_H
#define MT3_AUDIO_H

#include <stddef.h>

#include "core/mt3_error.h"

#define MT3_AUDIO_TARGET_SR 16000
/* Accepted input sample rates (Hz).  Below 1 kHz the Nyquist limit (500 Hz)
 * removes nearly all musical content the models look at (up to 8 kHz) and
 * upsampling to 16 kHz would multiply the length by more than 16 (sr=1 turns
 * one second into 4.4 hours); above 1 MHz the rate is a unit mistake. */
#define MT3_AUDIO_MIN_SR 1000
#define MT3_AUDIO_MAX_SR 1000000
/* Most channels a (n_samples, n_channels) view may have (3rd-order ambisonics
 * has 16, large 3-D layouts around 30); more is taken for channels-first. */
#define MT3_AUDIO_MAX_CHANNELS 64
/* Longest accepted 16 kHz output: 24 hours (1 382 400 000 samples, 5.5 GB as
 * float32); longer input is rejected with MT3_E_AUDIO instead of exhausting
 * memory. */
#define MT3_AUDIO_MAX_OUT ((size_t)24 * 3600 * MT3_AUDIO_TARGET_SR)

typedef enum mt3_sample_type {
    MT3_SAMPLE_F32 = 0,
    MT3_SAMPLE_F64 = 1,
    MT3_SAMPLE_I16 = 2,
    MT3_SAMPLE_I32 = 3
} mt3_sample_type;

/* A borrowed, read-only view of interleaved or planar samples.
 * Sample (i, c) lives at (const char *)data + i*sample_stride + c*channel_stride.
 * Strides are in bytes and may be negative or unaligned (values are read with
 * memcpy).  For 1-D input use n_channels = 1 (channel_stride is ignored). */
typedef struct mt3_audio_view {
    const void *data;
    mt3_sample_type type;
    size_t n_samples;
    size_t n_channels;
    ptrdiff_t sample_stride;
    ptrdiff_t channel_stride;
} mt3_audio_view;

typedef enum mt3_resampler {
    MT3_RESAMPLE_SOXR_HQ = 0,
    MT3_RESAMPLE_SINC = 1
} mt3_resampler;

/* Name of a sample type ("float32", ...) for messages. */
const char *mt3_sample_type_name(mt3_sample_type t);

/* Check the sample rate: MT3_AUDIO_MIN_SR <= sr <= MT3_AUDIO_MAX_SR, else
 * MT3_E_AUDIO naming the accepted range. */
int mt3_audio_check_sr(long long sr, mt3_error *err);

/* Validate a view: non-NULL data, known type, n_channels >= 1, not empty, not
 * channels-first (n_channels > n_samples or > MT3_AUDIO_MAX_CHANNELS), and
 * every sample finite (the first NaN/Inf is reported with its sample index and
 * channel).  Returns MT3_OK or MT3_E_AUDIO. */
int mt3_audio_validate(const mt3_audio_view *in, mt3_error *err);

/* Number of 16 kHz samples the given resampler produces from n samples at sr
 * (n itself when sr == 16000).  Valid sr required. */
size_t mt3_audio_output_length(size_t n, int sr, mt3_resampler rs);

/* Mono mix of samples [begin, begin + count) into out[0..count) as float32. */
void mt3_audio_mix_mono(const mt3_audio_view *in, size_t begin, size_t count, float *out);

/* The adapters' entry point: validate, mix to mono, resample to 16 kHz.
 * On success *mono16k is a malloc'ed float32 buffer of *n_out samples (caller
 * frees with free()); on failure *mono16k is NULL, *n_out 0, and err is set
 * (MT3_E_AUDIO for unusable audio or rate, MT3_E_VALUE for a bad resampler,
 * MT3_E_NOMEM, MT3_E_INTERNAL if libsoxr fails). */
int mt3_audio_prepare(const mt3_audio_view *in, int sr, mt3_resampler rs, float **mono16k,
                      size_t *n_out, mt3_error *err);

/* A WAV file as 16 kHz mono, in one pass: read and mixed to mono block by
 * block (mt3_wav_read_mono: the file is never held at its channel count),
 * then resampled with `rs` unless it is at 16 kHz already.  *sr_in: the
 * file's rate.  *mono16k (malloc'ed, caller frees) is NULL with *n_out 0 for
 * a file without samples.  MT3_E_AUDIO for unreadable files and rates
 * outside MT3_AUDIO_MIN_SR..MT3_AUDIO_MAX_SR. */
int mt3_audio_load_wav(const char *path, mt3_resampler rs, float **mono16k, size_t *n_out, int *sr_in,
                       mt3_error *err);

/* Resample an already mono float32 signal (no validation beyond sr).  Same
 * output contract as mt3_audio_prepare. */
int mt3_audio_resample_mono(const float *x, size_t n, int sr, mt3_resampler rs, float **out,
                            size_t *n_out, mt3_error *err);

#endif
