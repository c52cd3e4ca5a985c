/* MIDI writers (specs/mt3-family.md §7, specs/yourmt3.md §7.5-7.6,
 * specs/magenta-t5x.md §5.8). */
#include "core/midi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* message lists                                                             */

enum { K_CH = 0, K_META = 1 };

typedef struct mmsg {
    int64_t tick;   /* absolute tick (before delta conversion) */
    uint64_t delta; /* delta tick (after conversion) */
    uint32_t score; /* secondary sort key (pretty_midi) */
    uint8_t kind;   /* K_CH / K_META */
    uint8_t nb;     /* channel message length (2 or 3) */
    uint8_t b[3];   /* channel message bytes */
    uint8_t meta;   /* meta type */
    uint8_t mlen;   /* inline meta payload length */
    uint8_t mdata[4];
    const char *text; /* meta text payload (track name), not owned */
} mmsg;

typedef struct mtrack {
    mmsg *m;
    size_t n, cap;
} mtrack;

typedef struct mfile {
    mtrack *t;
    size_t n, cap;
} mfile;

static void mfile_free(mfile *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->t[i].m);
    free(f->t);
    f->t = NULL;
    f->n = f->cap = 0;
}

static mtrack *mfile_add(mfile *f, mt3_error *err)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        mtrack *p = realloc(f->t, cap * sizeof *p);
        if (!p) {
            mt3_error_set(err, MT3_E_NOMEM, "out of memory for MIDI tracks");
            return NULL;
        }
        f->t = p;
        f->cap = cap;
    }
    mtrack *t = &f->t[f->n++];
    t->m = NULL;
    t->n = t->cap = 0;
    return t;
}

static int mtrack_push(mtrack *t, const mmsg *m, mt3_error *err)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        if (cap > SIZE_MAX / sizeof(mmsg))
            return mt3_error_set(err, MT3_E_NOMEM, "MIDI track too large");
        mmsg *p = realloc(t->m, cap * sizeof *p);
        if (!p)
            return mt3_error_set(err, MT3_E_NOMEM, "out of memory for MIDI messages");
        t->m = p;
        t->cap = cap;
    }
    t->m[t->n++] = *m;
    return MT3_OK;
}

static mmsg ch_msg(int64_t tick, uint8_t status, uint8_t d1, uint8_t d2, uint8_t nb)
{
    mmsg m;
    memset(&m, 0, sizeof m);
    m.tick = tick;
    m.kind = K_CH;
    m.nb = nb;
    m.b[0] = status;
    m.b[1] = d1;
    m.b[2] = d2;
    return m;
}

static mmsg meta_msg(int64_t tick, uint8_t type, const uint8_t *data, uint8_t len)
{
    mmsg m;
    memset(&m, 0, sizeof m);
    m.tick = tick;
    m.kind = K_META;
    m.meta = type;
    m.mlen = len;
    if (len)
        memcpy(m.mdata, data, len);
    return m;
}

static const uint8_t TEMPO_500000[3] = {0x07, 0xA1, 0x20};
static const uint8_t TIMESIG_44[4] = {0x04, 0x02, 0x18, 0x08};

static int push_eot(mtrack *t, int64_t tick, mt3_error *err)
{
    mmsg m = meta_msg(tick, 0x2F, NULL, 0);
    return mtrack_push(t, &m, err);
}

/* absolute ticks -> deltas (ticks are non-decreasing by construction) */
static int to_deltas(mtrack *t, mt3_error *err)
{
    int64_t prev = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (t->m[i].tick < prev)
            return mt3_error_set(err, MT3_E_INTERNAL, "MIDI events out of order");
        t->m[i].delta = (uint64_t)(t->m[i].tick - prev);
        prev = t->m[i].tick;
    }
    return MT3_OK;
}

/* ------------------------------------------------------------------------ */
/* byte output (mido's writer)                                               */

static inline uint8_t *put_varlen(uint8_t *p, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;
    tmp[n++] = (uint8_t)(v & 0x7F);
    while (v >>= 7)
        tmp[n++] = (uint8_t)(0x80 | (v & 0x7F));
    while (n)
        *p++ = tmp[--n];
    return p;
}

