/* Decoder vocabularies of the MT3 family: raw model id <-> event.
 *
 * Three vocabularies, each a small C table of contiguous ranges
 * (specs/mt3-family.md §5, specs/magenta-t5x.md §6.1, specs/yourmt3.md §6.1):
 *
 *   MT3 (MR-MT3, MT3-PyTorch, Magenta `mt3`), 1536 ids, 1 velocity bin:
 *     0 PAD, 1 EOS, 2 UNK | 3..1003 shift 0..1000 | 1004..1131 pitch 0..127 |
 *     1132..1133 velocity 0..1 | 1134 tie | 1135..1262 program 0..127 |
 *     1263..1390 drum 0..127 | 1391..1490 T5 extra ids | 1491..1535 padding
 *   The Magenta codec id of a raw id is raw - 3; codec ids outside 0..1387 are
 *   "invalid events" (skipped and counted, never fatal).
 *
 *   MAGENTA_PIANO (Magenta `ismir2021`), 1664 ids, 127 velocity bins:
 *     0 PAD, 1 EOS, 2 UNK | 3..1003 shift 0..1000 | 1004..1131 pitch 0..127 |
 *     1132..1259 velocity 0..127 | 1260 tie | 1261..1388 program 0..127 |
 *     1389..1516 drum 0..127 | 1517..1616 T5 extra ids | 1617..1663 padding
 *   Codec ids 0..1513 (raw - 3); base vocabulary 1517.
 *
 *   YourMT3 ("mt3" codec of mc13_full_plus_256), 596 ids:
 *     0 PAD, 1 EOS, 2 UNK | 3..208 shift 0..205 | 209..336 pitch 0..127 |
 *     337..338 velocity 0..1 | 339 tie | 340..467 program 0..127 |
 *     468..595 drum 0..127
 *
 * Out-of-range ids (negative, >= the vocabulary size) decode to
 * MT3_EV_OUT_OF_RANGE; nothing here fails or allocates. */
#ifndef MT3_CODEC_H
#define MT3_CODEC_H

#include <stddef.h>
#include <stdint.h>

typedef enum mt3_vocab {
    MT3_VOCAB_MT3 = 0,           /* 1536 ids: MR-MT3, MT3-PyTorch, Magenta mt3 */
    MT3_VOCAB_YOURMT3 = 1,       /* 596 ids: YourMT3 (YPTF.MoE+Multi) */
    MT3_VOCAB_MAGENTA_PIANO = 2  /* 1664 ids: Magenta ismir2021 (127 velocity bins) */
} mt3_vocab;

#define MT3_VOCAB_COUNT 3

typedef enum mt3_event_type {
    MT3_EV_PAD = 0,      /* raw id 0 (also the decoder start token) */
    MT3_EV_EOS = 1,      /* raw id 1 */
    MT3_EV_UNK = 2,      /* raw id 2 */
    MT3_EV_SHIFT = 3,    /* value = steps of 10 ms, absolute from the segment start */
    MT3_EV_PITCH = 4,    /* value = MIDI pitch 0..127 */
    MT3_EV_VELOCITY = 5, /* value = bin: 0 = note-off, else note-on (1 bin, or 1..127) */
    MT3_EV_TIE = 6,      /* value 0: end of the tie section */
    MT3_EV_PROGRAM = 7,  /* value = GM program 0..127 */
    MT3_EV_DRUM = 8,     /* value = drum pitch 0..127 */
    MT3_EV_EXTRA = 9,    /* MT3 / MAGENTA_PIANO: T5 extra id, value = 0..99 */
    MT3_EV_UNUSED = 10,  /* MT3 / MAGENTA_PIANO: padding id, value = 0..44 / 0..46 */
    MT3_EV_OUT_OF_RANGE = 11 /* id < 0 or >= vocabulary size; value = 0 */
} mt3_event_type;

#define MT3_EVENT_TYPE_COUNT 12

typedef struct mt3_event {
    int32_t type;  /* mt3_event_type */
    int32_t value;
} mt3_event;

/* One contiguous range of a vocabulary table. */
typedef struct mt3_vocab_range {
    int32_t type;      /* mt3_event_type */
    int32_t first_id;  /* first raw id of the range */
    int32_t count;     /* number of ids */
    int32_t min_value; /* event value of first_id */
} mt3_vocab_range;

#define MT3_VOCAB_SIZE_MT3 1536
#define MT3_VOCAB_SIZE_YOURMT3 596
#define MT3_VOCAB_SIZE_MAGENTA_PIANO 1664
#define MT3_NUM_SPECIAL_TOKENS 3
/* Magenta codec classes of the MT3 vocabulary (codec ids 0..1387). */
#define MT3_MT3_CODEC_CLASSES 1388
/* ... of the MAGENTA_PIANO vocabulary (codec ids 0..1513). */
#define MT3_MAGENTA_PIANO_CODEC_CLASSES 1514
#define MT3_YMT3_CODEC_CLASSES 593
#define MT3_MT3_MAX_SHIFT 1000
#define MT3_YMT3_MAX_SHIFT 205

#define MT3_TOKEN_PAD 0
#define MT3_TOKEN_EOS 1
#define MT3_TOKEN_UNK 2

/* Number of ids of a vocabulary (1536, 596 or 1664); 0 for an unknown vocab. */
int32_t mt3_vocab_size(mt3_vocab v);

/* Codec classes of a vocabulary: the event ids after the 3 specials, before
 * any T5 extra/padding ids (1388, 593, 1514); the base vocabulary is this + 3.
 * 0 for an unknown vocab. */
int32_t mt3_vocab_codec_classes(mt3_vocab v);

/* Number of velocity bins (the velocity range's size - 1: 1, 1, 127). */
int32_t mt3_vocab_velocity_bins(mt3_vocab v);

/* The range table of a vocabulary (ranges in id order, covering 0..size-1);
 * *n_ranges receives its length.  NULL for an unknown vocab. */
const mt3_vocab_range *mt3_vocab_table(mt3_vocab v, size_t *n_ranges);

/* Raw id -> event.  Never fails: ids outside 0..size-1 (and unknown vocabs)
 * give {MT3_EV_OUT_OF_RANGE, 0}. */
mt3_event mt3_codec_decode(mt3_vocab v, int64_t raw_id);

/* Event -> raw id; -1 when the event has no id in the vocabulary
 * (unknown type, value outside the type's range, OUT_OF_RANGE). */
int64_t mt3_codec_encode(mt3_vocab v, mt3_event ev);

/* Magenta codec of a vocabulary (ids without the 3 specials): codec id ->
 * event for 0..classes-1; any other value (negative, extra or padding ids)
 * gives {MT3_EV_OUT_OF_RANGE, 0}, which the note decoders count as an invalid
 * event. */
mt3_event mt3_codec_decode_codec_id(mt3_vocab v, int64_t codec_id);

/* mt3_codec_decode_codec_id(MT3_VOCAB_MT3, codec_id). */
mt3_event mt3_codec_decode_magenta(int64_t codec_id);

/* Short lowercase name of an event type ("shift", "pitch", ...). */
const char *mt3_event_type_name(int32_t type);

#endif
