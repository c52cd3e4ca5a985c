#include "core/codec.h"

/* specs/mt3-family.md §5 */
static const mt3_vocab_range MT3_TABLE[] = {
    {MT3_EV_PAD, 0, 1, 0},
    {MT3_EV_EOS, 1, 1, 0},
    {MT3_EV_UNK, 2, 1, 0},
    {MT3_EV_SHIFT, 3, 1001, 0},
    {MT3_EV_PITCH, 1004, 128, 0},
    {MT3_EV_VELOCITY, 1132, 2, 0},
    {MT3_EV_TIE, 1134, 1, 0},
    {MT3_EV_PROGRAM, 1135, 128, 0},
    {MT3_EV_DRUM, 1263, 128, 0},
    {MT3_EV_EXTRA, 1391, 100, 0},
    {MT3_EV_UNUSED, 1491, 45, 0},
};

/* specs/magenta-t5x.md §6.1 (ismir2021, num_velocity_bins = 127) */
static const mt3_vocab_range PIANO_TABLE[] = {
    {MT3_EV_PAD, 0, 1, 0},
    {MT3_EV_EOS, 1, 1, 0},
    {MT3_EV_UNK, 2, 1, 0},
    {MT3_EV_SHIFT, 3, 1001, 0},
    {MT3_EV_PITCH, 1004, 128, 0},
    {MT3_EV_VELOCITY, 1132, 128, 0},
    {MT3_EV_TIE, 1260, 1, 0},
    {MT3_EV_PROGRAM, 1261, 128, 0},
    {MT3_EV_DRUM, 1389, 128, 0},
    {MT3_EV_EXTRA, 1517, 100, 0},
    {MT3_EV_UNUSED, 1617, 47, 0},
};

/* specs/yourmt3.md §6.1 */
static const mt3_vocab_range YMT3_TABLE[] = {
    {MT3_EV_PAD, 0, 1, 0},
    {MT3_EV_EOS, 1, 1, 0},
    {MT3_EV_UNK, 2, 1, 0},
    {MT3_EV_SHIFT, 3, 206, 0},
    {MT3_EV_PITCH, 209, 128, 0},
    {MT3_EV_VELOCITY, 337, 2, 0},
    {MT3_EV_TIE, 339, 1, 0},
    {MT3_EV_PROGRAM, 340, 128, 0},
    {MT3_EV_DRUM, 468, 128, 0},
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

int32_t mt3_vocab_size(mt3_vocab v)
{
    switch (v) {
    case MT3_VOCAB_MT3:
        return MT3_VOCAB_SIZE_MT3;
    case MT3_VOCAB_YOURMT3:
        return MT3_VOCAB_SIZE_YOURMT3;
    case MT3_VOCAB_MAGENTA_PIANO:
        return MT3_VOCAB_SIZE_MAGENTA_PIANO;
    }
    return 0;
}

int32_t mt3_vocab_codec_classes(mt3_vocab v)
{
    switch (v) {
    case MT3_VOCAB_MT3:
        return MT3_MT3_CODEC_CLASSES;
    case MT3_VOCAB_YOURMT3:
        return MT3_YMT3_CODEC_CLASSES;
    case MT3_VOCAB_MAGENTA_PIANO:
        return MT3_MAGENTA_PIANO_CODEC_CLASSES;
    }
    return 0;
}

int32_t mt3_vocab_velocity_bins(mt3_vocab v)
{
    size_t n = 0;
    const mt3_vocab_range *t = mt3_vocab_table(v, &n);
    for (size_t i = 0; i < n; i++)
        if (t[i].type == MT3_EV_VELOCITY)
            return t[i].count - 1;
    return 0;
}

const mt3_vocab_range *mt3_vocab_table(mt3_vocab v, size_t *n_ranges)
{
    switch (v) {
    case MT3_VOCAB_MT3:
        if (n_ranges)
            *n_ranges = COUNT_OF(MT3_TABLE);
        return MT3_TABLE;
    case MT3_VOCAB_YOURMT3:
        if (n_ranges)
            *n_ranges = COUNT_OF(YMT3_TABLE);
        return YMT3_TABLE;
    case MT3_VOCAB_MAGENTA_PIANO:
        if (n_ranges)
            *n_ranges = COUNT_OF(PIANO_TABLE);
        return PIANO_TABLE;
    }
    if (n_ranges)
        *n_ranges = 0;
    return NULL;
}

mt3_event mt3_codec_decode(mt3_vocab v, int64_t raw_id)
{
    mt3_event ev = {MT3_EV_OUT_OF_RANGE, 0};
    size_t n = 0;
    const mt3_vocab_range *t = mt3_vocab_table(v, &n);
    if (!t || raw_id < 0)
        return ev;
    for (size_t i = 0; i < n; i++) {
        int64_t off = raw_id - t[i].first_id;
        if (off >= 0 && off < t[i].count) {
            ev.type = t[i].type;
            ev.value = t[i].min_value + (int32_t)off;
            return ev;
        }
    }
    return ev;
}

int64_t mt3_codec_encode(mt3_vocab v, mt3_event ev)
{
    size_t n = 0;
    const mt3_vocab_range *t = mt3_vocab_table(v, &n);
    if (!t)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (t[i].type != ev.type)
            continue;
        int64_t off = (int64_t)ev.value - t[i].min_value;
        if (off < 0 || off >= t[i].count)
            return -1;
        return t[i].first_id + off;
    }
    return -1;
}

mt3_event mt3_codec_decode_codec_id(mt3_vocab v, int64_t codec_id)
{
    mt3_event ev = {MT3_EV_OUT_OF_RANGE, 0};
    if (codec_id < 0 || codec_id >= mt3_vocab_codec_classes(v))
        return ev;
    return mt3_codec_decode(v, codec_id + MT3_NUM_SPECIAL_TOKENS);
}

mt3_event mt3_codec_decode_magenta(int64_t codec_id)
{
    return mt3_codec_decode_codec_id(MT3_VOCAB_MT3, codec_id);
}

const char *mt3_event_type_name(int32_t type)
{
    static const char *const names[MT3_EVENT_TYPE_COUNT] = {
        "pad", "eos", "unk", "shift", "pitch", "velocity", "tie", "program", "drum",
        "extra", "unused", "out_of_range"};
    if (type < 0 || type >= MT3_EVENT_TYPE_COUNT)
        return "unknown";
    return names[type];
}
