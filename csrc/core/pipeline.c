#include "core/pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const mt3_recipe k_recipes[] = {
    [MT3_RECIPE_MR_MT3] = {.name = "mr_mt3", .family = "mt3", .source = "mt3.pth",
                           .vocab_size = MT3_VOCAB_SIZE_MT3, .default_batch = 0, .preset = MT3_PRESET_MR_MT3,
                           .refuse_resample = 1, .scheme = MT3_SCHEME_MR_MT3, .midi = MT3_MIDI_MR_MT3,
                           .default_midi_flags = 0u},
    [MT3_RECIPE_MT3_PYTORCH] = {.name = "mt3_pytorch", .family = "mt3", .source = "mt3.pth",
                                .vocab_size = MT3_VOCAB_SIZE_MT3, .default_batch = 0,
                                .preset = MT3_PRESET_MT3_PYTORCH, .refuse_resample = 0,
                                .scheme = MT3_SCHEME_MT3_PYTORCH, .midi = MT3_MIDI_PRETTY,
                                .default_midi_flags = MT3_MIDI_AUTO_FILTER},
    [MT3_RECIPE_YOURMT3] = {.name = "yourmt3", .family = "yourmt3", .source = "last.ckpt",
                            .vocab_size = MT3_VOCAB_SIZE_YOURMT3, .default_batch = 8,
                            .preset = MT3_PRESET_YOURMT3, .refuse_resample = 0, .scheme = MT3_SCHEME_YOURMT3,
                            .midi = MT3_MIDI_YOURMT3, .default_midi_flags = 0u},
    [MT3_RECIPE_MAGENTA_MT3] = {.name = "magenta_mt3", .family = "magenta",
                                .source = "the T5X checkpoint gs://mt3/checkpoints/mt3",
                                .vocab_size = MT3_VOCAB_SIZE_MT3, .default_batch = 0,
                                .preset = MT3_PRESET_MT3_REFERENCE, .refuse_resample = 0,
                                .scheme = MT3_SCHEME_MAGENTA, .midi = MT3_MIDI_MAGENTA,
                                .default_midi_flags = 0u, .decode_rule = MT3_DECODE_BEAM1},
    [MT3_RECIPE_MAGENTA_PIANO] = {.name = "magenta_piano", .family = "magenta",
                                  .source = "the T5X checkpoint gs://mt3/checkpoints/ismir2021",
                                  .vocab_size = MT3_VOCAB_SIZE_MAGENTA_PIANO, .default_batch = 0,
                                  .preset = MT3_PRESET_MT3_REFERENCE_512, .refuse_resample = 0,
                                  .scheme = MT3_SCHEME_MAGENTA_PIANO, .midi = MT3_MIDI_MAGENTA,
                                  .default_midi_flags = 0u, .decode_rule = MT3_DECODE_BEAM1},
};
_Static_assert(sizeof k_recipes / sizeof k_recipes[0] == MT3_RECIPE_COUNT, "one recipe per id");

#define N_RECIPES (sizeof k_recipes / sizeof k_recipes[0])

const mt3_recipe *mt3_recipe_get(mt3_recipe_id id)
{
    if ((int)id < 0 || (size_t)id >= N_RECIPES)
        return NULL;
    return &k_recipes[id];
}

const mt3_recipe *mt3_recipe_for_scheme(mt3_scheme s)
{
    for (size_t i = 0; i < N_RECIPES; i++)
        if (k_recipes[i].scheme == s)
            return &k_recipes[i];
    return NULL;
}

