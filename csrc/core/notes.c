/* Token -> note decoding for the anchor adapters and Magenta's own runs.
 * Facts: specs/mt3-family.md §4.2, §5, §6, specs/magenta-t5x.md §5.6, §5.7, §6
 * and specs/yourmt3.md §6, §7. */
#include "core/notes.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

#define MIN_DUR 0.01
#define NKEYS (128 * 128) /* (pitch, program) keys, pitch * 128 + program */
#define KEY(pitch, program) ((int32_t)(pitch) * 128 + (int32_t)(program))
#define KEY_PITCH(k) ((k) / 128)
#define KEY_PROGRAM(k) ((k) % 128)

/* ------------------------------------------------------------------------ */
/* note lists                                                                */

void mt3_notes_free(mt3_notes *n)
{
    if (!n)
        return;
    free(n->items);
    n->items = NULL;
    n->n = n->cap = 0;
}

int mt3_notes_reserve(mt3_notes *n, size_t extra, mt3_error *err)
{
    if (extra <= n->cap - n->n)
        return MT3_OK;
    if (extra > (SIZE_MAX / sizeof(mt3_note)) - n->n)
        return mt3_error_set(err, MT3_E_NOMEM, "note list too large");
    size_t need = n->n + extra;
    size_t cap = n->cap ? n->cap : 64;
    while (cap < need)
        cap = (cap > SIZE_MAX / 2 / sizeof(mt3_note)) ? need : cap * 2;
    mt3_note *p = realloc(n->items, cap * sizeof(mt3_note));
    if (!p)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory for %zu notes", need);
    n->items = p;
    n->cap = cap;
    return MT3_OK;
}

int mt3_notes_push(mt3_notes *n, const mt3_note *note, mt3_error *err)
{
    if (n->n == n->cap) {
        int rc = mt3_notes_reserve(n, 1, err);
        if (rc)
            return rc;
    }
    n->items[n->n++] = *note;
    return MT3_OK;
}

/* ------------------------------------------------------------------------ */
/* stable merge sort                                                         */

#define RUN 16

int mt3_stable_sort(void *base, size_t n, size_t size,
                    int (*cmp)(const void *, const void *, void *), void *ctx, mt3_error *err)
{
    if (n < 2 || size == 0)
        return MT3_OK;
    if (n > (SIZE_MAX - size) / size)
        return mt3_error_set(err, MT3_E_NOMEM, "sort buffer too large");
    char *a = base;
    char *buf = malloc(n * size + size);
    if (!buf)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory sorting %zu items", n);
    char *t = buf + n * size;
    /* insertion sort of runs */
    for (size_t lo = 0; lo < n; lo += RUN) {
        size_t hi = lo + RUN < n ? lo + RUN : n;
        for (size_t i = lo + 1; i < hi; i++) {
            memcpy(t, a + i * size, size);
            size_t j = i;
            while (j > lo && cmp(a + (j - 1) * size, t, ctx) > 0) {
                memcpy(a + j * size, a + (j - 1) * size, size);
                j--;
            }
            if (j != i)
                memcpy(a + j * size, t, size);
        }
    }
    char *src = a, *dst = buf;
    for (size_t w = RUN; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = (w < n - lo) ? lo + w : n;
            size_t hi = (w < n - mid) ? mid + w : n;
            if (mid == hi || cmp(src + (mid - 1) * size, src + mid * size, ctx) <= 0) {
                memcpy(dst + lo * size, src + lo * size, (hi - lo) * size); /* already ordered */
                if (hi == n)
                    break;
                continue;
            }
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                if (cmp(src + i * size, src + j * size, ctx) <= 0)
                    memcpy(dst + (k++) * size, src + (i++) * size, size);
                else
                    memcpy(dst + (k++) * size, src + (j++) * size, size);
            }
            if (i < mid) {
                memcpy(dst + k * size, src + i * size, (mid - i) * size);
                k += mid - i;
            }
            if (j < hi)
                memcpy(dst + k * size, src + j * size, (hi - j) * size);
            if (hi == n)
                break;
        }
        char *tmp = src;
        src = dst;
        dst = tmp;
    }
    if (src != a)
        memcpy(a, src, n * size);
    free(buf);
    return MT3_OK;
}

#define CMP(a, b)                                                                              \
    do {                                                                                       \
        if ((a) < (b))                                                                         \
            return -1;                                                                         \
        if ((a) > (b))                                                                         \
            return 1;                                                                          \
    } while (0)

static int cmp_design(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const mt3_note *a = pa, *b = pb;
    CMP(a->onset, b->onset);
    CMP(a->pitch, b->pitch);
    CMP(a->program, b->program);
    return 0;
}

int mt3_notes_sort(mt3_notes *n, mt3_error *err)
{
    return mt3_stable_sort(n->items, n->n, sizeof(mt3_note), cmp_design, NULL, err);
}

