#include "core/pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const mt3_recipe k_recipes[] = {
    {"mr_mt3", "mt3", "mt3.pth", MT3_VOCAB_SIZE_MT3, 0, MT3_PRESET_MR_MT3, -1, MT3_RESAMPLE_SINC,
     MT3_SCHEME_MR_MT3, MT3_MIDI_MR_MT3, 0u},
    {"mt3_pytorch", "mt3", "mt3.pth", MT3_VOCAB_SIZE_MT3, 0, MT3_PRESET_MT3_PYTORCH, MT3_RESAMPLE_SOXR_HQ,
     MT3_RESAMPLE_SOXR_HQ, MT3_SCHEME_MT3_PYTORCH, MT3_MIDI_PRETTY, MT3_MIDI_AUTO_FILTER},
    {"yourmt3", "yourmt3", "last.ckpt", MT3_VOCAB_SIZE_YOURMT3, 8, MT3_PRESET_YOURMT3, MT3_RESAMPLE_SINC,
     MT3_RESAMPLE_SINC, MT3_SCHEME_YOURMT3, MT3_MIDI_YOURMT3, 0u},
};

const mt3_recipe *mt3_recipe_get(mt3_recipe_id id)
{
    if ((int)id < 0 || (size_t)id >= sizeof k_recipes / sizeof k_recipes[0])
        return NULL;
    return &k_recipes[id];
}

int mt3_recipe_check_model(const mt3_recipe *r, const mt3_model *m, mt3_error *err)
{
    if (!r || !m)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_recipe_check_model: NULL argument");
    const mt3_model_meta *meta = &m->meta;
    const mt3_preset_info *pi = mt3_preset_get_info(r->preset);
    if (strcmp(meta->family, r->family) != 0)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "the exported model is a '%s' network; the %s adapter needs a '%s' "
                             "export (of %s)", meta->family, r->name, r->family, r->source);
    if (meta->feature_bins != pi->n_bins)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "the exported model takes %d feature bins; %s features have %d",
                             meta->feature_bins, r->name, pi->n_bins);
    if (pi->n_frames < meta->min_frames || pi->n_frames > meta->frames)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "the exported model accepts %d..%d frames per segment; %s feeds %d",
                             meta->min_frames, meta->frames, r->name, pi->n_frames);
    if ((size_t)meta->channels != mt3_scheme_channels(r->scheme))
        return mt3_error_set(err, MT3_E_CHECKPOINT, "the exported model decodes %d channels; %s needs %zu",
                             meta->channels, r->name, mt3_scheme_channels(r->scheme));
    if (meta->vocab_size != r->vocab_size)
        return mt3_error_set(err, MT3_E_CHECKPOINT,
                             "the exported model has %d output ids; the %s vocabulary has %d",
                             meta->vocab_size, r->name, (int)r->vocab_size);
    return MT3_OK;
}

mt3_run_opts mt3_run_opts_default(const mt3_recipe *r)
{
    mt3_run_opts o;
    memset(&o, 0, sizeof o);
    o.want_midi = 1;
    o.preset_override = -1;
    o.midi_flags = r ? r->default_midi_flags : 0u;
    return o;
}

