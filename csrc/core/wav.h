/* wav.h — RIFF/WAVE (and RF64) reader.
 *
 * Supported encodings: integer PCM 8 (unsigned), 16, 24, 32 bit (also
 * left-justified samples in a wider container, e.g. 20-in-24 or 24-in-32),
 * IEEE float 32/64, in plain WAVE_FORMAT_PCM / WAVE_FORMAT_IEEE_FLOAT or in
 * WAVE_FORMAT_EXTENSIBLE; any channel count.  Output: interleaved float32
 * frames (frame-major, like numpy (n_frames, channels)), integers scaled by
 * 1 / 2^(container_bits - 1) so full scale maps to [-1, 1).
 *
 * Chunk walking tolerates unknown chunks, odd-sized chunks with or without the
 * pad byte, `fmt ` after `data`, trailing garbage after the data chunk, a
 * data length that is not a whole number of frames (the partial frame is
 * dropped) and the "unknown length" placeholders streaming writers use
 * (0 or 0xFFFFFFFF: the data then runs to the end of the file).  A data chunk
 * declared longer than the file is an error (truncated file), as is any
 * header that cannot be parsed.  All failures are MT3_E_AUDIO (MT3_E_NOMEM for
 * allocation) with a message naming the problem.
 *
 * Usage (two phases, so a binding can allocate the output itself):
 *     mt3_wav_reader r;  mt3_wav_info info;
 *     mt3_wav_open_file(&r, path, &info, &err)       // or mt3_wav_open_memory
 *     float *dst = malloc(info.frames * info.channels * sizeof(float));
 *     mt3_wav_read(&r, &info, dst, &err);
 *     mt3_wav_close(&r);
 * mt3_wav_close is safe after any outcome (also after a failed open).
 */
#ifndef MT3_WAV_H
#define MT3_WAV_H

#include <stdint.h>
#include <stdio.h>

#include "core/mt3_error.h"

enum {
    MT3_WAV_INT = 1,   /* integer PCM */
    MT3_WAV_FLOAT = 3  /* IEEE float */
};

typedef struct mt3_wav_info {
    int encoding;          /* MT3_WAV_INT or MT3_WAV_FLOAT */
    int channels;          /* >= 1 */
    int bits;              /* valid bits per sample as declared */
    int container_bytes;   /* bytes per sample in the file (1..4, or 4/8 float) */
    uint32_t sample_rate;  /* Hz, > 0 */
    uint64_t frames;       /* whole frames available */
    uint64_t data_offset;  /* byte offset of the first sample */
    int format_tag;        /* format tag from the fmt chunk (1, 3 or 0xFFFE) */
} mt3_wav_info;

/* A byte source: a FILE* or a memory buffer (not owned). */
typedef struct mt3_wav_reader {
    FILE *fp;               /* owned when opened by mt3_wav_open_file */
    const uint8_t *mem;     /* memory source, or NULL */
    uint64_t size;          /* total bytes of the source */
} mt3_wav_reader;

/* Parse the header of the file at `path`; on success the reader is open. */
int mt3_wav_open_file(mt3_wav_reader *r, const char *path, mt3_wav_info *info,
                      mt3_error *err);

/* Parse the header of an in-memory WAV image (the buffer must outlive r). */
int mt3_wav_open_memory(mt3_wav_reader *r, const void *data, uint64_t len,
                        mt3_wav_info *info, mt3_error *err);

/* Decode all info->frames frames into dst (frames * channels floats). */
int mt3_wav_read(mt3_wav_reader *r, const mt3_wav_info *info, float *dst,
                 mt3_error *err);

/* Decode all info->frames frames mixed to mono into dst (frames floats): the
 * mean of the channels per frame, exactly as mt3_audio_mix_mono mixes a
 * float32 (frames, channels) array, computed chunk by chunk so memory is
 * the output plus one 64 KiB chunk. */
int mt3_wav_read_mono(mt3_wav_reader *r, const mt3_wav_info *info, float *dst,
                      mt3_error *err);

/* Release the reader (closes the file it opened). */
void mt3_wav_close(mt3_wav_reader *r);

#endif