int mt3_notes_validate(const mt3_note *notes, size_t n, mt3_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const mt3_note *x = &notes[i];
        if (!isfinite(x->onset) || !isfinite(x->offset))
            return mt3_error_set(err, MT3_E_VALUE,
                                 "note %zu: onset/offset must be finite numbers (got %g, %g)", i,
                                 x->onset, x->offset);
        if (x->onset < 0 || x->offset < 0)
            return mt3_error_set(err, MT3_E_VALUE,
                                 "note %zu: negative time (onset %g, offset %g); times are seconds "
                                 ">= 0",
                                 i, x->onset, x->offset);
        if (x->onset > MT3_MAX_TIME_S || x->offset > MT3_MAX_TIME_S)
            return mt3_error_set(err, MT3_E_VALUE, "note %zu: time beyond %g s", i,
                                 MT3_MAX_TIME_S);
        if (x->offset < x->onset)
            return mt3_error_set(err, MT3_E_VALUE,
                                 "note %zu: offset %g is before onset %g; swap or fix them", i,
                                 x->offset, x->onset);
        if (x->pitch < 0 || x->pitch > 127)
            return mt3_error_set(err, MT3_E_VALUE, "note %zu: pitch %d outside 0..127", i,
                                 (int)x->pitch);
        if (x->velocity < 0 || x->velocity > 127)
            return mt3_error_set(err, MT3_E_VALUE, "note %zu: velocity %d outside 0..127", i,
                                 (int)x->velocity);
        if (x->is_drum > 1)
            return mt3_error_set(err, MT3_E_VALUE, "note %zu: is_drum must be 0 or 1", i);
        if (x->program < 0 || x->program > (x->is_drum ? 128 : 127))
            return mt3_error_set(err, MT3_E_VALUE,
                                 "note %zu: program %d outside 0..127 (128 is allowed only on "
                                 "drum notes)",
                                 i, (int)x->program);
    }
    return MT3_OK;
}

/* ------------------------------------------------------------------------ */
/* insertion-ordered map over (pitch, program) keys: Python dict semantics    */

typedef struct omap {
    double onset[NKEYS];
    int32_t vel[NKEYS];
    int32_t prev[NKEYS], next[NKEYS];
    uint8_t on[NKEYS];
    int32_t head, tail;
} omap;

static void omap_init(omap *m)
{
    memset(m->on, 0, sizeof m->on);
    m->head = m->tail = -1;
}

static void omap_put_new(omap *m, int32_t k, double onset, int32_t vel)
{
    m->onset[k] = onset;
    m->vel[k] = vel;
    m->on[k] = 1;
    m->prev[k] = m->tail;
    m->next[k] = -1;
    if (m->tail >= 0)
        m->next[m->tail] = k;
    else
        m->head = k;
    m->tail = k;
}

static void omap_del(omap *m, int32_t k)
{
    int32_t p = m->prev[k], n = m->next[k];
    if (p >= 0)
        m->next[p] = n;
    else
        m->head = n;
    if (n >= 0)
        m->prev[n] = p;
    else
        m->tail = p;
    m->on[k] = 0;
}

/* ------------------------------------------------------------------------ */
/* MT3 schemes: Magenta / MR-MT3 state machine                               */

/* How a scheme turns a raw id into something decode_events sees (§4.2 and
 * magenta-t5x §5.6).  All three stop at the first EOS. */
enum token_rule {
    TOK_MT3_PYTORCH, /* id - 3, UNK (-1) cuts the row like EOS, PAD/extra invalid */
    TOK_MR_MT3,      /* ids < 3 (PAD, UNK, negatives) filtered out, rest id - 3 */
    TOK_MAGENTA      /* 3..base-1 -> id - 3; PAD, UNK, extra, padding: invalid (-2) */
};

/* One MT3-family scheme: everything the shared decoder is parametrised by. */
typedef struct mt3_family {
    mt3_vocab vocab;   /* id layout (velocity bins, codec classes) */
    int token_rule;    /* enum token_rule */
    int ties;          /* NoteEncodingWithTiesSpec: a tie section opens every segment */
    int mrmt3;         /* the anchor's MR-MT3 rewrite (§6.4) */
    double frames;     /* frames per segment (125 frames/s) */
    int floor10ms;     /* segment starts floored to 10 ms (t - fmod(t, 0.01)) */
} mt3_family;

static const mt3_family *family_of(mt3_scheme s)
{
    static const mt3_family mt3_pytorch = {MT3_VOCAB_MT3, TOK_MT3_PYTORCH, 1, 0, 256.0, 1};
    static const mt3_family mr_mt3 = {MT3_VOCAB_MT3, TOK_MR_MT3, 1, 1, 256.0, 0};
    static const mt3_family magenta = {MT3_VOCAB_MT3, TOK_MAGENTA, 1, 0, 256.0, 1};
    static const mt3_family piano = {MT3_VOCAB_MAGENTA_PIANO, TOK_MAGENTA, 0, 0, 512.0, 1};
    switch (s) {
    case MT3_SCHEME_MT3_PYTORCH:
        return &mt3_pytorch;
    case MT3_SCHEME_MR_MT3:
        return &mr_mt3;
    case MT3_SCHEME_MAGENTA:
        return &magenta;
    case MT3_SCHEME_MAGENTA_PIANO:
        return &piano;
    case MT3_SCHEME_YOURMT3:
        break;
    }
    return NULL;
}

typedef struct mt3dec {
    omap act;
    uint8_t tied[NKEYS];
    int32_t tied_list[NKEYS];
    size_t n_tied;
    double current_time;
    int32_t velocity, program;
    int tie_section;
    int mrmt3;         /* the anchor's MR-MT3 rules */
    int magenta_drums; /* drums as Magenta (always for the Magenta schemes) */
    int32_t vel_bins;  /* velocity bins of the vocabulary (1 or 127) */
    const mt3_family *fam;
    mt3_notes *out;
    mt3_error *err;
    size_t invalid;
} mt3dec;

