/* libFuzzer target: token decoding and MIDI writing of every scheme (decoding
 * only for a scheme without a recipe).
 * Byte 0: scheme (mod MT3_SCHEME_COUNT) and flags; byte 1: segments (1..4) and length
 * (1..64); then 16-bit ids (mostly inside the vocabulary, some far outside:
 * every int64 is a legal input for the MT3 schemes, YourMT3 reports ids
 * outside its codec), PAD-filled when the bytes run out. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/midi.h"
#include "core/pipeline.h"
#include "core/notes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const mt3_scheme s = (mt3_scheme)(data[0] % MT3_SCHEME_COUNT);
    const unsigned midi_flags = (data[0] & 0x80) ? MT3_MIDI_AUTO_FILTER : 0;
    const size_t n_seg = 1 + (data[1] & 3);
    const size_t length = 1 + (data[1] >> 2);
    const size_t ch = mt3_scheme_channels(s);
    const size_t n = n_seg * ch * length;
    int64_t *tok = calloc(n, sizeof *tok);
    if (!tok)
        return 0;
    const uint8_t *p = data + 2;
    size_t left = size - 2;
    for (size_t i = 0; i < n && left >= 2; i++, p += 2, left -= 2) {
        uint16_t v = (uint16_t)(p[0] | (p[1] << 8));
        tok[i] = (v & 0x8000) ? (int64_t)(v & 0x7fff) * 1000003 - 7 : (int64_t)(v % 1700);
    }
    mt3_notes notes;
    memset(&notes, 0, sizeof notes);
    uint8_t *bytes = NULL;
    size_t len = 0;
    mt3_error err;
    mt3_error_clear(&err);
    const mt3_recipe *r = mt3_recipe_for_scheme(s);
    if (!r)
        (void)mt3_decode_tokens(s, tok, n_seg, ch, length, NULL, mt3_decode_corrected_flags(s),
                                &notes, &err);
    else if (mt3_recipe_tokens_to_midi(r, tok, n_seg, ch, length, NULL,
                                       mt3_decode_corrected_flags(s), midi_flags, &notes, &bytes,
                                       &len, &err) == MT3_OK)
        free(bytes);
    mt3_notes_free(&notes);
    free(tok);
    return 0;
}
