/* RIFF/WAVE reader (see wav.h). */
#include "core/wav.h"

#include "core/audio.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define WAV_TAG_PCM 0x0001
#define WAV_TAG_FLOAT 0x0003
#define WAV_TAG_EXTENSIBLE 0xFFFE

/* Bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID that wraps a format tag. */
static const uint8_t ks_guid_tail[14] = {0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80,
                                         0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71};

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32); }

/* Read up to n bytes at absolute offset off; returns the count read. */
static size_t src_read(mt3_wav_reader *r, uint64_t off, void *buf, size_t n)
{
    if (off >= r->size)
        return 0;
    if ((uint64_t)n > r->size - off)
        n = (size_t)(r->size - off);
    if (r->mem) {
        memcpy(buf, r->mem + off, n);
        return n;
    }
    if (fseeko(r->fp, (off_t)off, SEEK_SET) != 0)
        return 0;
    return fread(buf, 1, n, r->fp);
}

static int is_fourcc(const uint8_t *id)
{
    for (int i = 0; i < 4; i++)
        if (id[i] < 0x20 || id[i] > 0x7E)
            return 0;
    return 1;
}

/* Printable rendering of 4 raw bytes for messages. */
static void fourcc_str(const uint8_t *id, char out[20])
{
    if (is_fourcc(id)) {
        snprintf(out, 20, "'%c%c%c%c'", id[0], id[1], id[2], id[3]);
    } else {
        snprintf(out, 20, "0x%02X%02X%02X%02X", id[0], id[1], id[2], id[3]);
    }
}

static const char *tag_name(unsigned tag)
{
    switch (tag) {
    case 0x0002: return " (Microsoft ADPCM)";
    case 0x0006: return " (A-law)";
    case 0x0007: return " (mu-law)";
    case 0x0011: return " (IMA ADPCM)";
    case 0x0031: return " (GSM 6.10)";
    case 0x0050: return " (MPEG)";
    case 0x0055: return " (MP3)";
    default: return "";
    }
}

#define SUPPORTED_MSG "supported: integer PCM 8/16/24/32-bit and IEEE float 32/64-bit"

static int parse_fmt(const uint8_t *f, uint32_t len, mt3_wav_info *info, mt3_error *err)
{
    if (len < 16)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: 'fmt ' chunk is %u bytes (at least 16 needed)",
                             (unsigned)len);
    unsigned tag = le16(f);
    unsigned channels = le16(f + 2);
    uint32_t rate = le32(f + 4);
    unsigned block_align = le16(f + 12);
    unsigned bits = le16(f + 14);
    unsigned valid_bits = bits;
    info->format_tag = (int)tag;
    if (tag == WAV_TAG_EXTENSIBLE) {
        if (len < 40)
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "corrupt WAV: WAVE_FORMAT_EXTENSIBLE 'fmt ' chunk is %u bytes (40 needed)",
                                 (unsigned)len);
        valid_bits = le16(f + 18);
        if (memcmp(f + 26, ks_guid_tail, sizeof ks_guid_tail) != 0)
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "unsupported WAV encoding: WAVE_FORMAT_EXTENSIBLE with an unknown sub-format GUID; "
                                 SUPPORTED_MSG);
        tag = le16(f + 24);
        if (valid_bits == 0)
            valid_bits = bits;
    }
    if (channels == 0)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: 'fmt ' chunk declares 0 channels");
    if (rate == 0)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: 'fmt ' chunk declares a sample rate of 0 Hz");
    if (rate > 0x7FFFFFFFu)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: sample rate %lu Hz is out of range",
                             (unsigned long)rate);
    if (tag == WAV_TAG_PCM) {
        if (bits == 0 || bits > 32 || valid_bits == 0 || valid_bits > bits)
            return mt3_error_set(err, MT3_E_AUDIO, "unsupported WAV encoding: %u-bit integer PCM; " SUPPORTED_MSG,
                                 bits);
        info->encoding = MT3_WAV_INT;
    } else if (tag == WAV_TAG_FLOAT) {
        if (bits != 32 && bits != 64)
            return mt3_error_set(err, MT3_E_AUDIO, "unsupported WAV encoding: %u-bit IEEE float; " SUPPORTED_MSG,
                                 bits);
        info->encoding = MT3_WAV_FLOAT;
    } else {
        return mt3_error_set(err, MT3_E_AUDIO, "unsupported WAV encoding (format tag 0x%04X%s); " SUPPORTED_MSG,
                             tag, tag_name(tag));
    }
    unsigned container = (bits + 7) / 8;
    if (block_align != channels * container)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "corrupt WAV: block align %u does not match %u channel(s) of %u-bit samples "
                             "(expected %u)",
                             block_align, channels, bits, channels * container);
    info->channels = (int)channels;
    info->sample_rate = rate;
    info->bits = (int)valid_bits;
    info->container_bytes = (int)container;
    return MT3_OK;
}