static void tied_clear(mt3dec *d)
{
    for (size_t i = 0; i < d->n_tied; i++)
        d->tied[d->tied_list[i]] = 0;
    d->n_tied = 0;
}

static int add_note(mt3dec *d, int32_t pitch, double start, double end, int32_t vel,
                    int32_t program, int drum)
{
    double min_end = start + MIN_DUR;
    mt3_note n;
    n.onset = start;
    n.offset = end >= min_end ? end : min_end;
    n.pitch = pitch;
    n.velocity = vel;
    n.program = program;
    n.is_drum = (uint8_t)(drum != 0);
    return mt3_notes_push(d->out, &n, d->err);
}

/* 0 = accepted, 1 = rejected (invalid event), <0 never; >1 = error status */
#define REJECT 1
static int note_event(mt3dec *d, double t, mt3_event ev)
{
    if (t < d->current_time)
        return REJECT;
    d->current_time = t;
    int rc;
    switch (ev.type) {
    case MT3_EV_PITCH: {
        int32_t k = KEY(ev.value, d->program);
        if (d->tie_section) {
            if (!d->act.on[k] || d->tied[k])
                return REJECT;
            d->tied[k] = 1;
            d->tied_list[d->n_tied++] = k;
        } else if (d->velocity == 0) {
            if (!d->act.on[k])
                return REJECT;
            double on = d->act.onset[k];
            int32_t v = d->act.vel[k];
            omap_del(&d->act, k);
            if ((rc = add_note(d, ev.value, on, t, v, d->program, 0)))
                return rc;
        } else {
            if (d->act.on[k]) {
                double on = d->act.onset[k];
                int32_t v = d->act.vel[k];
                omap_del(&d->act, k);
                if ((rc = add_note(d, ev.value, on, t, v, d->program, 0)))
                    return rc;
            }
            omap_put_new(&d->act, k, t, d->velocity);
        }
        return 0;
    }
    case MT3_EV_DRUM: {
        if (d->magenta_drums) {
            if (d->velocity == 0)
                return REJECT;
            return add_note(d, ev.value, t, t + MIN_DUR, d->velocity, 0, 1);
        }
        /* MR-MT3: drums sustain under key (d, 9) */
        int32_t k = KEY(ev.value, 9);
        if (d->velocity == 0) {
            if (!d->act.on[k])
                return REJECT;
            double on = d->act.onset[k];
            int32_t v = d->act.vel[k];
            omap_del(&d->act, k);
            return add_note(d, ev.value, on, t, v, 0, 1);
        }
        if (d->act.on[k]) {
            double on = d->act.onset[k];
            int32_t v = d->act.vel[k];
            omap_del(&d->act, k);
            if ((rc = add_note(d, ev.value, on, t, v, 0, 1)))
                return rc;
        }
        omap_put_new(&d->act, k, t, d->velocity);
        return 0;
    }
    case MT3_EV_VELOCITY: /* bin_to_velocity: 0, else int(127 b / bins) */
        d->velocity = ev.value == 0 ? 0 : (int32_t)((127 * (int64_t)ev.value) / d->vel_bins);
        return 0;
    case MT3_EV_PROGRAM:
        d->program = ev.value;
        return 0;
    case MT3_EV_TIE: {
        if (!d->tie_section)
            return REJECT;
        int collide9 = d->mrmt3 && !d->magenta_drums;
        for (int32_t k = d->act.head; k >= 0;) {
            int32_t nk = d->act.next[k];
            if (!d->tied[k]) {
                int32_t prog = KEY_PROGRAM(k);
                int drum = collide9 && prog == 9;
                double on = d->act.onset[k];
                int32_t v = d->act.vel[k];
                omap_del(&d->act, k);
                if ((rc = add_note(d, KEY_PITCH(k), on, t, v, drum ? 0 : prog, drum)))
                    return rc;
            }
            k = nk;
        }
        if (d->mrmt3)
            tied_clear(d);
        d->tie_section = 0;
        return 0;
    }
    default:
        return REJECT;
    }
}

static int flush_mt3(mt3dec *d)
{
    int rc;
    if (!d->mrmt3) {
        double T = d->current_time;
        for (int32_t k = d->act.head; k >= 0; k = d->act.next[k]) {
            double e = d->act.onset[k] + MIN_DUR;
            if (e > T)
                T = e;
        }
        d->current_time = T;
        for (int32_t k = d->act.head; k >= 0;) {
            int32_t nk = d->act.next[k];
            double on = d->act.onset[k];
            int32_t v = d->act.vel[k];
            omap_del(&d->act, k);
            if ((rc = add_note(d, KEY_PITCH(k), on, T, v, KEY_PROGRAM(k), 0)))
                return rc;
            k = nk;
        }
        return MT3_OK;
    }
    int collide9 = !d->magenta_drums;
    for (int32_t k = d->act.head; k >= 0;) {
        int32_t nk = d->act.next[k];
        int32_t prog = KEY_PROGRAM(k);
        double on = d->act.onset[k];
        int32_t v = d->act.vel[k];
        omap_del(&d->act, k);
        if ((rc = add_note(d, KEY_PITCH(k), on, d->current_time, v, prog, collide9 && prog == 9)))
            return rc;
        k = nk;
    }
    return MT3_OK;
}