void mt3_run_result_free(mt3_run_result *r)
{
    if (!r)
        return;
    free(r->midi);
    mt3_notes_free(&r->notes);
    memset(r, 0, sizeof *r);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Progress of one window reported as progress of the whole call. */
typedef struct window_progress {
    int (*cb)(void *user, int segments_done, int segments_total, int64_t tokens_done);
    void *user;
    int seg_offset, seg_total;
    int64_t token_offset;
} window_progress;

static int window_progress_cb(void *user, int done, int total, int64_t tokens)
{
    (void)total;
    window_progress *w = user;
    return w->cb(w->user, w->seg_offset + done, w->seg_total, w->token_offset + tokens);
}

mt3_plan mt3_pipeline_plan(const mt3_recipe *r, const mt3_model_meta *meta, const mt3_preset_info *pi,
                           int n_segments, size_t n_samples, const mt3_run_opts *o)
{
    mt3_plan p;
    memset(&p, 0, sizeof p);
    const size_t elem = sizeof(float); /* caches are float32 on the CPU (fp16/bf16 only on CUDA) */
    const int max_new = o->max_new_tokens > 0 ? o->max_new_tokens : meta->max_new_tokens;
    /* self-attention cache: starts at min(max_len, 128) positions and doubles
     * up to what the longest row needs (engine_torch.cpp). */
    size_t cap = (size_t)(meta->max_len < 128 ? meta->max_len : 128);
    while (cap < (size_t)max_new && cap < (size_t)meta->max_len)
        cap = cap * 2 < (size_t)meta->max_len ? cap * 2 : (size_t)meta->max_len;
    const size_t kv = 2 * (size_t)meta->n_layers * (size_t)meta->n_heads * (size_t)meta->d_kv * elem;
    const size_t cross = kv * (size_t)meta->memory_len;
    p.row_bytes = 2 * kv * cap + cross; /* x2: old and new cache while rows are compacted */
    const size_t C = (size_t)meta->channels;
    /* a segment in the decoder batch: its rows, and encoder transients of
     * about one more cross K/V per row while it is encoded */
    p.segment_bytes = C * (p.row_bytes + cross);
    const size_t feat = (size_t)pi->n_frames * (size_t)pi->n_bins * sizeof(float);
    p.fixed_bytes = n_samples * sizeof(float) + (size_t)n_segments * C * (size_t)max_new * sizeof(int64_t);
    const size_t mb = (size_t)(o->max_memory_mb > 0 ? o->max_memory_mb : MT3_DEFAULT_MEMORY_MB);
    p.budget_bytes = mb << 20;
    const size_t avail = p.budget_bytes > p.fixed_bytes ? p.budget_bytes - p.fixed_bytes : 0;
    const int nseg = n_segments < 1 ? 1 : n_segments;
    /* the decoder batch gets up to 7/8 of what is left (with its features),
     * the window of features beyond the batch the rest: pending segments
     * for continuous batching to refill from */
    size_t fit = (avail - avail / 8) / (p.segment_bytes + feat);
    if (fit < 1)
        fit = 1;
    int batch;
    if (o->batch_size > 0) /* explicit: honoured even past the budget */
        batch = o->batch_size < nseg ? o->batch_size : nseg;
    else {
        batch = fit < (size_t)nseg ? (int)fit : nseg;
        if (r->default_batch > 0 && r->default_batch < batch)
            batch = r->default_batch;
    }
    const size_t used = (size_t)batch * (p.segment_bytes + feat);
    const size_t more = avail > used ? (avail - used) / feat : 0;
    int window = more < (size_t)(nseg - batch) ? batch + (int)more : nseg;
    if (window < nseg)
        window -= window % batch;
    p.window = window;
    p.batch = batch;
    return p;
}

int mt3_pipeline_run(const mt3_recipe *r, const mt3_model *m, const mt3_audio_view *audio, int sr,
                     const mt3_run_opts *opts, mt3_run_result *out, mt3_error *err)
{
    if (!out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_pipeline_run: NULL result");
    memset(out, 0, sizeof *out);
    if (!r || !m || !audio)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_pipeline_run: NULL argument");
    mt3_run_opts o = opts ? *opts : mt3_run_opts_default(r);
    int rc = mt3_recipe_check_model(r, m, err);
    if (rc)
        return rc;
    rc = mt3_audio_check_sr(sr, err);
    if (rc)
        return rc;
    int resampler = r->resampler;
    if (sr != MT3_AUDIO_TARGET_SR && resampler < 0) {
        if (!o.allow_resample)
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "%s expects 16000 Hz audio (got sr=%d) and, like mt3-infer 0.2.0, "
                                 "does not resample; resample first (mt3_infer.load_audio returns "
                                 "16 kHz) or create the adapter with resample=True",
                                 r->name, sr);
        resampler = r->relaxed_resampler;
    }
    if (resampler < 0)
        resampler = MT3_RESAMPLE_SOXR_HQ;

    mt3_preset preset = r->preset;
    if (o.preset_override >= 0) {
        const mt3_preset_info *alt = mt3_preset_get_info((mt3_preset)o.preset_override);
        if (!alt)
            return mt3_error_set(err, MT3_E_VALUE, "unknown spectrogram preset %d", o.preset_override);
        if (alt->n_bins != m->meta.feature_bins || alt->n_frames < m->meta.min_frames ||
            alt->n_frames > m->meta.frames)
            return mt3_error_set(err, MT3_E_VALUE,
                                 "the %s network takes %d bins and %d..%d frames; preset '%s' gives "
                                 "%d bins and %d frames", r->name, m->meta.feature_bins,
                                 m->meta.min_frames, m->meta.frames, alt->name, alt->n_bins,
                                 alt->n_frames);
        preset = (mt3_preset)o.preset_override;
    }
    const mt3_preset_info *pi = mt3_preset_get_info(preset);
    float *mono = NULL;
    size_t n = 0;
    mt3_features feats;
    memset(&feats, 0, sizeof feats);
    mt3_tokens toks;
    memset(&toks, 0, sizeof toks);
    int64_t *all_ids = NULL;
    double t0 = now_s();

    rc = mt3_audio_prepare(audio, sr, (mt3_resampler)resampler, &mono, &n, err);
    if (rc)
        goto fail;
    out->samples_16k = n;
    double t1 = now_s();
    out->t_audio = t1 - t0;

    const int nseg = (int)mt3_features_num_segments(preset, n);
    out->n_segments = nseg;
    const int C = m->meta.channels;
    const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : m->meta.max_new_tokens;
    const mt3_plan plan = mt3_pipeline_plan(r, &m->meta, pi, nseg, n, &o);
    out->window = plan.window;
    out->batch = plan.batch;
    const size_t seg_floats = (size_t)pi->n_frames * (size_t)pi->n_bins;
    const size_t total_rows = (size_t)nseg * (size_t)C;
    if (nseg > 0) {
        if (max_new > m->meta.max_len) {
            rc = mt3_error_set(err, MT3_E_VALUE, "max_new_tokens=%d exceeds this model's %d decoder positions",
                               max_new, m->meta.max_len);
            goto fail;
        }
        if ((long long)nseg * C > (1LL << 28) / max_new) {
            rc = mt3_error_set(err, MT3_E_VALUE, "too many segments (%d) for one call", nseg);
            goto fail;
        }
        all_ids = malloc(total_rows * (size_t)max_new * sizeof *all_ids);
        feats.data = malloc((size_t)plan.window * seg_floats * sizeof *feats.data);
        if (!all_ids || !feats.data) {
            rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory for %d segments", nseg);
            goto fail;
        }
        for (size_t i = 0; i < total_rows * (size_t)max_new; i++)
            all_ids[i] = m->meta.pad_id;
    }
    window_progress wp = {o.progress, o.progress_user, 0, nseg, 0};
    int length = 0;
    for (int w0 = 0; w0 < nseg; w0 += plan.window) {
        const int nw = nseg - w0 < plan.window ? nseg - w0 : plan.window;
        double ta = now_s();
        rc = mt3_features_compute_range(preset, mono, n, (size_t)w0, (size_t)(w0 + nw), MT3_STAGE_FINAL,
                                        o.num_threads, feats.data, NULL, err);
        if (rc)
            goto fail;
        double tb = now_s();
        out->t_features += tb - ta;
        wp.seg_offset = w0;
        wp.token_offset = out->row_steps;
        mt3_decode_opts dopts = {plan.batch, max_new, o.num_threads, o.cancel,
                                 o.progress ? window_progress_cb : NULL, &wp, o.drain_only};
        rc = mt3_decode_greedy(m, feats.data, nw, pi->n_frames, &dopts, &toks, err);
        out->steps += toks.steps;
        out->row_steps += toks.row_steps;
        out->slot_steps += toks.slot_steps;
        if (rc)
            goto fail;
        for (size_t row = 0; row < (size_t)nw * (size_t)C; row++)
            memcpy(all_ids + ((size_t)w0 * (size_t)C + row) * (size_t)max_new,
                   toks.ids + row * (size_t)toks.length, (size_t)toks.length * sizeof *all_ids);
        if (toks.length > length)
            length = toks.length;
        mt3_tokens_free(&toks);
        out->t_network += now_s() - tb;
    }
    free(mono);
    mono = NULL;
    mt3_features_free(&feats);
    double t3 = now_s();
    /* One token array as a single whole-file decode gives: rows padded with
     * pad_id to the longest row of the call. */
    if (length < max_new)
        for (size_t row = 0; row < total_rows; row++)
            memmove(all_ids + row * (size_t)length, all_ids + row * (size_t)max_new,
                    (size_t)length * sizeof *all_ids);
    toks.ids = all_ids;
    all_ids = NULL;
    toks.n_segments = nseg;
    toks.channels = C;
    toks.length = length;
    out->token_length = length;

    if (o.want_midi) {
        rc = mt3_tokens_to_midi(r->scheme, toks.ids, (size_t)toks.n_segments, (size_t)toks.channels,
                                (size_t)toks.length, NULL, o.decode_flags, o.midi_flags,
                                o.want_notes ? &out->notes : NULL, &out->midi, &out->midi_len, err);
    } else if (o.want_notes) {
        rc = mt3_decode_tokens(r->scheme, toks.ids, (size_t)toks.n_segments, (size_t)toks.channels,
                               (size_t)toks.length, NULL, o.decode_flags, &out->notes, err);
    }
    mt3_tokens_free(&toks);
    if (rc)
        goto fail;
    out->t_notes = now_s() - t3;
    return MT3_OK;

fail:
    free(mono);
    free(all_ids);
    mt3_features_free(&feats);
    mt3_tokens_free(&toks);
    mt3_run_result_free(out);
    return rc;
}