static int wav_parse(mt3_wav_reader *r, mt3_wav_info *info, mt3_error *err)
{
    memset(info, 0, sizeof *info);
    uint8_t hdr[12];
    size_t got = src_read(r, 0, hdr, sizeof hdr);
    if (got < sizeof hdr)
        return mt3_error_set(err, MT3_E_AUDIO,
                             "not a WAV file: only %zu byte(s) long (a RIFF/WAVE header needs 12)", got);
    int rf64 = 0;
    if (memcmp(hdr, "RF64", 4) == 0 || memcmp(hdr, "BW64", 4) == 0) {
        rf64 = 1;
    } else if (memcmp(hdr, "RIFX", 4) == 0) {
        return mt3_error_set(err, MT3_E_AUDIO, "unsupported WAV: big-endian RIFX files are not supported");
    } else if (memcmp(hdr, "RIFF", 4) != 0) {
        char s[20];
        fourcc_str(hdr, s);
        return mt3_error_set(err, MT3_E_AUDIO, "not a WAV file: starts with %s, expected 'RIFF'", s);
    }
    if (memcmp(hdr + 8, "WAVE", 4) != 0) {
        char s[20];
        fourcc_str(hdr + 8, s);
        return mt3_error_set(err, MT3_E_AUDIO, "not a WAV file: RIFF form type is %s, expected 'WAVE'", s);
    }

    int have_fmt = 0, have_data = 0;
    uint64_t ds64_data = 0;
    int have_ds64 = 0;
    uint64_t data_off = 0, data_size = 0;
    uint64_t pos = 12;
    while (!(have_fmt && have_data) && pos + 8 <= r->size) {
        uint8_t ch[8];
        if (src_read(r, pos, ch, 8) != 8)
            return mt3_error_set(err, MT3_E_AUDIO, "cannot read WAV chunk header at offset %llu",
                                 (unsigned long long)pos);
        if (!is_fourcc(ch)) {
            if (have_data && have_fmt)
                break;
            char s[20];
            fourcc_str(ch, s);
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "corrupt WAV: invalid chunk id %s at offset %llu (garbage in the header)", s,
                                 (unsigned long long)pos);
        }
        uint32_t size = le32(ch + 4);
        uint64_t body = pos + 8;
        uint64_t left = r->size - body;
        if (memcmp(ch, "data", 4) == 0) {
            uint64_t step = size;
            if (!have_data) {
                have_data = 1;
                data_off = body;
                if (rf64 && size == 0xFFFFFFFFu) {
                    if (!have_ds64)
                        return mt3_error_set(err, MT3_E_AUDIO, "corrupt RF64: 'data' chunk before the 'ds64' chunk");
                    data_size = ds64_data;
                } else if (size == 0xFFFFFFFFu) {
                    data_size = left; /* unknown length (streamed): runs to end of file */
                } else {
                    data_size = size;
                }
                if (data_size > left)
                    return mt3_error_set(err, MT3_E_AUDIO,
                                         "truncated WAV: the 'data' chunk declares %llu bytes but only %llu "
                                         "remain in the file",
                                         (unsigned long long)data_size, (unsigned long long)left);
                step = data_size;
            }
            if (step >= left)
                break;
            pos = body + step + (step & 1);
            continue;
        }
        if (size > left) {
            if (have_fmt && have_data)
                break;
            char s[20];
            fourcc_str(ch, s);
            return mt3_error_set(err, MT3_E_AUDIO,
                                 "truncated WAV: chunk %s at offset %llu declares %lu bytes but only %llu remain",
                                 s, (unsigned long long)pos, (unsigned long)size, (unsigned long long)left);
        }
        if (memcmp(ch, "fmt ", 4) == 0) {
            if (!have_fmt) {
                uint8_t f[40];
                uint32_t n = size < sizeof f ? size : (uint32_t)sizeof f;
                if (src_read(r, body, f, n) != n)
                    return mt3_error_set(err, MT3_E_AUDIO, "cannot read the WAV 'fmt ' chunk");
                int st = parse_fmt(f, size, info, err);
                if (st != MT3_OK)
                    return st;
                have_fmt = 1;
            }
        } else if (rf64 && memcmp(ch, "ds64", 4) == 0) {
            if (size < 24)
                return mt3_error_set(err, MT3_E_AUDIO, "corrupt RF64: 'ds64' chunk is %lu bytes (24 needed)",
                                     (unsigned long)size);
            uint8_t d[24];
            if (src_read(r, body, d, 24) != 24)
                return mt3_error_set(err, MT3_E_AUDIO, "cannot read the RF64 'ds64' chunk");
            ds64_data = le64(d + 8);
            have_ds64 = 1;
        }
        uint64_t next = body + size;
        if (size & 1) {
            /* Odd chunk: the pad byte is required by the spec but some writers
             * omit it.  Prefer the padded position unless only the unpadded
             * one starts a plausible chunk. */
            uint8_t a[4], b[4];
            int pad_ok = src_read(r, next + 1, a, 4) == 4 && is_fourcc(a);
            int nopad_ok = src_read(r, next, b, 4) == 4 && is_fourcc(b);
            if (pad_ok || !nopad_ok)
                next += 1;
        }
        pos = next;
    }
    if (!have_fmt)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: no 'fmt ' chunk found%s",
                             have_data ? "" : " (and no 'data' chunk)");
    if (!have_data)
        return mt3_error_set(err, MT3_E_AUDIO, "corrupt WAV: no 'data' chunk found");
    uint64_t block = (uint64_t)info->channels * (uint64_t)info->container_bytes;
    info->frames = data_size / block;
    info->data_offset = data_off;
    if (info->frames > (uint64_t)SIZE_MAX / sizeof(float) / (uint64_t)info->channels)
        return mt3_error_set(err, MT3_E_AUDIO, "WAV file too large for this platform");
    return MT3_OK;
}

