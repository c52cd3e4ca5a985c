#include "core/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROGRESS_INTERVAL_S 0.2

void mt3_tokens_free(mt3_tokens *t)
{
    if (!t)
        return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* Fill n int64 values. */
static void fill64(int64_t *p, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        p[i] = v;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* t5x's brevity penalty ((5 + n) / 6)^alpha, float32 as in jnp. */
static float brevity(int n)
{
    return powf((5.0f + (float)n) / 6.0f, MT3_BEAM1_ALPHA);
}

/* Beam-1 per-row state, kept parallel to the active rows. */
typedef struct beam_rows {
    float *live;   /* L: the live path's log-prob */
    float *best;   /* the finished candidate's score (MT3_BEAM1_NEG: none yet) */
    int32_t *eos_at; /* its EOS position (-1: none) */
    int64_t *ids2;   /* step_top2 output [2 * rows] */
    float *lp2;
} beam_rows;

/* Encode k segments into the session: a fresh batch (`fresh`: encode, then
 * append the rest) or more rows after the active ones (append only), at
 * most chunk_max segments per encoder call.  The encoder's activations
 * (attention maps, feed-forward) grow with the segments encoded at once, so
 * a large batch is encoded in chunks (appended with append_rows) to keep
 * that transient within the plan; each segment's encoding is independent of
 * the others in its call, so chunking changes no value. */
static int encode_segments(const mt3_model *m, mt3_engine_session *sess, const float *x, int k, int frames,
                           int fresh, int chunk_max, mt3_error *err)
{
    const mt3_engine_api *api = m->api;
    const size_t stride = (size_t)frames * (size_t)m->meta.feature_bins;
    int chunk = chunk_max;
    int done = 0;
    while (done < k) {
        int c = k - done < chunk ? k - done : chunk;
        const float *xc = x + (size_t)done * stride;
        int rc;
        if (fresh && done == 0)
            rc = api->encode(sess, xc, c, frames, err);
        else
            rc = api->append_rows(sess, xc, c, frames, err);
        if (rc)
            return rc;
        done += c;
    }
    return MT3_OK;
}

/* The generation loop (see decode.h): at most bs segments' rows active;
 * rows sit in groups of one position each, oldest first.  `drain`: a new
 * batch is encoded only when the last one has ended (one group, engine
 * step); else finished rows' slots are refilled as they free up (a step is
 * one step_groups call while several groups are active), from segments
 * staged ahead when the engine can (stage_rows/append_staged).
 * ids: [n_segments * C][max_new], pre-filled with pad. */
static int decode_rows(const mt3_model *m, mt3_engine_session *sess, const float *features, int n_segments,
                       int frames, int bs, int max_new, int drain, const mt3_decode_opts *o, int64_t *ids,
                       mt3_tokens *out, int *length, double next_report, mt3_error *err)
{
    const mt3_model_meta *meta = &m->meta;
    const mt3_engine_api *api = m->api;
    const int C = meta->channels;
    const int cap_rows = bs * C;
    const size_t seg_stride = (size_t)frames * (size_t)meta->feature_bins;
    /* Rows end one here, one there; refilling each from its own encoder call
     * would encode in small, slow calls.  With the engine's staging pool,
     * segments are encoded up to `chunk` at a time ahead of need and
     * handed to slots as they free up. */
    const int chunk = o->encode_chunk > 0 && o->encode_chunk < MT3_ENCODE_CHUNK ? o->encode_chunk : MT3_ENCODE_CHUNK;
    const int stage_cap = !drain ? (bs < chunk ? bs : chunk) : 0; /* segments */
    /* a refill waits for a quarter of the slots: each refill starts a group
     * at position 0, and every group costs the step its own self-attention
     * ops (measured: refilling each slot at once was no faster at batch 8) */
    const int refill_min = bs / 4 > 1 ? bs / 4 : 1; /* segments */
    int64_t *tok = malloc((size_t)cap_rows * sizeof *tok);
    int64_t *nxt = malloc((size_t)cap_rows * sizeof *nxt);
    int32_t *row_of = malloc((size_t)cap_rows * sizeof *row_of); /* active index -> global row */
    int32_t *keep = malloc((size_t)cap_rows * sizeof *keep);
    int32_t *gsize = malloc((size_t)cap_rows * sizeof *gsize);
    int32_t *gpos = malloc((size_t)cap_rows * sizeof *gpos);
    int *left = malloc((size_t)n_segments * sizeof *left); /* rows still decoding per segment */
    const int beam = o->rule == MT3_DECODE_BEAM1;
    const float end_bp = brevity(max_new + 1); /* BP(T + 1) of the break bound */
    beam_rows br = {0};
    if (beam) {
        br.live = malloc((size_t)cap_rows * sizeof *br.live);
        br.best = malloc((size_t)cap_rows * sizeof *br.best);
        br.eos_at = malloc((size_t)cap_rows * sizeof *br.eos_at);
        br.ids2 = malloc((size_t)cap_rows * 2 * sizeof *br.ids2);
        br.lp2 = malloc((size_t)cap_rows * 2 * sizeof *br.lp2);
    }
    int rc = MT3_OK;
    if (!tok || !nxt || !row_of || !keep || !gsize || !gpos || !left ||
        (beam && (!br.live || !br.best || !br.eos_at || !br.ids2 || !br.lp2))) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory for %d decoder rows", cap_rows);
        goto done;
    }
    int n_active = 0, n_groups = 0, next_seg = 0, staged = 0, segs_done = 0, reported = 0, batch_rows = 0;
    while (next_seg < n_segments || n_active > 0) {
        /* refill: the first batch, then when enough slots are free */
        int pending = n_segments - next_seg; /* not yet active (staged ones included) */
        int k = (cap_rows - n_active) / C;
        if (k > pending)
            k = pending;
        if (k > 0 && (n_active == 0 || (!drain && (k >= refill_min || k == pending)))) {
            if (stage_cap && (n_active > 0 || staged > 0)) {
                if (staged == 0) {
                    staged = pending < stage_cap ? pending : stage_cap;
                    rc = api->stage_rows(sess, features + (size_t)next_seg * seg_stride, staged, frames, err);
                    if (rc)
                        goto done;
                }
                if (k > staged)
                    k = staged;
                rc = api->append_staged(sess, k, err);
                staged -= k;
            } else {
                rc = encode_segments(m, sess, features + (size_t)next_seg * seg_stride, k, frames, n_active == 0,
                                     chunk, err);
            }
            if (rc)
                goto done;
            for (int j = 0; j < k * C; j++) {
                tok[n_active + j] = meta->start_id;
                row_of[n_active + j] = next_seg * C + j;
                if (beam) {
                    br.live[n_active + j] = 0.0f;
                    br.best[n_active + j] = MT3_BEAM1_NEG;
                    br.eos_at[n_active + j] = -1;
                }
            }
            for (int j = 0; j < k; j++)
                left[next_seg + j] = C;
            gsize[n_groups] = k * C;
            gpos[n_groups] = 0;
            n_groups++;
            n_active += k * C;
            batch_rows = n_active;
            next_seg += k;
            if (api->active_rows(sess) != n_active) {
                rc = mt3_error_set(err, MT3_E_INTERNAL, "engine reports %d active rows, expected %d",
                                   api->active_rows(sess), n_active);
                goto done;
            }
        }
        if (o->cancel && *o->cancel) {
            rc = mt3_error_set(err, MT3_E_CANCELLED, "decoding cancelled");
            goto done;
        }
        if (o->progress && (segs_done > reported || mono_s() >= next_report)) {
            reported = segs_done; /* every completed segment (as after each drained batch), else ~0.2 s */
            if (o->progress(o->progress_user, segs_done, n_segments, out->row_steps)) {
                rc = mt3_error_set(err, MT3_E_CANCELLED, "decoding cancelled");
                goto done;
            }
            next_report = mono_s() + PROGRESS_INTERVAL_S;
        }
        if (beam)
            rc = api->step_top2(sess, tok, n_groups, gsize, gpos, br.live, br.ids2, br.lp2, err);
        else
            rc = n_groups == 1 ? api->step(sess, tok, gpos[0], nxt, err)
                               : api->step_groups(sess, tok, n_groups, gsize, gpos, nxt, err);
        if (rc)
            goto done;
        out->steps++;
        out->row_steps += n_active;
        out->slot_steps += drain ? batch_rows : cap_rows; /* drain: the slots of the current batch */
        int n_keep = 0, ng = 0, i = 0;
        for (int g = 0; g < n_groups; g++) {
            const int p = gpos[g];
            int kept = 0;
            for (int r = 0; r < gsize[g]; r++, i++) {
                int64_t *row_ids = ids + (size_t)row_of[i] * (size_t)max_new;
                int finished;
                if (beam) {
                    const int64_t *c = br.ids2 + 2 * (size_t)i;
                    const float *v = br.lp2 + 2 * (size_t)i;
                    if (c[0] < 0 || c[0] >= meta->vocab_size || c[1] < 0 || c[1] >= meta->vocab_size ||
                        c[0] == c[1] || !(v[0] >= v[1])) {
                        rc = mt3_error_set(err, MT3_E_INFERENCE,
                                           "network produced candidates %lld, %lld (log-probs %g, %g): not two "
                                           "distinct ids of the vocabulary in descending order",
                                           (long long)c[0], (long long)c[1], (double)v[0], (double)v[1]);
                        goto done;
                    }
                    const float bp = brevity(p + 1);
                    for (int q = 0; q < 2; q++)
                        if (c[q] == meta->eos_id && v[q] / bp > br.best[i]) {
                            br.best[i] = v[q] / bp;
                            br.eos_at[i] = p;
                        }
                    const int q = c[0] == meta->eos_id ? 1 : 0; /* the live path never takes EOS */
                    nxt[i] = c[q];
                    br.live[i] = v[q];
                    row_ids[p] = c[q];
                    finished = p + 1 >= max_new || (br.eos_at[i] >= 0 && br.best[i] > br.live[i] / end_bp);
                    if (finished && br.eos_at[i] >= 0) { /* the finished candidate: prefix + EOS */
                        row_ids[br.eos_at[i]] = meta->eos_id;
                        fill64(row_ids + br.eos_at[i] + 1, (size_t)(p - br.eos_at[i]), meta->pad_id);
                    }
                } else {
                    int64_t t = nxt[i];
                    if (t < 0 || t >= meta->vocab_size) {
                        rc = mt3_error_set(err, MT3_E_INFERENCE,
                                           "network produced token id %lld outside the vocabulary", (long long)t);
                        goto done;
                    }
                    row_ids[p] = t;
                    finished = ((t == meta->eos_id) && (p > 0 || meta->check_first_eos)) || p + 1 >= max_new;
                }
                if (finished) {
                    if (--left[row_of[i] / C] == 0)
                        segs_done++;
                } else {
                    keep[n_keep++] = i;
                    kept++;
                }
            }
            if (p + 1 > *length)
                *length = p + 1;
            if (kept) {
                gsize[ng] = kept;
                gpos[ng] = p + 1;
                ng++;
            }
        }
        if (n_keep < n_active) {
            rc = api->keep_rows(sess, keep, n_keep, err);
            if (rc)
                goto done;
            for (int j = 0; j < n_keep; j++) {
                tok[j] = nxt[keep[j]];
                row_of[j] = row_of[keep[j]];
                if (beam) {
                    br.live[j] = br.live[keep[j]];
                    br.best[j] = br.best[keep[j]];
                    br.eos_at[j] = br.eos_at[keep[j]];
                }
            }
        } else {
            memcpy(tok, nxt, (size_t)n_active * sizeof *tok);
        }
        n_active = n_keep;
        n_groups = ng;
    }
    if (o->progress && o->progress(o->progress_user, n_segments, n_segments, out->row_steps))
        rc = mt3_error_set(err, MT3_E_CANCELLED, "decoding cancelled");
done:
    free(tok);
    free(nxt);
    free(row_of);
    free(keep);
    free(gsize);
    free(gpos);
    free(left);
    free(br.live);
    free(br.best);
    free(br.eos_at);
    free(br.ids2);
    free(br.lp2);
    return rc;
}

int mt3_decode_greedy(const mt3_model *m, const float *features, int n_segments, int frames,
                      const mt3_decode_opts *opts, mt3_tokens *out, mt3_error *err)
{
    if (!m || !out || (n_segments > 0 && !features))
        return mt3_error_set(err, MT3_E_VALUE, "mt3_decode_greedy: NULL argument");
    memset(out, 0, sizeof *out);
    const mt3_model_meta *meta = &m->meta;
    const mt3_engine_api *api = m->api;
    mt3_decode_opts o = {0};
    if (opts)
        o = *opts;
    if (n_segments < 0)
        return mt3_error_set(err, MT3_E_VALUE, "n_segments must be >= 0");
    if (o.rule != MT3_DECODE_GREEDY && o.rule != MT3_DECODE_BEAM1)
        return mt3_error_set(err, MT3_E_VALUE, "unknown decoding rule %d", o.rule);
    if (o.rule == MT3_DECODE_BEAM1 && !(m->caps & MT3_ENGINE_CAP_STEP_TOP2))
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "beam-1 decoding needs an export with step_top2 (mt3-infer-export/5 or later, MT3 "
                             "family); re-export the checkpoint with `mt3-infer export`");
    if (frames < meta->min_frames || frames > meta->frames)
        return mt3_error_set(err, MT3_E_VALUE,
                             "features have %d frames per segment; this model accepts %d..%d",
                             frames, meta->min_frames, meta->frames);
    int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : meta->max_new_tokens;
    if (max_new > meta->max_len)
        return mt3_error_set(err, MT3_E_VALUE,
                             "max_new_tokens=%d exceeds this model's %d decoder positions",
                             o.max_new_tokens, meta->max_len);
    const int C = meta->channels;
    if (n_segments > 0 && (long long)n_segments * C > (1 << 28) / (max_new > 0 ? max_new : 1))
        return mt3_error_set(err, MT3_E_VALUE, "too many segments (%d) for one call", n_segments);
    int bs = o.batch_size > 0 && o.batch_size < n_segments ? o.batch_size : n_segments;
    out->n_segments = n_segments;
    out->channels = C;
    if (n_segments == 0)
        return MT3_OK;

    const size_t total_rows = (size_t)n_segments * (size_t)C;
    const int max_rows = bs * C;
    int64_t *ids = malloc(total_rows * (size_t)max_new * sizeof *ids);
    mt3_engine_session *sess = NULL;
    int rc = MT3_OK;
    int length = 0;
    if (!ids) {
        rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory for %zu decoder rows", total_rows);
        goto done;
    }
    fill64(ids, total_rows * (size_t)max_new, meta->pad_id);
    rc = api->session_new(m->handle, max_rows, &sess, err);
    if (rc)
        goto done;
    if (o.num_threads > 0)
        api->session_set_threads(sess, o.num_threads);

    double next_report = 0.0;
    if (o.progress) {
        if (o.progress(o.progress_user, 0, n_segments, 0)) {
            rc = mt3_error_set(err, MT3_E_CANCELLED, "decoding cancelled");
            goto done;
        }
        next_report = mono_s() + PROGRESS_INTERVAL_S;
    }
    const int groups = (m->caps & MT3_ENGINE_CAP_STEP_GROUPS) != 0;
    rc = decode_rows(m, sess, features, n_segments, frames, bs, max_new, o.drain_only || !groups, &o, ids, out,
                     &length, next_report, err);
    if (rc)
        goto done;

    /* Compact rows from max_new to `length` columns. */
    if (length < max_new)
        for (size_t r = 0; r < total_rows; r++)
            memmove(ids + r * (size_t)length, ids + r * (size_t)max_new, (size_t)length * sizeof *ids);
    out->ids = ids;
    out->length = length;
    ids = NULL;

done:
    if (sess)
        api->session_free(sess);
    free(ids);
    if (rc) {
        int64_t rs = out->row_steps, st = out->steps, ss = out->slot_steps;
        mt3_tokens_free(out);
        out->row_steps = rs;
        out->slot_steps = ss;
        out->steps = st;
    }
    return rc;
}