typedef struct seg_order {
    double start;
    size_t index;
} seg_order;

static int cmp_seg(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const seg_order *a = pa, *b = pb;
    CMP(a->start, b->start);
    return 0;
}

/* decode_events (§6.1) over one row of raw ids, with the scheme's token
 * post-processing (§4.2 / magenta-t5x §5.6) folded in. */
static int decode_row_mt3(mt3dec *d, const int64_t *row, size_t length, double start,
                          int has_max, double max_time)
{
    int64_t cur_steps = 0;
    double cur_time = start;
    for (size_t j = 0; j < length; j++) {
        int64_t id = row[j];
        if (id == MT3_TOKEN_EOS)
            break; /* -1 from here on: MR-MT3 filters it out, the others cut */
        if (d->fam->token_rule == TOK_MR_MT3) {
            if (id < MT3_NUM_SPECIAL_TOKENS)
                continue; /* values < 0 (PAD -> -3, UNK -> -1, negatives) dropped */
        } else if (d->fam->token_rule == TOK_MT3_PYTORCH && id == MT3_TOKEN_UNK) {
            break; /* UNK -> -1 = the EOS marker: cut */
        }
        /* TOK_MAGENTA: PAD, UNK, extra and padding ids are -2, an invalid event
         * below, like any id outside the codec under the other rules */
        mt3_event ev = {MT3_EV_OUT_OF_RANGE, 0};
        if (id >= MT3_NUM_SPECIAL_TOKENS)
            ev = mt3_codec_decode_codec_id(d->fam->vocab, id - MT3_NUM_SPECIAL_TOKENS);
        if (ev.type == MT3_EV_OUT_OF_RANGE) {
            d->invalid++;
            continue;
        }
        if (ev.type == MT3_EV_SHIFT) {
            cur_steps += ev.value;
            cur_time = start + (double)cur_steps / 100.0;
            if (has_max && max_time != 0.0 && cur_time > max_time)
                break;
        } else {
            cur_steps = 0;
            int rc = note_event(d, cur_time, ev);
            if (rc == REJECT)
                d->invalid++;
            else if (rc)
                return rc;
        }
    }
    return MT3_OK;
}

static int row_has_kept_token_mrmt3(const int64_t *row, size_t length)
{
    for (size_t j = 0; j < length; j++) {
        if (row[j] == MT3_TOKEN_EOS)
            return 0;
        if (row[j] >= MT3_NUM_SPECIAL_TOKENS)
            return 1;
    }
    return 0;
}

static int decode_mt3(mt3_scheme s, const int64_t *tokens, size_t nseg, size_t length,
                      const double *starts, unsigned flags, mt3_notes *out, mt3_error *err)
{
    int rc = MT3_OK;
    const mt3_family *fam = family_of(s);
    if (!fam)
        return mt3_error_set(err, MT3_E_VALUE, "scheme %d is not an MT3 scheme", (int)s);
    mt3dec *d = malloc(sizeof *d);
    seg_order *ord = malloc((nseg ? nseg : 1) * sizeof *ord);
    if (!d || !ord) {
        free(d);
        free(ord);
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory for the note decoder");
    }
    omap_init(&d->act);
    memset(d->tied, 0, sizeof d->tied);
    d->n_tied = 0;
    d->current_time = 0.0;
    d->velocity = 100;
    d->program = 0;
    d->tie_section = 0;
    d->fam = fam;
    d->vel_bins = mt3_vocab_velocity_bins(fam->vocab);
    d->mrmt3 = fam->mrmt3;
    d->magenta_drums = !d->mrmt3 || (flags & MT3_DECODE_MRMT3_MAGENTA_DRUMS);
    d->out = out;
    d->err = err;
    d->invalid = 0;
    int drop_rule = !d->mrmt3 || (flags & MT3_DECODE_MRMT3_DROP_RULE);

    for (size_t i = 0; i < nseg; i++) {
        ord[i].start = starts ? starts[i] : mt3_segment_start(s, i);
        ord[i].index = i;
    }
    if ((rc = mt3_stable_sort(ord, nseg, sizeof *ord, cmp_seg, NULL, err)))
        goto done;
    for (size_t k = 0; k < nseg; k++) {
        const int64_t *row = tokens + ord[k].index * length;
        if (d->mrmt3 && !row_has_kept_token_mrmt3(row, length))
            continue; /* MR-MT3 omits segments left without tokens */
        if (fam->ties) { /* begin_decoding_segment; a no-op for NoteEncodingSpec */
            tied_clear(d);
            d->tie_section = 1;
        }
        int has_max = drop_rule && k + 1 < nseg;
        double max_time = has_max ? ord[k + 1].start : 0.0;
        if ((rc = decode_row_mt3(d, row, length, ord[k].start, has_max, max_time)))
            goto done;
        if (d->mrmt3)
            d->tie_section = 0;
    }
    rc = flush_mt3(d);
done:
    free(d);
    free(ord);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* YourMT3                                                                   */

typedef struct yev {
    double time;
    int32_t pitch, program, velocity;
    uint8_t is_drum;
} yev;

typedef struct yev_vec {
    yev *items;
    size_t n, cap;
} yev_vec;

static int yev_push(yev_vec *v, yev e, mt3_error *err)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        if (cap > SIZE_MAX / sizeof(yev))
            return mt3_error_set(err, MT3_E_NOMEM, "event list too large");
        yev *p = realloc(v->items, cap * sizeof(yev));
        if (!p)
            return mt3_error_set(err, MT3_E_NOMEM, "out of memory for note events");
        v->items = p;
        v->cap = cap;
    }
    v->items[v->n++] = e;
    return MT3_OK;
}