static inline uint8_t *put_be(uint8_t *p, uint64_t v, int nbytes)
{
    for (int i = nbytes - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* mido's writer: varlen deltas, running status for channel messages (reset by
 * meta events), meta = FF type varlen(len) data. */
static int serialize(const mfile *f, int tpq, uint8_t **bytes, size_t *len, mt3_error *err)
{
    if (f->n > 32767)
        return mt3_error_set(err, MT3_E_VALUE, "too many MIDI tracks (%zu)", f->n);
    /* upper bound of the file size */
    size_t bound = 14;
    for (size_t ti = 0; ti < f->n; ti++) {
        const mtrack *t = &f->t[ti];
        if (t->n > (SIZE_MAX / 2 - bound) / 24)
            return mt3_error_set(err, MT3_E_NOMEM, "MIDI file too large");
        bound += 8 + t->n * 13;
        for (size_t i = 0; i < t->n; i++)
            if (t->m[i].kind == K_META)
                bound += 12 + (t->m[i].text ? strlen(t->m[i].text) : t->m[i].mlen);
    }
    uint8_t *buf = malloc(bound);
    if (!buf)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory writing MIDI bytes");
    uint8_t *p = buf;
    memcpy(p, "MThd", 4);
    p = put_be(p + 4, 6, 4);
    p = put_be(p, 1, 2); /* type 1 */
    p = put_be(p, f->n, 2);
    p = put_be(p, (uint64_t)tpq, 2);
    for (size_t ti = 0; ti < f->n; ti++) {
        const mtrack *t = &f->t[ti];
        memcpy(p, "MTrk", 4);
        uint8_t *len_at = p + 4;
        p += 8;
        int running = -1;
        for (size_t i = 0; i < t->n; i++) {
            const mmsg *m = &t->m[i];
            p = put_varlen(p, m->delta);
            if (m->kind == K_META) {
                *p++ = 0xFF;
                *p++ = m->meta;
                const void *data = m->text ? (const void *)m->text : (const void *)m->mdata;
                size_t dl = m->text ? strlen(m->text) : m->mlen;
                p = put_varlen(p, dl);
                memcpy(p, data, dl);
                p += dl;
                running = -1;
            } else if (m->b[0] == running) {
                memcpy(p, m->b + 1, (size_t)m->nb - 1);
                p += m->nb - 1;
            } else {
                memcpy(p, m->b, m->nb);
                p += m->nb;
                running = m->b[0];
            }
        }
        size_t tl = (size_t)(p - len_at) - 4;
        if (tl > 0xFFFFFFFFu) {
            free(buf);
            return mt3_error_set(err, MT3_E_VALUE, "MIDI track longer than 4 GiB");
        }
        put_be(len_at, tl, 4);
    }
    *bytes = buf;
    *len = (size_t)(p - buf);
    return MT3_OK;
}

/* ------------------------------------------------------------------------ */
/* MR-MT3 single-track writer (§7.1)                                         */

typedef struct tev {
    double t;
    uint8_t status, pitch, vel;
} tev;

static int cmp_idx_onset(const void *pa, const void *pb, void *ctx)
{
    const mt3_note *notes = ctx;
    double a = notes[*(const size_t *)pa].onset, b = notes[*(const size_t *)pb].onset;
    return (a > b) - (a < b);
}

static int cmp_tev(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    double a = ((const tev *)pa)->t, b = ((const tev *)pb)->t;
    return (a > b) - (a < b);
}

static int cmp_int32(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

static const uint8_t GM_CHANNELS[15] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15};

static int write_mrmt3(const mt3_note *notes, size_t n, unsigned flags, mfile *f,
                       mt3_error *err)
{
    int rc = MT3_OK;
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    tev *ev = malloc((n ? 2 * n : 1) * sizeof *ev);
    if (!idx || !ev || n > SIZE_MAX / 2 / sizeof(tev)) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory writing MIDI");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if ((rc = mt3_stable_sort(idx, n, sizeof *idx, cmp_idx_onset, (void *)notes, err)))
        goto done;

    uint8_t chan_of_prog[128];
    memset(chan_of_prog, 0, sizeof chan_of_prog);
    int32_t progs[128];
    size_t nprog = 0;
    if (flags & MT3_MIDI_PROGRAM_CHANNELS) {
        uint8_t seen[128] = {0};
        for (size_t i = 0; i < n; i++)
            if (!notes[i].is_drum && !seen[notes[i].program]) {
                seen[notes[i].program] = 1;
                progs[nprog++] = notes[i].program;
            }
        qsort(progs, nprog, sizeof progs[0], cmp_int32);
        for (size_t i = 0; i < nprog; i++)
            chan_of_prog[progs[i]] = i < 15 ? GM_CHANNELS[i] : 15;
    }

    for (size_t k = 0; k < n; k++) {
        const mt3_note *x = &notes[idx[k]];
        uint8_t ch = x->is_drum ? 9 : chan_of_prog[x->program & 127];
        ev[2 * k] = (tev){x->onset, (uint8_t)(0x90 | ch), (uint8_t)x->pitch, (uint8_t)x->velocity};
        ev[2 * k + 1] = (tev){x->offset, (uint8_t)(0x80 | ch), (uint8_t)x->pitch, 0};
    }
    if ((rc = mt3_stable_sort(ev, 2 * n, sizeof *ev, cmp_tev, NULL, err)))
        goto done;

    mtrack *t = mfile_add(f, err);
    if (!t) {
        rc = MT3_E_NOMEM;
        goto done;
    }
    mmsg m = meta_msg(0, 0x51, TEMPO_500000, 3);
    if ((rc = mtrack_push(t, &m, err)))
        goto done;
    for (size_t i = 0; i < nprog; i++) {
        m = ch_msg(0, (uint8_t)(0xC0 | chan_of_prog[progs[i]]), (uint8_t)progs[i], 0, 2);
        if ((rc = mtrack_push(t, &m, err)))
            goto done;
    }
    double prev = 0.0;
    int64_t prev_tick = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        uint64_t delta;
        if (flags & MT3_MIDI_ABS_TICKS) {
            int64_t tick = (int64_t)nearbyint((ev[i].t * 220.0) * 2.0);
            delta = tick > prev_tick ? (uint64_t)(tick - prev_tick) : 0;
            if (tick > prev_tick)
                prev_tick = tick;
        } else {
            double d = ((ev[i].t - prev) * 220.0) * 2.0;
            int64_t dt = (int64_t)d; /* truncation toward zero, as Python int() */
            delta = dt > 0 ? (uint64_t)dt : 0;
            prev = ev[i].t;
        }
        m = ch_msg(0, ev[i].status, ev[i].pitch, ev[i].vel, 3);
        m.delta = delta;
        if ((rc = mtrack_push(t, &m, err)))
            goto done;
    }
    m = meta_msg(0, 0x2F, NULL, 0);
    rc = mtrack_push(t, &m, err);
done:
    free(idx);
    free(ev);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* pretty_midi's PrettyMIDI.write (§7.2 steps 2-6), shared by the PRETTY     */
/* writer (§7.2) and the MAGENTA writer (magenta-t5x §5.8)                   */

#define TICK_SCALE_PRETTY (60.0 / (120.0 * 220.0))

static int64_t pretty_tick(double t)
{
    if (t <= 0)
        return 0;
    return (int64_t)nearbyint(t / TICK_SCALE_PRETTY);
}

/* pretty_midi's event_compare as a stable sort: tick, then score.  A track_name
 * (score 0, tick 0, pushed first) stays first: pretty_midi's comparator calls it
 * equal to every tick-0 event and the stable sort keeps it in front. */
static int cmp_pretty(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const mmsg *a = pa, *b = pb;
    if (a->tick != b->tick)
        return a->tick < b->tick ? -1 : 1;
    return (a->score > b->score) - (a->score < b->score);
}

/* One pretty_midi Instrument: its program/drum flag, optional name (NULL = none,
 * a static string) and the slice [first, first + count) of the grouped order. */
typedef struct pm_inst {
    int32_t program;
    uint8_t is_drum;
    const char *name;
    size_t first, count;
} pm_inst;

/* Largest instrument list either writer builds: 128 pitched programs + 128 drum
 * programs + the empty first Instrument of the MAGENTA writer. */
#define PM_MAX_INST 257

/* Group note indices by instrument (counting sort, list order kept inside a
 * group): inst_of[i] < ninst is note i's instrument; fills order[0..n) and each
 * instrument's first/count. */
static void pm_group(const size_t *inst_of, size_t n, pm_inst *insts, size_t ninst, size_t *order)
{
    size_t fill[PM_MAX_INST];
    for (size_t k = 0; k < ninst; k++)
        insts[k].count = 0;
    for (size_t i = 0; i < n; i++)
        insts[inst_of[i]].count++;
    size_t at = 0;
    for (size_t k = 0; k < ninst; k++) {
        insts[k].first = fill[k] = at;
        at += insts[k].count;
    }
    for (size_t i = 0; i < n; i++)
        order[fill[inst_of[i]]++] = i;
}

/* Track 0: set_tempo 500000 and time_signature 4/4 at tick 0, end_of_track at 1. */
static int pm_timing_track(mfile *f, mt3_error *err)
{
    mtrack *t = mfile_add(f, err);
    if (!t)
        return MT3_E_NOMEM;
    mmsg m = meta_msg(0, 0x51, TEMPO_500000, 3); /* already in sorted order */
    int rc = mtrack_push(t, &m, err);
    if (rc)
        return rc;
    m = meta_msg(0, 0x58, TIMESIG_44, 4);
    if ((rc = mtrack_push(t, &m, err)) || (rc = push_eot(t, 1, err)))
        return rc;
    return to_deltas(t, err);
}

/* The track of pm.instruments[k]: track_name (if named), program_change, note_on /
 * velocity-0 note_on per note, sorted; channel 9 for drums else GM_CHANNELS[k % 15];
 * end_of_track at the last tick + 1. */
static int pm_inst_track(mfile *f, size_t k, const pm_inst *in, const mt3_note *notes,
                         const size_t *order, mt3_error *err)
{
    mtrack *t = mfile_add(f, err);
    if (!t)
        return MT3_E_NOMEM;
    int rc;
    mmsg m;
    if (in->name) {
        m = meta_msg(0, 0x03, NULL, 0);
        m.text = in->name;
        if ((rc = mtrack_push(t, &m, err)))
            return rc;
    }
    uint8_t ch = in->is_drum ? 9 : GM_CHANNELS[k % 15];
    m = ch_msg(0, (uint8_t)(0xC0 | ch), (uint8_t)in->program, 0, 2);
    m.score = 6u * 65536u;
    if ((rc = mtrack_push(t, &m, err)))
        return rc;
    for (size_t oi = in->first; oi < in->first + in->count; oi++) {
        size_t i = order[oi];
        uint8_t p = (uint8_t)notes[i].pitch, v = (uint8_t)notes[i].velocity;
        m = ch_msg(pretty_tick(notes[i].onset), (uint8_t)(0x90 | ch), p, v, 3);
        m.score = 10u * 65536u + 256u * p + v;
        if ((rc = mtrack_push(t, &m, err)))
            return rc;
        m = ch_msg(pretty_tick(notes[i].offset), (uint8_t)(0x90 | ch), p, 0, 3);
        m.score = 10u * 65536u + 256u * p;
        if ((rc = mtrack_push(t, &m, err)))
            return rc;
    }
    if ((rc = mt3_stable_sort(t->m, t->n, sizeof(mmsg), cmp_pretty, NULL, err)))
        return rc;
    if ((rc = push_eot(t, t->m[t->n - 1].tick + 1, err)))
        return rc;
    return to_deltas(t, err);
}

/* PrettyMIDI(initial_tempo=120).write with instruments insts[0..ninst) whose notes
 * are grouped in order (pm_group). */
static int pm_write(const pm_inst *insts, size_t ninst, const mt3_note *notes,
                    const size_t *order, mfile *f, mt3_error *err)
{
    int rc = pm_timing_track(f, err);
    for (size_t k = 0; !rc && k < ninst; k++)
        rc = pm_inst_track(f, k, &insts[k], notes, order, err);
    return rc;
}

/* Scratch arrays of n entries each (at least one); MT3_E_NOMEM on failure. */
static int pm_alloc(size_t n, size_t **inst_of, size_t **order, mt3_error *err)
{
    *inst_of = malloc((n ? n : 1) * sizeof **inst_of);
    *order = malloc((n ? n : 1) * sizeof **order);
    if (*inst_of && *order)
        return MT3_OK;
    free(*inst_of);
    free(*order);
    *inst_of = *order = NULL;
    return mt3_error_set(err, MT3_E_NOMEM, "out of memory writing MIDI");
}

/* ---- PRETTY (§7.2): instruments by first appearance of (program, is_drum) ---- */
static int write_pretty(const mt3_note *notes, size_t n, mfile *f, mt3_error *err)
{
    size_t *inst_of, *order;
    int rc = pm_alloc(n, &inst_of, &order, err);
    if (rc)
        return rc;
    int32_t slot[2][128];
    for (int d = 0; d < 2; d++)
        for (int p = 0; p < 128; p++)
            slot[d][p] = -1;
    pm_inst insts[PM_MAX_INST];
    size_t ninst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = notes[i].is_drum ? 1 : 0;
        int32_t p = notes[i].program > 127 ? 0 : notes[i].program;
        if (slot[d][p] < 0) {
            slot[d][p] = (int32_t)ninst;
            insts[ninst] = (pm_inst){p, (uint8_t)d, NULL, 0, 0};
            ninst++;
        }
        inst_of[i] = (size_t)slot[d][p];
    }
    pm_group(inst_of, n, insts, ninst, order);
    rc = pm_write(insts, ninst, notes, order, f, err);
    free(inst_of);
    free(order);
    return rc;
}

