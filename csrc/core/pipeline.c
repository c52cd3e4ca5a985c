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
    double t0 = now_s();

    rc = mt3_audio_prepare(audio, sr, (mt3_resampler)resampler, &mono, &n, err);
    if (rc)
        goto fail;
    out->samples_16k = n;
    double t1 = now_s();
    out->t_audio = t1 - t0;

    rc = mt3_features_compute_ex(preset, mono, n, o.num_threads, MT3_STAGE_FINAL, &feats, err);
    free(mono);
    mono = NULL;
    if (rc)
        goto fail;
    double t2 = now_s();
    out->t_features = t2 - t1;
    out->n_segments = feats.n_segments;

    mt3_decode_opts dopts = {o.batch_size > 0 ? o.batch_size : r->default_batch, o.max_new_tokens,
                             o.num_threads, o.cancel, o.progress, o.progress_user};
    rc = mt3_decode_greedy(m, feats.data, feats.n_segments, pi->n_frames, &dopts, &toks, err);
    mt3_features_free(&feats);
    if (rc)
        goto fail;
    double t3 = now_s();
    out->t_network = t3 - t2;
    out->steps = toks.steps;
    out->row_steps = toks.row_steps;
    out->token_length = toks.length;

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
    mt3_features_free(&feats);
    mt3_tokens_free(&toks);
    mt3_run_result_free(out);
    return rc;
}