/* (time, is_drum, program, velocity, pitch) -- event2note_event's sort */
static int cmp_ev_tdpvp(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const yev *a = pa, *b = pb;
    CMP(a->time, b->time);
    CMP(a->is_drum, b->is_drum);
    CMP(a->program, b->program);
    CMP(a->velocity, b->velocity);
    CMP(a->pitch, b->pitch);
    return 0;
}

/* (time, is_drum, pitch, velocity, program) -- note_event2note's sort */
static int cmp_ev_tdpvg(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const yev *a = pa, *b = pb;
    CMP(a->time, b->time);
    CMP(a->is_drum, b->is_drum);
    CMP(a->pitch, b->pitch);
    CMP(a->velocity, b->velocity);
    CMP(a->program, b->program);
    return 0;
}

/* (onset, is_drum, program, velocity, pitch) */
static int cmp_note_odpvp(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const mt3_note *a = pa, *b = pb;
    CMP(a->onset, b->onset);
    CMP(a->is_drum, b->is_drum);
    CMP(a->program, b->program);
    CMP(a->velocity, b->velocity);
    CMP(a->pitch, b->pitch);
    return 0;
}

/* (onset, is_drum, program, velocity, pitch, offset) -- mix_notes */
static int cmp_note_mix(const void *pa, const void *pb, void *ctx)
{
    int c = cmp_note_odpvp(pa, pb, ctx);
    if (c)
        return c;
    const mt3_note *a = pa, *b = pb;
    CMP(a->offset, b->offset);
    return 0;
}

/* group (pitch, program, is_drum), then onset */
static int cmp_note_group(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const mt3_note *a = pa, *b = pb;
    CMP(a->pitch, b->pitch);
    CMP(a->program, b->program);
    CMP(a->is_drum, b->is_drum);
    CMP(a->onset, b->onset);
    return 0;
}

/* trim_overlapping_notes (yourmt3 §7.3 step 7) on notes[0..n) in place;
 * returns the new length through *n. */
static int trim_overlaps(mt3_note *v, size_t *n, mt3_error *err)
{
    if (*n <= 1)
        return MT3_OK;
    int rc = mt3_stable_sort(v, *n, sizeof *v, cmp_note_group, NULL, err);
    if (rc)
        return rc;
    for (size_t i = 1; i < *n; i++) {
        mt3_note *p = &v[i - 1], *q = &v[i];
        if (p->pitch == q->pitch && p->program == q->program && p->is_drum == q->is_drum &&
            p->offset > q->onset)
            p->offset = q->onset;
    }
    size_t m = 0;
    for (size_t i = 0; i < *n; i++)
        if (v[i].onset < v[i].offset)
            v[m++] = v[i];
    *n = m;
    return mt3_stable_sort(v, m, sizeof *v, cmp_note_odpvp, NULL, err);
}

/* validate_notes(fix=True) (yourmt3 §7.3 step 6) */
static void validate_fix(mt3_note *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i].onset > v[i].offset) {
            double e = v[i].onset + MIN_DUR;
            v[i].offset = v[i].offset > e ? v[i].offset : e;
        } else if (!v[i].is_drum && v[i].offset - v[i].onset < 0.01) {
            v[i].offset = v[i].onset + MIN_DUR;
        }
    }
}

typedef struct ywork {
    omap open;
    uint8_t tieset[NKEYS];
    /* (program, pitch) keys as KEY(pitch, program) */
    int32_t *ties, *active, *prev_active;
    size_t n_ties, n_active, n_prev;
    /* O(1) "remove the first occurrence" on `active` (Python list.remove): per-key
     * FIFO of positions, removed entries marked dead and compacted at row end */
    int32_t *next_same;
    uint8_t *dead;
    int32_t head[NKEYS], tail[NKEYS];
    yev_vec seg, merged;
    mt3_notes chan;
} ywork;

static void act_append(ywork *w, int32_t k)
{
    size_t pos = w->n_active++;
    w->active[pos] = k;
    w->dead[pos] = 0;
    w->next_same[pos] = -1;
    if (w->tail[k] >= 0)
        w->next_same[w->tail[k]] = (int32_t)pos;
    else
        w->head[k] = (int32_t)pos;
    w->tail[k] = (int32_t)pos;
}

static int act_remove_first(ywork *w, int32_t k)
{
    int32_t pos = w->head[k];
    if (pos < 0)
        return 0;
    w->dead[pos] = 1;
    w->head[k] = w->next_same[pos];
    if (w->head[k] < 0)
        w->tail[k] = -1;
    return 1;
}

/* drop dead entries, reset the per-key queues */
static void act_compact(ywork *w)
{
    size_t m = 0;
    for (size_t i = 0; i < w->n_active; i++) {
        int32_t k = w->active[i];
        w->head[k] = w->tail[k] = -1;
        if (!w->dead[i])
            w->active[m++] = k;
    }
    w->n_active = m;
}