/* ---- MAGENTA (magenta-t5x §5.8): note_seq.note_sequence_to_pretty_midi ------- */

/* pretty_midi's INSTRUMENT_MAP: the General MIDI program names, with
 * pretty_midi's own spellings ("Lead 4 chiff", "Blown bottle"). */
static const char *const GM_PROGRAM_NAMES[128] = {
    /* 0 piano */
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    /* 8 chromatic percussion */
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone",
    "Tubular Bells", "Dulcimer",
    /* 16 organ */
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion",
    "Harmonica", "Tango Accordion",
    /* 24 guitar */
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics",
    /* 32 bass */
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    /* 40 strings */
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings",
    "Orchestral Harp", "Timpani",
    /* 48 ensemble */
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs",
    "Voice Oohs", "Synth Choir", "Orchestra Hit",
    /* 56 brass */
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section",
    "Synth Brass 1", "Synth Brass 2",
    /* 64 reed */
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon",
    "Clarinet",
    /* 72 pipe */
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown bottle", "Shakuhachi", "Whistle",
    "Ocarina",
    /* 80 synth lead */
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 chiff",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    /* 88 synth pad */
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)",
    "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    /* 96 synth effects */
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    /* 104 ethnic */
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    /* 112 percussive */
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom",
    "Synth Drum", "Reverse Cymbal",
    /* 120 sound effects */
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring",
    "Helicopter", "Applause", "Gunshot"};