int mt3_recipe_tokens_to_midi(const mt3_recipe *r, const int64_t *tokens, size_t n_segments,
                              size_t n_channels, size_t length, const double *segment_starts,
                              unsigned decode_flags, unsigned midi_flags, mt3_notes *notes_out,
                              uint8_t **bytes, size_t *len, mt3_error *err)
{
    if (bytes)
        *bytes = NULL;
    if (len)
        *len = 0;
    if (!r)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_recipe_tokens_to_midi: NULL recipe");
    mt3_notes local = {0};
    mt3_notes *dst = notes_out ? notes_out : &local;
    size_t n0 = dst->n;
    int rc = mt3_decode_tokens(r->scheme, tokens, n_segments, n_channels, length, segment_starts,
                               decode_flags, dst, err);
    if (!rc)
        rc = mt3_midi_write(r->midi, dst->n > n0 ? dst->items + n0 : NULL, dst->n - n0, midi_flags, bytes,
                            len, err);
    if (rc && notes_out)
        notes_out->n = n0;
    mt3_notes_free(&local);
    return rc;
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
    o.decode_rule = -1;
    o.midi_flags = r ? r->default_midi_flags : 0u;
    return o;
}

void mt3_run_result_free(mt3_run_result *r)
{
    if (!r)
        return;
    free(r->midi);
    free(r->tokens);
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

mt3_plan mt3_pipeline_plan(const mt3_recipe *r, const mt3_model_meta *meta, int cache_elem_bytes,
                           const mt3_preset_info *pi, int n_segments, size_t n_samples, const mt3_run_opts *o)
{
    mt3_plan p;
    memset(&p, 0, sizeof p);
    const size_t elem = cache_elem_bytes > 0 ? (size_t)cache_elem_bytes : sizeof(float);
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
    /* a segment in the decoder batch: its rows, and one more cross K/V per
     * row while it waits staged or is copied in */
    p.segment_bytes = C * (p.row_bytes + cross);
    /* the encoder's working memory per segment while it runs: measured at
     * export (exporter 3); older artifacts: four cross K/V per row (the
     * output plus attention and feed-forward transients; MT3 measures ~2,
     * full-size YourMT3 ~5) */
    p.encoder_bytes = meta->encoder_kib > 0 ? (size_t)meta->encoder_kib << 10 : 4 * C * cross;
    const size_t feat = (size_t)pi->n_frames * (size_t)pi->n_bins * sizeof(float);
    p.fixed_bytes = n_samples * sizeof(float) + (size_t)n_segments * C * (size_t)max_new * sizeof(int64_t);
    const size_t mb = (size_t)(o->max_memory_mb > 0 ? o->max_memory_mb : MT3_DEFAULT_MEMORY_MB);
    p.budget_bytes = mb << 20;
    const size_t avail = p.budget_bytes > p.fixed_bytes ? p.budget_bytes - p.fixed_bytes : 0;
    const int nseg = n_segments < 1 ? 1 : n_segments;
    /* shares of what is left: encoder calls up to 1/8 (segments per call
     * chosen to fit, at least one), the window of features beyond the batch
     * (pending segments for continuous batching to refill from) up to 1/4,
     * the decoder batch with its features the rest */
    size_t ec = avail / 8 / p.encoder_bytes;
    p.encode_chunk = ec < 1 ? 1 : ec > MT3_ENCODE_CHUNK ? MT3_ENCODE_CHUNK : (int)ec;
    const size_t enc_used = (size_t)p.encode_chunk * p.encoder_bytes;
    const size_t dec_avail = avail - avail / 8 - avail / 4;
    size_t fit = dec_avail / (p.segment_bytes + feat);
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
    const size_t used = (size_t)batch * (p.segment_bytes + feat) + enc_used;
    size_t more = avail > used ? (avail - used) / feat : 0;
    if (more > avail / 4 / feat)
        more = avail / 4 / feat;
    int window = more < (size_t)(nseg - batch) ? batch + (int)more : nseg;
    if (window < nseg)
        window -= window % batch;
    p.window = window;
    p.batch = batch;
    return p;
}

/* Resampler and preset of a call (shared by every input). */
static int call_setup(const mt3_recipe *r, const mt3_model *m, const mt3_run_opts *o, mt3_preset *preset,
                      mt3_error *err)
{
    int rc = mt3_recipe_check_model(r, m, err);
    if (rc)
        return rc;
    *preset = r->preset;
    if (o->preset_override >= 0) {
        const mt3_preset_info *alt = mt3_preset_get_info((mt3_preset)o->preset_override);
        if (!alt)
            return mt3_error_set(err, MT3_E_VALUE, "unknown spectrogram preset %d", o->preset_override);
        if (alt->n_bins != m->meta.feature_bins || alt->n_frames < m->meta.min_frames ||
            alt->n_frames > m->meta.frames)
            return mt3_error_set(err, MT3_E_VALUE,
                                 "the %s network takes %d bins and %d..%d frames; preset '%s' gives "
                                 "%d bins and %d frames", r->name, m->meta.feature_bins,
                                 m->meta.min_frames, m->meta.frames, alt->name, alt->n_bins,
                                 alt->n_frames);
        *preset = (mt3_preset)o->preset_override;
    }
    const int max_new = o->max_new_tokens > 0 ? o->max_new_tokens : m->meta.max_new_tokens;
    if (max_new > m->meta.max_len)
        return mt3_error_set(err, MT3_E_VALUE, "max_new_tokens=%d exceeds this model's %d decoder positions",
                             max_new, m->meta.max_len);
    return MT3_OK;
}

/* One input's audio -> 16 kHz mono (the recipe's resampling rule). */
static int prepare_input(const mt3_recipe *r, const mt3_run_opts *o, const mt3_audio_view *audio, int sr,
                         float **mono, size_t *n, mt3_error *err)
{
    int rc = mt3_audio_check_sr(sr, err);
    if (rc)
        return rc;
    if (sr != MT3_AUDIO_TARGET_SR && r->refuse_resample) {
        if (!o->allow_resample)
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "%s expects 16000 Hz audio (got sr=%d) and, like mt3-infer 0.2.0, "
                                 "does not resample; resample first (mt3_infer.load_audio returns "
                                 "16 kHz) or create the adapter with resample=True",
                                 r->name, sr);
    }
    return mt3_audio_prepare(audio, sr, mt3_preset_get_info(r->preset)->resampler, mono, n, err);
}