/* event2note_event for one row (yourmt3 §7.1).  Fills w->seg (sorted),
 * w->ties, w->active. */
static int ymt3_row(ywork *w, const int64_t *row, size_t length, double st, mt3_error *err)
{
    w->seg.n = 0;
    w->n_ties = 0;
    w->n_active = 0;
    int32_t prog = -1;
    size_t j = 0, tie_idx = length;
    for (; j < length; j++) {
        mt3_event ev = mt3_codec_decode(MT3_VOCAB_YOURMT3, row[j]);
        if (ev.type == MT3_EV_TIE) {
            tie_idx = j;
            break;
        }
        if (ev.type == MT3_EV_SHIFT)
            break;
        if (ev.type == MT3_EV_PROGRAM) {
            prog = ev.value;
        } else if (ev.type == MT3_EV_PITCH) {
            if (prog < 0)
                continue; /* Err/Missing prg in tie */
            w->ties[w->n_ties++] = KEY(ev.value, prog);
            act_append(w, KEY(ev.value, prog));
        }
    }
    if (tie_idx == length) { /* Err/Missing tie: the row is discarded */
        w->n_ties = 0;
        act_compact(w);
        w->n_active = 0;
        return MT3_OK;
    }
    int64_t start_tick = (int64_t)nearbyint(st * 100.0);
    int64_t tick = start_tick;
    int32_t vel = -1;
    int rc;
    for (j = tie_idx + 1; j < length; j++) {
        mt3_event ev = mt3_codec_decode(MT3_VOCAB_YOURMT3, row[j]);
        yev e;
        switch (ev.type) {
        case MT3_EV_SHIFT:
            if (ev.value <= 0 || ev.value > 1000)
                break; /* Err/Shift out of range */
            tick = start_tick + ev.value;
            break;
        case MT3_EV_DRUM:
            e.time = (double)tick / 100.0;
            e.pitch = ev.value;
            e.program = 128;
            e.velocity = 1;
            e.is_drum = 1;
            if ((rc = yev_push(&w->seg, e, err)))
                return rc;
            break;
        case MT3_EV_PROGRAM:
            prog = ev.value;
            break;
        case MT3_EV_VELOCITY:
            vel = ev.value;
            break;
        case MT3_EV_PITCH: {
            if (prog < 0 || vel < 0)
                break; /* Err/Missing prg, Err/Missing vel */
            int32_t k = KEY(ev.value, prog);
            if (vel > 0)
                act_append(w, k);
            else if (!act_remove_first(w, k))
                break; /* Err/Note off without note on: no event */
            e.time = (double)tick / 100.0;
            e.pitch = ev.value;
            e.program = prog;
            e.velocity = vel;
            e.is_drum = 0;
            if ((rc = yev_push(&w->seg, e, err)))
                return rc;
            break;
        }
        case MT3_EV_EOS:
            j = length; /* stop */
            break;
        default: /* PAD, UNK: skip; another tie: Err/Multi-tie, skip */
            break;
        }
    }
    act_compact(w);
    return mt3_stable_sort(w->seg.items, w->seg.n, sizeof(yev), cmp_ev_tdpvp, NULL, err);
}

/* One channel: rows of every segment -> merged events -> notes (appended to w->chan). */
static int ymt3_channel(ywork *w, const int64_t *tokens, size_t nseg, size_t nch, size_t c,
                        size_t length, const double *starts, mt3_error *err)
{
    int rc;
    w->merged.n = 0;
    w->n_prev = 0;
    for (size_t i = 0; i < nseg; i++) {
        double st = starts ? starts[i] : mt3_segment_start(MT3_SCHEME_YOURMT3, i);
        const int64_t *row = tokens + (i * nch + c) * length;
        if ((rc = ymt3_row(w, row, length, st, err)))
            return rc;
        if (i > 0) {
            for (size_t t = 0; t < w->n_ties; t++)
                w->tieset[w->ties[t]] = 1;
            for (size_t a = 0; a < w->n_prev; a++) {
                int32_t k = w->prev_active[a];
                if (w->tieset[k])
                    continue;
                yev e = {st, KEY_PITCH(k), KEY_PROGRAM(k), 0, 0};
                if ((rc = yev_push(&w->merged, e, err)))
                    return rc;
            }
            for (size_t t = 0; t < w->n_ties; t++)
                w->tieset[w->ties[t]] = 0;
        }
        for (size_t e = 0; e < w->seg.n; e++)
            if ((rc = yev_push(&w->merged, w->seg.items[e], err)))
                return rc;
        int32_t *tmp = w->prev_active;
        w->prev_active = w->active;
        w->active = tmp;
        w->n_prev = w->n_active;
        w->n_active = 0;
    }

    /* note_event2note (§7.3) */
    yev *ev = w->merged.items;
    size_t nev = w->merged.n;
    if ((rc = mt3_stable_sort(ev, nev, sizeof(yev), cmp_ev_tdpvg, NULL, err)))
        return rc;
    size_t base = w->chan.n;
    omap_init(&w->open);
    for (size_t e = 0; e < nev; e++) {
        mt3_note n;
        if (ev[e].is_drum) {
            n.onset = ev[e].time;
            n.offset = ev[e].time + MIN_DUR;
            n.pitch = ev[e].pitch;
            n.program = 128;
            n.velocity = 1;
            n.is_drum = 1;
            if ((rc = mt3_notes_push(&w->chan, &n, err)))
                return rc;
            continue;
        }
        int32_t k = KEY(ev[e].pitch, ev[e].program);
        if (ev[e].velocity == 1) {
            if (w->open.on[k]) {
                n.onset = w->open.onset[k];
                n.offset = ev[e].time;
                n.pitch = ev[e].pitch;
                n.program = ev[e].program;
                n.velocity = w->open.vel[k];
                n.is_drum = 0;
                omap_del(&w->open, k);
                if ((rc = mt3_notes_push(&w->chan, &n, err)))
                    return rc;
            }
            omap_put_new(&w->open, k, ev[e].time, 1);
        } else if (w->open.on[k]) {
            n.onset = w->open.onset[k];
            n.offset = ev[e].time;
            n.pitch = ev[e].pitch;
            n.program = ev[e].program;
            n.velocity = w->open.vel[k];
            n.is_drum = 0;
            omap_del(&w->open, k);
            if ((rc = mt3_notes_push(&w->chan, &n, err)))
                return rc;
        } /* else Err/onset not found */
    }
    for (int32_t k = w->open.head; k >= 0; k = w->open.next[k]) {
        mt3_note n = {w->open.onset[k], w->open.onset[k] + MIN_DUR, KEY_PITCH(k), 1,
                      KEY_PROGRAM(k), 0};
        if ((rc = mt3_notes_push(&w->chan, &n, err)))
            return rc;
    }
    size_t nn = w->chan.n - base;
    mt3_note *v = nn ? w->chan.items + base : NULL; /* (no arithmetic on an empty list's NULL) */
    for (size_t i = 0; i < nn; i++)
        if (v[i].offset - v[i].onset > 10)
            v[i].offset = v[i].onset + MIN_DUR;
    if ((rc = mt3_stable_sort(v, nn, sizeof *v, cmp_note_odpvp, NULL, err)))
        return rc;
    validate_fix(v, nn);
    if ((rc = trim_overlaps(v, &nn, err)))
        return rc;
    w->chan.n = base + nn;
    return MT3_OK;
}