/* A note_seq instrument key (instrument, program, is_drum). */
typedef struct mg_key {
    int32_t instrument, program;
    uint8_t is_drum;
} mg_key;

static int cmp_mg_key(const void *pa, const void *pb)
{
    const mg_key *a = pa, *b = pb;
    if (a->instrument != b->instrument)
        return a->instrument < b->instrument ? -1 : 1;
    if (a->program != b->program)
        return a->program < b->program ? -1 : 1;
    return (a->is_drum > b->is_drum) - (a->is_drum < b->is_drum);
}

static int write_magenta(const mt3_note *notes, size_t n, mfile *f, mt3_error *err)
{
    size_t *inst_of, *order;
    int rc = pm_alloc(n, &inst_of, &order, err);
    if (rc)
        return rc;
    /* assign_instruments, note-list order: a new pitched program gets the next
     * instrument number 0..8, 10, 11, ... (9 skipped); drums are instrument 9.
     * A key's slot: its program for pitched notes, 128 + program for drums. */
    int32_t inst_of_prog[128];
    for (int p = 0; p < 128; p++)
        inst_of_prog[p] = -1;
    int32_t nassigned = 0;
    uint8_t slot_seen[256] = {0};
    mg_key keys[256];
    size_t nkeys = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t p = notes[i].program > 127 ? 0 : notes[i].program;
        int32_t instrument;
        if (notes[i].is_drum) {
            instrument = 9;
        } else {
            if (inst_of_prog[p] < 0) {
                inst_of_prog[p] = nassigned < 9 ? nassigned : nassigned + 1;
                nassigned++;
            }
            instrument = inst_of_prog[p];
        }
        int s = notes[i].is_drum ? 128 + p : p;
        if (!slot_seen[s]) {
            slot_seen[s] = 1;
            keys[nkeys++] = (mg_key){instrument, p, notes[i].is_drum ? 1 : 0};
        }
        inst_of[i] = (size_t)s; /* the slot for now; the instrument index below */
    }
    /* keys in sorted order; instrument 0 reuses the first (empty, unnamed)
     * Instrument(program=0), every other key appends a named one */
    qsort(keys, nkeys, sizeof keys[0], cmp_mg_key);
    pm_inst insts[PM_MAX_INST];
    size_t ninst = 1;
    insts[0] = (pm_inst){0, 0, NULL, 0, 0};
    size_t inst_of_slot[256] = {0};
    for (size_t k = 0; k < nkeys; k++) {
        size_t idx;
        if (keys[k].instrument == 0) {
            idx = 0;
            insts[0].program = keys[k].program;
            insts[0].is_drum = keys[k].is_drum;
        } else {
            idx = ninst++;
            const char *name = keys[k].is_drum ? "Drums" : GM_PROGRAM_NAMES[keys[k].program];
            insts[idx] = (pm_inst){keys[k].program, keys[k].is_drum, name, 0, 0};
        }
        inst_of_slot[keys[k].is_drum ? 128 + keys[k].program : keys[k].program] = idx;
    }
    for (size_t i = 0; i < n; i++)
        inst_of[i] = inst_of_slot[inst_of[i]];
    pm_group(inst_of, n, insts, ninst, order);
    rc = pm_write(insts, ninst, notes, order, f, err);
    free(inst_of);
    free(order);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* auto_filter (§7.4, PRETTY only)                                           */

