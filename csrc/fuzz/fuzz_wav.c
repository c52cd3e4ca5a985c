/* libFuzzer target: the WAV/RF64 reader on arbitrary bytes (header parse,
 * then both decoders when the declared data is small enough to hold). */
#include <stdint.h>
#include <stdlib.h>

#include "core/wav.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mt3_wav_reader r;
    mt3_wav_info info;
    mt3_error err;
    mt3_error_clear(&err);
    if (mt3_wav_open_memory(&r, data, size, &info, &err) != MT3_OK)
        return 0;
    if (info.frames > 0 && info.frames <= (1u << 20) && info.channels <= 64) {
        float *dst = malloc((size_t)info.frames * (size_t)info.channels * sizeof *dst);
        if (dst) {
            mt3_wav_read(&r, &info, dst, &err);
            mt3_wav_read_mono(&r, &info, dst, &err);
            free(dst);
        }
    }
    mt3_wav_close(&r);
    return 0;
}