static int decode_ymt3(const int64_t *tokens, size_t nseg, size_t nch, size_t length,
                       const double *starts, unsigned flags, mt3_notes *out, mt3_error *err)
{
    size_t total = nseg * nch * length;
    for (size_t i = 0; i < total; i++) {
        if (tokens[i] < 0 || tokens[i] >= MT3_VOCAB_SIZE_YOURMT3) {
            size_t seg = i / (nch * length), rem = i % (nch * length);
            return mt3_error_set(err, MT3_E_VALUE,
                                 "YourMT3 token id %lld at segment %zu, channel %zu, position %zu "
                                 "is outside the vocabulary 0..%d",
                                 (long long)tokens[i], seg, rem / length, rem % length,
                                 MT3_VOCAB_SIZE_YOURMT3 - 1);
        }
    }
    int rc = MT3_OK;
    size_t cap = length ? length : 1;
    ywork *w = calloc(1, sizeof *w);
    if (!w)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory for the YourMT3 decoder");
    w->ties = malloc(cap * sizeof(int32_t));
    w->active = malloc(cap * sizeof(int32_t));
    w->prev_active = malloc(cap * sizeof(int32_t));
    w->next_same = malloc(cap * sizeof(int32_t));
    w->dead = malloc(cap);
    for (size_t k = 0; k < NKEYS; k++)
        w->head[k] = w->tail[k] = -1;
    if (!w->ties || !w->active || !w->prev_active || !w->next_same || !w->dead) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory for the YourMT3 decoder");
        goto done;
    }
    for (size_t c = 0; c < nch; c++)
        if ((rc = ymt3_channel(w, tokens, nseg, nch, c, length, starts, err)))
            goto done;

    /* mix_notes (§7.4) */
    mt3_note *v = w->chan.items;
    size_t n = w->chan.n;
    if ((rc = mt3_stable_sort(v, n, sizeof *v, cmp_note_mix, NULL, err)))
        goto done;
    if ((rc = trim_overlaps(v, &n, err)))
        goto done;
    validate_fix(v, n);
    /* output remap (§7.5) */
    for (size_t i = 0; i < n; i++) {
        if (!v[i].is_drum && !(flags & MT3_DECODE_YMT3_NO_REMAP))
            v[i].program = mt3_ymt3_program_head(v[i].program);
    }
    if (flags & MT3_DECODE_YMT3_TRIM_AFTER_REMAP) {
        if ((rc = trim_overlaps(v, &n, err)))
            goto done;
    }
    if ((rc = mt3_notes_reserve(out, n, err)))
        goto done;
    for (size_t i = 0; i < n; i++) {
        mt3_note x = v[i];
        x.velocity = 100;
        out->items[out->n++] = x;
    }