static mt3_auto_filter_action auto_filter(mfile *f)
{
    int prog_by_ch[16];
    for (int c = 0; c < 16; c++)
        prog_by_ch[c] = 0;
    uint64_t drum = 0, bass = 0, chrom = 0, other = 0;
    for (size_t ti = 0; ti < f->n; ti++) {
        for (size_t i = 0; i < f->t[ti].n; i++) {
            const mmsg *m = &f->t[ti].m[i];
            if (m->kind != K_CH)
                continue;
            int type = m->b[0] & 0xF0, ch = m->b[0] & 0x0F;
            if (type == 0xC0) {
                prog_by_ch[ch] = m->b[1];
            } else if (type == 0x90 && m->b[2] > 0) {
                if (ch == 9) {
                    drum++;
                } else {
                    int p = prog_by_ch[ch];
                    if (p >= 32 && p <= 39)
                        bass++;
                    else if (p >= 8 && p <= 15)
                        chrom++;
                    else
                        other++;
                }
            }
        }
    }
    uint64_t total = drum + bass + chrom + other;
    if (total == 0)
        return MT3_AF_UNCHANGED;
    double r_drum = (double)drum / (double)total;
    double r_bass = (double)bass / (double)total;
    double r_chrom = (double)chrom / (double)total;
    mt3_auto_filter_action act = MT3_AF_UNCHANGED;
    if (drum > 0 && (r_bass > 0.2 || r_chrom > 0.5))
        act = MT3_AF_DRUMS_ONLY;
    else if (r_drum > 0.6)
        act = MT3_AF_DRUMS_ONLY;
    else if (r_chrom > 0.7)
        act = MT3_AF_REMAP_TO_DRUMS;
    if (act == MT3_AF_UNCHANGED)
        return act;
    for (size_t ti = 0; ti < f->n; ti++) {
        mtrack *t = &f->t[ti];
        size_t k = 0;
        for (size_t i = 0; i < t->n; i++) {
            mmsg m = t->m[i];
            if (m.kind == K_CH) {
                int type = m.b[0] & 0xF0, ch = m.b[0] & 0x0F;
                if (act == MT3_AF_DRUMS_ONLY) {
                    if (ch != 9)
                        continue; /* dropped with its delta */
                } else {
                    if (type == 0xC0)
                        continue;
                    if (type == 0x90 || type == 0x80)
                        m.b[0] = (uint8_t)(type | 9);
                }
            }
            t->m[k++] = m;
        }
        t->n = k;
    }
    return act;
}

