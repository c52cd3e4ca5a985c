/* libFuzzer target: the four MIDI writers on arbitrary notes (NaN, Inf,
 * negative or reversed times, any pitch/velocity/program): a clear error
 * for invalid notes, valid bytes otherwise, never a crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/midi.h"

#define NOTE_BYTES 29 /* 2 doubles, 3 int32, 1 byte */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const mt3_midi_style st = (mt3_midi_style)(data[0] % 4);
    const unsigned flags = (data[0] & 0x80) ? MT3_MIDI_AUTO_FILTER : 0;
    const size_t n = (size - 1) / NOTE_BYTES;
    mt3_note *notes = calloc(n ? n : 1, sizeof *notes);
    if (!notes)
        return 0;
    const uint8_t *p = data + 1;
    for (size_t i = 0; i < n; i++, p += NOTE_BYTES) {
        memcpy(&notes[i].onset, p, 8);
        memcpy(&notes[i].offset, p + 8, 8);
        memcpy(&notes[i].pitch, p + 16, 4);
        memcpy(&notes[i].velocity, p + 20, 4);
        memcpy(&notes[i].program, p + 24, 4);
        notes[i].is_drum = p[28] & 1;
    }
    uint8_t *bytes = NULL;
    size_t len = 0;
    mt3_error err;
    mt3_error_clear(&err);
    if (mt3_midi_write(st, notes, n, flags, &bytes, &len, &err) == MT3_OK)
        free(bytes);
    free(notes);
    return 0;
}