done:
    if (w) {
        free(w->ties);
        free(w->active);
        free(w->prev_active);
        free(w->next_same);
        free(w->dead);
        free(w->seg.items);
        free(w->merged.items);
        mt3_notes_free(&w->chan);
        free(w);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* public entry                                                              */

unsigned mt3_decode_corrected_flags(mt3_scheme s)
{
    switch (s) {
    case MT3_SCHEME_MR_MT3:
        return MT3_DECODE_MRMT3_DROP_RULE | MT3_DECODE_MRMT3_MAGENTA_DRUMS;
    case MT3_SCHEME_YOURMT3:
        return MT3_DECODE_YMT3_TRIM_AFTER_REMAP;
    case MT3_SCHEME_MT3_PYTORCH: /* Magenta's algorithm verbatim: nothing to correct */
    case MT3_SCHEME_MAGENTA:
    case MT3_SCHEME_MAGENTA_PIANO:
        break;
    }
    return 0;
}

size_t mt3_scheme_channels(mt3_scheme s)
{
    if (s == MT3_SCHEME_YOURMT3)
        return 13;
    return family_of(s) ? 1 : 0;
}

int mt3_scheme_vocab(mt3_scheme s)
{
    if (s == MT3_SCHEME_YOURMT3)
        return MT3_VOCAB_YOURMT3;
    const mt3_family *f = family_of(s);
    return f ? (int)f->vocab : -1;
}

double mt3_segment_start(mt3_scheme s, size_t i)
{
    if (s == MT3_SCHEME_YOURMT3)
        return (32767.0 * (double)i) / 16000.0;
    const mt3_family *f = family_of(s);
    if (!f)
        return 0.0;
    double t = (f->frames * (double)i) / 125.0; /* input_times[0] = frame / 125.0 */
    return f->floor10ms ? t - fmod(t, 0.01) : t;
}

int mt3_decode_tokens(mt3_scheme s, const int64_t *tokens, size_t n_segments, size_t n_channels,
                      size_t length, const double *segment_starts, unsigned flags, mt3_notes *out,
                      mt3_error *err)
{
    if (!out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_decode_tokens: out is NULL");
    size_t want = mt3_scheme_channels(s);
    if (!want)
        return mt3_error_set(err, MT3_E_VALUE, "unknown decoding scheme %d", (int)s);
    if (n_channels != want)
        return mt3_error_set(err, MT3_E_VALUE,
                             "scheme needs %zu decoder channel(s) per segment, got %zu", want,
                             n_channels);
    if (flags & ~(unsigned)MT3_DECODE_ALL_FLAGS)
        return mt3_error_set(err, MT3_E_VALUE, "unknown decode flags 0x%x",
                             flags & ~(unsigned)MT3_DECODE_ALL_FLAGS);
    if (flags & MT3_DECODE_CORRECTED)
        flags = (flags & ~(unsigned)MT3_DECODE_CORRECTED) | mt3_decode_corrected_flags(s);
    if (n_segments && length && !tokens)
        return mt3_error_set(err, MT3_E_VALUE, "tokens is NULL");
    if (length && n_segments > SIZE_MAX / n_channels / length)
        return mt3_error_set(err, MT3_E_VALUE, "token array too large");
    if (segment_starts) {
        for (size_t i = 0; i < n_segments; i++) {
            double st = segment_starts[i];
            if (!isfinite(st) || st < 0 || st > MT3_MAX_TIME_S)
                return mt3_error_set(err, MT3_E_VALUE,
                                     "segment start %zu is %g; starts must be finite seconds in "
                                     "[0, %g]",
                                     i, st, MT3_MAX_TIME_S);
        }
    }
    size_t n0 = out->n;
    int rc;
    if (s == MT3_SCHEME_YOURMT3)
        rc = decode_ymt3(tokens, n_segments, n_channels, length, segment_starts, flags, out, err);
    else
        rc = decode_mt3(s, tokens, n_segments, length, segment_starts, flags, out, err);
    if (rc)
        out->n = n0;
    return rc;
}

/* ------------------------------------------------------------------------ */
/* gm_ext_plus (yourmt3 §6.3)                                                */

int32_t mt3_ymt3_program_head(int32_t p)
{
    if (p < 0 || p > 127)
        return p;
    if (p == 0 || p == 1 || p == 3 || p == 6 || p == 7)
        return 0;
    if (p == 2 || p == 4 || p == 5)
        return 2;
    if (p >= 8 && p <= 23)
        return p < 16 ? 8 : 16;
    if (p >= 24 && p <= 27)
        return 24;
    if (p >= 28 && p <= 31)
        return 30;
    if (p >= 32 && p <= 39)
        return 33;
    if (p >= 40 && p <= 55)
        return 48;
    if (p >= 56 && p <= 95)
        return 56 + ((p - 56) / 8) * 8;
    return p; /* 96..127: 100 and 101 are their own heads, the rest unchanged */
}

const char *mt3_ymt3_program_name(int32_t p)
{
    if (p < 0 || p > 127)
        return NULL;
    if ((p >= 96 && p <= 99) || p >= 102)
        return NULL;
    switch (mt3_ymt3_program_head(p)) {
    case 0:
        return "Acoustic Piano";
    case 2:
        return "Electric Piano";
    case 8:
        return "Chromatic Percussion";
    case 16:
        return "Organ";
    case 24:
        return "Guitar (clean)";
    case 30:
        return "Guitar (distortion)";
    case 33:
        return "Bass";
    case 48:
        return "Strings";
    case 56:
        return "Brass";
    case 64:
        return "Reed";
    case 72:
        return "Pipe";
    case 80:
        return "Synth Lead";
    case 88:
        return "Synth Pad";
    case 100:
        return "Singing Voice";
    case 101:
        return "Singing Voice (chorus)";
    }
    return NULL;
}