int mt3_wav_open_memory(mt3_wav_reader *r, const void *data, uint64_t len, mt3_wav_info *info,
                        mt3_error *err)
{
    memset(r, 0, sizeof *r);
    static const uint8_t empty[1] = {0};
    r->mem = data ? (const uint8_t *)data : empty;
    r->size = data ? len : 0;
    return wav_parse(r, info, err);
}

int mt3_wav_open_file(mt3_wav_reader *r, const char *path, mt3_wav_info *info, mt3_error *err)
{
    memset(r, 0, sizeof *r);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return mt3_error_set(err, MT3_E_AUDIO, "cannot open WAV file '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return mt3_error_set(err, MT3_E_AUDIO, "cannot read WAV file '%s': not a regular file", path);
    }
    r->fp = fp;
    r->size = (uint64_t)st.st_size;
    return wav_parse(r, info, err);
}

void mt3_wav_close(mt3_wav_reader *r)
{
    if (r && r->fp) {
        fclose(r->fp);
        r->fp = NULL;
    }
}

static float f64_to_f32(double d)
{
    if (d > FLT_MAX)
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d; /* NaN passes through */
}

static void convert(const uint8_t *src, size_t n, const mt3_wav_info *info, float *dst)
{
    int cb = info->container_bytes;
    if (info->encoding == MT3_WAV_FLOAT) {
        if (cb == 4) {
            for (size_t i = 0; i < n; i++) {
                uint32_t u = le32(src + 4 * i);
                float f;
                memcpy(&f, &u, 4);
                dst[i] = f;
            }
        } else {
            for (size_t i = 0; i < n; i++) {
                uint64_t u = le64(src + 8 * i);
                double d;
                memcpy(&d, &u, 8);
                dst[i] = f64_to_f32(d);
            }
        }
        return;
    }
    switch (cb) {
    case 1:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((int)src[i] - 128) * (1.0f / 128.0f);
        break;
    case 2:
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)(int16_t)le16(src + 2 * i) * (1.0f / 32768.0f);
        break;
    case 3:
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = src + 3 * i;
            int32_t v = (int32_t)((uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16));
            if (v & 0x800000)
                v -= 0x1000000;
            dst[i] = (float)v * (1.0f / 8388608.0f);
        }
        break;
    default: /* 4 */
        for (size_t i = 0; i < n; i++)
            dst[i] = (float)((double)(int32_t)le32(src + 4 * i) * (1.0 / 2147483648.0));
        break;
    }
}