/* ------------------------------------------------------------------------ */
/* YourMT3 writer (yourmt3 §7.5-7.6)                                         */

typedef struct yme {
    double time;
    int32_t program, velocity, pitch;
    uint8_t is_drum;
} yme;

static int cmp_yme(const void *pa, const void *pb, void *ctx)
{
    (void)ctx;
    const yme *a = pa, *b = pb;
    if (a->time != b->time)
        return a->time < b->time ? -1 : 1;
    if (a->is_drum != b->is_drum)
        return a->is_drum < b->is_drum ? -1 : 1;
    if (a->program != b->program)
        return a->program < b->program ? -1 : 1;
    if (a->velocity != b->velocity)
        return a->velocity < b->velocity ? -1 : 1;
    return (a->pitch > b->pitch) - (a->pitch < b->pitch);
}

static int write_ymt3(const mt3_note *notes, size_t n, mfile *f, mt3_error *err)
{
    int rc = MT3_OK;
    size_t *byprog = NULL;
    if (n > SIZE_MAX / 3 / sizeof(yme))
        return mt3_error_set(err, MT3_E_NOMEM, "too many notes");
    yme *ev = malloc((n ? 3 * n : 1) * sizeof *ev);
    if (!ev)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory writing MIDI");
    size_t ne = 0;
    /* note2note_event after the gm_ext_plus remap */
    for (size_t i = 0; i < n; i++) {
        const mt3_note *x = &notes[i];
        int32_t prog = x->is_drum ? 128 : mt3_ymt3_program_head(x->program);
        ev[ne++] = (yme){x->onset, prog, x->velocity, x->pitch, x->is_drum};
        if (!x->is_drum)
            ev[ne++] = (yme){x->offset, prog, 0, x->pitch, 0};
    }
    if ((rc = mt3_stable_sort(ev, ne, sizeof *ev, cmp_yme, NULL, err)))
        goto done;
    /* note_event2midi: drum offsets at onset + 10 ms, re-sort */
    size_t nbase = ne;
    for (size_t i = 0; i < nbase; i++)
        if (ev[i].is_drum)
            ev[ne++] = (yme){ev[i].time + 0.01, 128, 0, ev[i].pitch, 1};
    if ((rc = mt3_stable_sort(ev, ne, sizeof *ev, cmp_yme, NULL, err)))
        goto done;

    uint8_t present[129] = {0};
    size_t pstart[130] = {0};
    for (size_t i = 0; i < ne; i++) {
        present[ev[i].program] = 1;
        pstart[ev[i].program + 1]++;
    }
    for (int p = 0; p < 129; p++)
        pstart[p + 1] += pstart[p];
    byprog = malloc((ne ? ne : 1) * sizeof *byprog);
    if (!byprog) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory writing MIDI");
        goto done;
    }
    {
        size_t fill[129];
        memcpy(fill, pstart, sizeof fill);
        for (size_t i = 0; i < ne; i++)
            byprog[fill[ev[i].program]++] = i;
    }
    uint8_t chan[129];
    size_t next = 0;
    for (int p = 0; p < 128; p++)
        if (present[p])
            chan[p] = next < 15 ? GM_CHANNELS[next++] : 15;
    chan[128] = 9;

    mtrack *t = mfile_add(f, err); /* track 0: end_of_track only */
    if (!t || (rc = push_eot(t, 0, err))) {
        rc = rc ? rc : MT3_E_NOMEM;
        goto done;
    }
    const double scale = (500000.0 * 1e-6) / 480.0;
    for (int p = 0; p <= 128; p++) {
        if (!present[p])
            continue;
        t = mfile_add(f, err);
        if (!t) {
            rc = MT3_E_NOMEM;
            goto done;
        }
        mmsg m = meta_msg(0, 0x03, NULL, 0);
        static const char *const prg_names[128] = {
            "Prg. 0",   "Prg. 1",   "Prg. 2",   "Prg. 3",   "Prg. 4",   "Prg. 5",   "Prg. 6",
            "Prg. 7",   "Prg. 8",   "Prg. 9",   "Prg. 10",  "Prg. 11",  "Prg. 12",  "Prg. 13",
            "Prg. 14",  "Prg. 15",  "Prg. 16",  "Prg. 17",  "Prg. 18",  "Prg. 19",  "Prg. 20",
            "Prg. 21",  "Prg. 22",  "Prg. 23",  "Prg. 24",  "Prg. 25",  "Prg. 26",  "Prg. 27",
            "Prg. 28",  "Prg. 29",  "Prg. 30",  "Prg. 31",  "Prg. 32",  "Prg. 33",  "Prg. 34",
            "Prg. 35",  "Prg. 36",  "Prg. 37",  "Prg. 38",  "Prg. 39",  "Prg. 40",  "Prg. 41",
            "Prg. 42",  "Prg. 43",  "Prg. 44",  "Prg. 45",  "Prg. 46",  "Prg. 47",  "Prg. 48",
            "Prg. 49",  "Prg. 50",  "Prg. 51",  "Prg. 52",  "Prg. 53",  "Prg. 54",  "Prg. 55",
            "Prg. 56",  "Prg. 57",  "Prg. 58",  "Prg. 59",  "Prg. 60",  "Prg. 61",  "Prg. 62",
            "Prg. 63",  "Prg. 64",  "Prg. 65",  "Prg. 66",  "Prg. 67",  "Prg. 68",  "Prg. 69",
            "Prg. 70",  "Prg. 71",  "Prg. 72",  "Prg. 73",  "Prg. 74",  "Prg. 75",  "Prg. 76",
            "Prg. 77",  "Prg. 78",  "Prg. 79",  "Prg. 80",  "Prg. 81",  "Prg. 82",  "Prg. 83",
            "Prg. 84",  "Prg. 85",  "Prg. 86",  "Prg. 87",  "Prg. 88",  "Prg. 89",  "Prg. 90",
            "Prg. 91",  "Prg. 92",  "Prg. 93",  "Prg. 94",  "Prg. 95",  "Prg. 96",  "Prg. 97",
            "Prg. 98",  "Prg. 99",  "Prg. 100", "Prg. 101", "Prg. 102", "Prg. 103", "Prg. 104",
            "Prg. 105", "Prg. 106", "Prg. 107", "Prg. 108", "Prg. 109", "Prg. 110", "Prg. 111",
            "Prg. 112", "Prg. 113", "Prg. 114", "Prg. 115", "Prg. 116", "Prg. 117", "Prg. 118",
            "Prg. 119", "Prg. 120", "Prg. 121", "Prg. 122", "Prg. 123", "Prg. 124", "Prg. 125",
            "Prg. 126", "Prg. 127"};
        if (p == 128)
            m.text = "Drums";
        else
            m.text = mt3_ymt3_program_name(p) ? mt3_ymt3_program_name(p) : prg_names[p];
        if ((rc = mtrack_push(t, &m, err)))
            goto done;
        uint8_t ch = chan[p];
        uint8_t pc = p == 128 ? 0 : p == 100 ? 65 : p == 101 ? 53 : (uint8_t)p;
        m = ch_msg(0, (uint8_t)(0xC0 | ch), pc, 0, 2);
        if ((rc = mtrack_push(t, &m, err)))
            goto done;
        for (size_t bi = pstart[p]; bi < pstart[p + 1]; bi++) {
            size_t i = byprog[bi];
            int64_t tick = (int64_t)nearbyint(ev[i].time / scale);
            if (ev[i].velocity > 0)
                m = ch_msg(tick, (uint8_t)(0x90 | ch), (uint8_t)ev[i].pitch, 100, 3);
            else
                m = ch_msg(tick, (uint8_t)(0x80 | ch), (uint8_t)ev[i].pitch, 0, 3);
            if ((rc = mtrack_push(t, &m, err)))
                goto done;
        }
        if ((rc = push_eot(t, t->m[t->n - 1].tick, err)) || (rc = to_deltas(t, err)))
            goto done;
    }