/* Generated length of one token row: up to and including its EOS (the
 * first one that ends a row: not at position 0 unless check_first_eos), or
 * the whole row when it ran to the cap. */
static int row_length(const int64_t *row, int max_new, const mt3_model_meta *meta)
{
    for (int p = meta->check_first_eos ? 0 : 1; p < max_new; p++)
        if (row[p] == meta->eos_id)
            return p + 1;
    return max_new;
}

typedef struct input_state {
    float *mono;
    size_t n;
    int nseg, first; /* segments, index of the first in the call */
} input_state;

int mt3_pipeline_run_many(const mt3_recipe *r, const mt3_model *m, int n_inputs, const mt3_audio_view *audio,
                          const int *sr, const mt3_run_opts *opts, mt3_run_result *out, mt3_error *errs,
                          mt3_error *err)
{
    if (n_inputs < 0 || (n_inputs > 0 && (!audio || !sr || !out || !errs)) || !r || !m)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_pipeline_run_many: NULL argument");
    for (int i = 0; i < n_inputs; i++) {
        memset(&out[i], 0, sizeof out[i]);
        mt3_error_clear(&errs[i]);
    }
    mt3_run_opts o = opts ? *opts : mt3_run_opts_default(r);
    mt3_preset preset;
    int rc = call_setup(r, m, &o, &preset, err);
    if (rc)
        return rc;
    const mt3_preset_info *pi = mt3_preset_get_info(preset);
    const int C = m->meta.channels;
    const int max_new = o.max_new_tokens > 0 ? o.max_new_tokens : m->meta.max_new_tokens;
    const size_t seg_floats = (size_t)pi->n_frames * (size_t)pi->n_bins;
    input_state *in = calloc(n_inputs > 0 ? (size_t)n_inputs : 1, sizeof *in);
    float *feats = NULL;
    int64_t *all_ids = NULL;
    mt3_tokens toks;
    memset(&toks, 0, sizeof toks);
    if (!in)
        return mt3_error_set(err, MT3_E_NOMEM, "out of memory for %d inputs", n_inputs);

    /* 1. audio of every input; an input that fails is reported in errs[i]
     *    and contributes no segment */
    int nseg = 0;
    size_t samples = 0;
    for (int i = 0; i < n_inputs; i++) {
        double ti = now_s();
        if (prepare_input(r, &o, &audio[i], sr[i], &in[i].mono, &in[i].n, &errs[i]) != MT3_OK)
            continue;
        in[i].nseg = (int)mt3_features_num_segments(preset, in[i].n);
        if (o.max_segments > 0 && in[i].nseg > o.max_segments)
            in[i].nseg = o.max_segments;
        in[i].first = nseg;
        out[i].samples_16k = in[i].n;
        out[i].n_segments = in[i].nseg;
        out[i].t_audio = now_s() - ti;
        samples += in[i].n;
        if ((long long)nseg + in[i].nseg > (1LL << 28) / ((long long)C * max_new)) {
            rc = mt3_error_set(err, MT3_E_VALUE, "too many segments (%d) for one call", nseg + in[i].nseg);
            goto done;
        }
        nseg += in[i].nseg;
    }

    /* 2. segments of all inputs through one decoder: windows of features,
     *    continuous batching inside each window */
    const mt3_plan plan = mt3_pipeline_plan(r, &m->meta, m->cache_elem_bytes, pi, nseg, samples, &o);
    const size_t total_rows = (size_t)nseg * (size_t)C;
    if (nseg > 0) {
        all_ids = malloc(total_rows * (size_t)max_new * sizeof *all_ids);
        feats = malloc((size_t)plan.window * seg_floats * sizeof *feats);
        if (!all_ids || !feats) {
            rc = mt3_error_set(err, MT3_E_NOMEM, "out of memory for %d segments", nseg);
            goto done;
        }
        for (size_t i = 0; i < total_rows * (size_t)max_new; i++)
            all_ids[i] = m->meta.pad_id;
    }
    double t_feat = 0.0, t_net = 0.0;
    int64_t steps = 0, row_steps = 0, slot_steps = 0;
    window_progress wp = {o.progress, o.progress_user, 0, nseg, 0};
    for (int w0 = 0; w0 < nseg; w0 += plan.window) {
        const int nw = nseg - w0 < plan.window ? nseg - w0 : plan.window;
        double ta = now_s();
        for (int i = 0; i < n_inputs; i++) {
            int a = in[i].first > w0 ? in[i].first : w0;
            int b = in[i].first + in[i].nseg < w0 + nw ? in[i].first + in[i].nseg : w0 + nw;
            if (in[i].nseg == 0 || a >= b)
                continue;
            rc = mt3_features_compute_range(preset, in[i].mono, in[i].n, (size_t)(a - in[i].first),
                                            (size_t)(b - in[i].first), MT3_STAGE_FINAL, o.num_threads,
                                            feats + (size_t)(a - w0) * seg_floats, NULL, err);
            if (rc)
                goto done;
        }
        double tb = now_s();
        t_feat += tb - ta;
        wp.seg_offset = w0;
        wp.token_offset = row_steps;
        mt3_decode_opts dopts = {plan.batch, max_new, o.num_threads, o.cancel,
                                 o.progress ? window_progress_cb : NULL, &wp, o.drain_only, plan.encode_chunk,
                                 o.decode_rule >= 0 ? o.decode_rule : r->decode_rule};
        rc = mt3_decode_greedy(m, feats, nw, pi->n_frames, &dopts, &toks, err);
        steps += toks.steps;
        row_steps += toks.row_steps;
        slot_steps += toks.slot_steps;
        if (rc)
            goto done;
        for (size_t row = 0; row < (size_t)nw * (size_t)C; row++)
            memcpy(all_ids + ((size_t)w0 * (size_t)C + row) * (size_t)max_new,
                   toks.ids + row * (size_t)toks.length, (size_t)toks.length * sizeof *all_ids);
        mt3_tokens_free(&toks);
        t_net += now_s() - tb;
    }
    free(feats);
    feats = NULL;
    for (int i = 0; i < n_inputs; i++) {
        free(in[i].mono);
        in[i].mono = NULL;
    }

    /* 3. per input: its token rows, as long as its longest row (exactly the
     *    array a call with that input alone decodes), then notes and MIDI */
    for (int i = 0; i < n_inputs; i++) {
        if (errs[i].code != MT3_OK)
            continue;
        double tc = now_s();
        const size_t rows = (size_t)in[i].nseg * (size_t)C;
        int64_t *base = all_ids ? all_ids + (size_t)in[i].first * (size_t)C * (size_t)max_new : NULL;
        int length = 0;
        for (size_t row = 0; row < rows; row++) {
            int len = row_length(base + row * (size_t)max_new, max_new, &m->meta);
            if (len > length)
                length = len;
        }
        for (size_t row = 0; row < rows && length < max_new; row++) /* in place: rows move towards the front */
            memmove(base + row * (size_t)length, base + row * (size_t)max_new, (size_t)length * sizeof *base);
        mt3_run_result *res = &out[i];
        res->token_length = length;
        res->channels = C;
        res->window = plan.window;
        res->batch = plan.batch;
        res->encode_chunk = plan.encode_chunk;
        res->steps = steps;
        res->row_steps = row_steps;
        res->slot_steps = slot_steps;
        res->t_features = t_feat;
        res->t_network = t_net;
        int drc = MT3_OK;
        if (o.want_tokens && rows > 0) {
            res->tokens = malloc(rows * (size_t)length * sizeof *res->tokens);
            if (!res->tokens)
                drc = mt3_error_set(&errs[i], MT3_E_NOMEM, "out of memory for the token array");
            else
                memcpy(res->tokens, base, rows * (size_t)length * sizeof *res->tokens);
        }
        if (drc)
            ;
        else if (o.want_midi)
            drc = mt3_recipe_tokens_to_midi(r, base, (size_t)in[i].nseg, (size_t)C, (size_t)length, NULL,
                                     o.decode_flags, o.midi_flags, o.want_notes ? &res->notes : NULL,
                                     &res->midi, &res->midi_len, &errs[i]);
        else if (o.want_notes)
            drc = mt3_decode_tokens(r->scheme, base, (size_t)in[i].nseg, (size_t)C, (size_t)length, NULL,
                                    o.decode_flags, &res->notes, &errs[i]);
        else
            drc = MT3_OK;
        if (drc)
            mt3_run_result_free(res);
        res->t_notes = now_s() - tc;
    }
    rc = MT3_OK;

done:
    if (rc)
        for (int i = 0; i < n_inputs; i++)
            mt3_run_result_free(&out[i]);
    for (int i = 0; i < n_inputs; i++)
        free(in[i].mono);
    free(in);
    free(feats);
    free(all_ids);
    mt3_tokens_free(&toks);
    return rc;
}

int mt3_pipeline_run(const mt3_recipe *r, const mt3_model *m, const mt3_audio_view *audio, int sr,
                     const mt3_run_opts *opts, mt3_run_result *out, mt3_error *err)
{
    if (!out)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_pipeline_run: NULL result");
    memset(out, 0, sizeof *out);
    if (!r || !m || !audio)
        return mt3_error_set(err, MT3_E_VALUE, "mt3_pipeline_run: NULL argument");
    mt3_error one;
    mt3_error_clear(&one);
    int rc = mt3_pipeline_run_many(r, m, 1, audio, &sr, opts, out, &one, err);
    if (rc)
        return rc;
    if (one.code != MT3_OK) {
        *err = one;
        mt3_run_result_free(out);
        return one.code;
    }
    return MT3_OK;
}