/* Decode all frames chunk by chunk; each chunk's interleaved float32 samples
 * go to dst directly (mono == 0) or are mixed to one channel per frame into
 * dst through mt3_audio_mix_mono (mono != 0, a chunk-sized scratch buffer):
 * the file is never held whole at its channel count. */
static int wav_read_impl(mt3_wav_reader *r, const mt3_wav_info *info, float *dst, int mono,
                         mt3_error *err)
{
    const size_t block = (size_t)info->channels * (size_t)info->container_bytes;
    size_t frames_per_chunk = (1u << 16) / block;
    if (frames_per_chunk == 0)
        frames_per_chunk = 1;
    const int mix = mono && info->channels > 1;
    uint8_t *buf = NULL;
    float *scratch = NULL;
    if (!r->mem) {
        buf = malloc(frames_per_chunk * block);
        if (!buf)
            return mt3_error_set(err, MT3_E_NOMEM, "out of memory reading WAV data");
    }
    if (mix) {
        scratch = malloc(frames_per_chunk * (size_t)info->channels * sizeof *scratch);
        if (!scratch) {
            free(buf);
            return mt3_error_set(err, MT3_E_NOMEM, "out of memory reading WAV data");
        }
    }
    const size_t out_ch = mono ? 1 : (size_t)info->channels;
    uint64_t done = 0;
    int rc = MT3_OK;
    while (done < info->frames) {
        uint64_t todo = info->frames - done;
        size_t nf = todo < frames_per_chunk ? (size_t)todo : frames_per_chunk;
        uint64_t off = info->data_offset + done * block;
        size_t nbytes = nf * block;
        const uint8_t *src;
        if (r->mem) {
            if (off + nbytes > r->size) {
                rc = mt3_error_set(err, MT3_E_AUDIO, "truncated WAV data");
                break;
            }
            src = r->mem + off;
        } else {
            if (src_read(r, off, buf, nbytes) != nbytes) {
                rc = mt3_error_set(err, MT3_E_AUDIO,
                                   "truncated WAV: could not read %zu bytes of audio at offset %llu",
                                   nbytes, (unsigned long long)off);
                break;
            }
            src = buf;
        }
        float *out = dst + done * (uint64_t)out_ch;
        if (mix) {
            convert(src, nf * (size_t)info->channels, info, scratch);
            mt3_audio_view v = {scratch, MT3_SAMPLE_F32, nf, (size_t)info->channels,
                                (ptrdiff_t)(info->channels * sizeof(float)), (ptrdiff_t)sizeof(float)};
            mt3_audio_mix_mono(&v, 0, nf, out);
        } else {
            convert(src, nf * (size_t)info->channels, info, out);
        }
        done += nf;
    }
    free(buf);
    free(scratch);
    return rc;
}

int mt3_wav_read(mt3_wav_reader *r, const mt3_wav_info *info, float *dst, mt3_error *err)
{
    return wav_read_impl(r, info, dst, 0, err);
}

int mt3_wav_read_mono(mt3_wav_reader *r, const mt3_wav_info *info, float *dst, mt3_error *err)
{
    return wav_read_impl(r, info, dst, 1, err);
}