done:
    free(byprog);
    free(ev);
    return rc;
}

/* ------------------------------------------------------------------------ */

int mt3_midi_write_ex(mt3_midi_style st, const mt3_note *notes, size_t n, unsigned flags,
                      uint8_t **bytes, size_t *len, mt3_auto_filter_action *af, mt3_error *err)
{
    if (!bytes || !len)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_midi_write: NULL output pointer");
    *bytes = NULL;
    *len = 0;
    if (af)
        *af = MT3_AF_UNCHANGED;
    if (n && !notes)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_midi_write: notes is NULL");
    if (flags & ~(unsigned)MT3_MIDI_ALL_FLAGS)
        return mt3_error_set(err, MT3_E_VALUE, "unknown MIDI writer flags 0x%x",
                             flags & ~(unsigned)MT3_MIDI_ALL_FLAGS);
    if (flags & MT3_MIDI_CORRECTED) {
        flags &= ~(unsigned)MT3_MIDI_CORRECTED;
        if (st == MT3_MIDI_MR_MT3)
            flags |= MT3_MIDI_ABS_TICKS | MT3_MIDI_PROGRAM_CHANNELS;
    }
    int rc = mt3_notes_validate(notes, n, err);
    if (rc)
        return rc;
    mfile f = {0};
    int tpq;
    switch (st) {
    case MT3_MIDI_MR_MT3:
        tpq = 220;
        rc = write_mrmt3(notes, n, flags, &f, err);
        break;
    case MT3_MIDI_PRETTY:
        tpq = 220;
        rc = write_pretty(notes, n, &f, err);
        if (!rc && (flags & MT3_MIDI_AUTO_FILTER)) {
            mt3_auto_filter_action a = auto_filter(&f);
            if (af)
                *af = a;
        }
        break;
    case MT3_MIDI_MAGENTA:
        tpq = 220;
        rc = write_magenta(notes, n, &f, err);
        break;
    case MT3_MIDI_YOURMT3:
        tpq = 480;
        rc = write_ymt3(notes, n, &f, err);
        break;
    default:
        return mt3_error_set(err, MT3_E_VALUE, "unknown MIDI style %d", (int)st);
    }
    if (!rc)
        rc = serialize(&f, tpq, bytes, len, err);
    mfile_free(&f);
    return rc;
}

int mt3_midi_write(mt3_midi_style st, const mt3_note *notes, size_t n, unsigned flags,
                   uint8_t **bytes, size_t *len, mt3_error *err)
{
    return mt3_midi_write_ex(st, notes, n, flags, bytes, len, NULL, err);
}
