"""Token streams for the codec comparison: realistic ones (random plausible note lists encoded the
way the models were trained to emit them) and adversarial ones (mutations, random ids).

All streams are RAW decoder ids after the start token, as `mt3_infer.codec` takes them:
  MT3 family (mt3_pytorch, mr_mt3): int (S, L), ids 0..1535, PAD 0 after EOS.
  YourMT3: int (S, 13, L), ids 0..595.
`to_anchor_mt3(raw)` gives what the anchor adapters' forward() hands to decode().
"""
import numpy as np

# ---- MT3 family vocabulary (spec mt3-family §5) ----
PAD, EOS, UNK = 0, 1, 2
M_SHIFT, M_PITCH, M_VEL, M_TIE, M_PROG, M_DRUM = 3, 1004, 1132, 1134, 1135, 1263
M_EXTRA_LO, M_VOCAB = 1391, 1536
# ---- YourMT3 vocabulary (spec yourmt3 §6.1) ----
Y_SHIFT, Y_PITCH, Y_VEL, Y_TIE, Y_PROG, Y_DRUM, Y_VOCAB = 3, 209, 337, 339, 340, 468, 596
Y_MAX_SHIFT = 205

# programs the models plausibly emit
MT3_PROGRAMS = [0, 0, 0, 4, 8, 11, 16, 24, 25, 26, 29, 32, 33, 34, 38, 40, 41, 42, 48, 52, 56, 57,
                61, 64, 65, 68, 71, 73, 80, 81, 88, 89, 100, 104]
YMT3_PROGRAMS = [0, 0, 2, 8, 16, 24, 26, 29, 32, 33, 40, 41, 42, 43, 46, 47, 48, 50, 52, 55, 56, 57,
                 58, 60, 61, 64, 66, 67, 68, 69, 70, 71, 73, 80, 88, 100, 101]
YMT3_DRUMS = [36, 37, 38, 42, 46, 56, 43, 41, 45, 47, 48, 50, 58, 51, 53, 59, 52, 49, 55]
KINDS = ("mixed", "piano", "drums_heavy", "drums_bass", "chromatic", "messy")


def to_anchor_mt3(raw):
    """forward() post-processing of both MT3 adapters: id - 3, -1 from the first EOS on."""
    raw = np.asarray(raw, dtype=np.int64)
    after = np.cumsum(raw == EOS, axis=-1) > 0
    return np.where(after, -1, raw - 3)


def random_notes(rng, total_ticks, kind, ymt3=False):
    """Notes on the 10 ms grid: list of (onset_tick, offset_tick, pitch, program, is_drum)."""
    n = int(rng.integers(0, 70))
    progs = YMT3_PROGRAMS if ymt3 else MT3_PROGRAMS
    if kind == "piano":
        progs = [0]
    elif kind == "drums_bass":
        progs = [32, 33, 34, 38]
    elif kind == "chromatic":
        progs = [8, 9, 11, 12, 13] if not ymt3 else [8]
    p_drum = {"drums_heavy": 0.8, "drums_bass": 0.5, "chromatic": 0.1, "piano": 0.0}.get(kind, 0.25)
    notes = []
    busy = {}
    for _ in range(n):
        on = int(rng.integers(0, max(1, total_ticks)))
        if rng.random() < p_drum:
            d = int(rng.choice(YMT3_DRUMS)) if (ymt3 or rng.random() < 0.5) else int(rng.integers(27, 88))
            notes.append((on, on + 1, d, 128 if ymt3 else 0, True))
            continue
        prog = int(rng.choice(progs))
        pitch = int(rng.integers(21, 109)) if rng.random() < 0.95 else int(rng.integers(0, 128))
        dur = int(rng.geometric(1 / 25)) if rng.random() < 0.85 else int(rng.integers(100, 700))
        off = on + max(1, dur)
        key = (pitch, prog)
        if kind != "messy":  # keep same-key notes disjoint
            if any(not (off <= a or on >= b) for a, b in busy.get(key, [])):
                continue
        busy.setdefault(key, []).append((on, off))
        notes.append((on, off, pitch, prog, False))
    return notes


def _events(notes):
    ev = []
    for on, off, pitch, prog, drum in notes:
        if drum:
            ev.append((on, 1, prog, pitch))
        else:
            ev.append((on, 2, prog, pitch))
            ev.append((off, 0, prog, pitch))
    ev.sort()
    return ev


def encode_mt3(rng, notes, seg_ticks, always_state=False, late_prob=0.0, shift0_prob=0.0):
    """One token list per segment. seg_ticks[i] = segment start in 10 ms ticks (float ok)."""
    S = len(seg_ticks)
    ev = _events(notes)
    rows = []
    prog_state, vel_state = [0], [1]  # anchor decoders: program 0, velocity 100 (not 0) at start

    def emit_prog(out, p):
        if always_state or prog_state[0] != p:
            out.append(M_PROG + p)
            prog_state[0] = p

    def emit_vel(out, v):
        if always_state or vel_state[0] != v:
            out.append(M_VEL + v)
            vel_state[0] = v

    for i in range(S):
        st = seg_ticks[i]
        nxt = seg_ticks[i + 1] if i + 1 < S else float("inf")
        out = []
        # tie section: pitched notes sounding across the segment start, grouped by program
        tied = sorted((p, x) for on, off, x, p, d in notes if not d and on < st <= off)
        for p, x in tied:
            emit_prog(out, p)
            out.append(M_PITCH + x)
        out.append(M_TIE)
        cur = None
        for t, typ, p, x in ev:
            if not (st <= t < nxt):
                continue
            step = int(round(t - st))
            if step != cur:
                if step > 0 or rng.random() < shift0_prob:
                    while step > 1000:
                        out.append(M_SHIFT + 1000)
                        step -= 1000
                    out.append(M_SHIFT + step)
                cur = int(round(t - st))
            if typ == 1:
                emit_vel(out, 1)
                out.append(M_DRUM + x)
            else:
                emit_prog(out, p)
                emit_vel(out, 1 if typ == 2 else 0)
                out.append(M_PITCH + x)
        if i + 1 < S and rng.random() < late_prob:
            # an event past the next segment's start (shift 204..210 steps)
            out.append(M_SHIFT + int(rng.integers(204, 211)))
            if rng.random() < 0.5:
                out += [M_VEL + 1, M_DRUM + int(rng.integers(35, 60))]
            else:
                p = int(rng.choice(MT3_PROGRAMS))
                out += [M_PROG + p, M_VEL + 1, M_PITCH + int(rng.integers(40, 90))]
                prog_state[0], vel_state[0] = p, 1
        rows.append(out)
    return rows


def encode_ymt3(rng, notes, S, always_state=False, late_prob=0.0):
    """(S, 13) token lists. Channel from program group; drums -> channel 12."""
    starts = [32767 * i / 16000 for i in range(S)]
    ticks = [round(s * 100) for s in starts]
    groups = [(0, 8), (8, 16), (16, 24), (24, 32), (32, 40), (40, 56), (56, 64), (64, 72), (72, 80),
              (80, 88), (88, 96)]

    def channel(p, drum):
        if drum:
            return 12
        if p in (100, 101):
            return 11
        for c, (a, b) in enumerate(groups):
            if a <= p < b:
                return c
        return int(rng.integers(0, 12))

    chan_cache = {}
    out = [[None] * 13 for _ in range(S)]
    for c in range(13):
        mine = [n for n in notes if chan_cache.setdefault((n[3], n[4]), channel(n[3], n[4])) == c]
        ev = _events(mine)
        for i in range(S):
            st = ticks[i]
            nxt = ticks[i + 1] if i + 1 < S else float("inf")
            row = []
            prog, vel = None, None
            tied = sorted((p, x) for on, off, x, p, d in mine if not d and on < st <= off)
            for p, x in tied:
                if always_state or prog != p:
                    row.append(Y_PROG + p)
                    prog = p
                row.append(Y_PITCH + x)
            row.append(Y_TIE)
            cur = 0
            for t, typ, p, x in ev:
                if not (st <= t < nxt):
                    continue
                step = int(t - st)
                if step > Y_MAX_SHIFT:
                    continue
                if step != cur:
                    row.append(Y_SHIFT + step)
                    cur = step
                if typ == 1:
                    if always_state or vel != 1:
                        row.append(Y_VEL + 1)
                        vel = 1
                    row.append(Y_DRUM + x)
                else:
                    if always_state or prog != p:
                        row.append(Y_PROG + p)
                        prog = p
                    v = 1 if typ == 2 else 0
                    if always_state or vel != v:
                        row.append(Y_VEL + v)
                        vel = v
                    row.append(Y_PITCH + x)
            if rng.random() < late_prob:
                row += [Y_SHIFT + int(rng.integers(200, 206)), Y_PROG + 0, Y_VEL + 1,
                        Y_PITCH + int(rng.integers(40, 90))]
            out[i][c] = row
    return out


def pack_mt3(rng, rows, trunc_prob=0.1, extra_pad=True):
    """Rows -> (S, L) raw ids: EOS + PAD, or (trunc_prob) cut without EOS like a token cap."""
    fin = []
    for r in rows:
        if rng.random() < trunc_prob and len(r) > 2:
            fin.append(list(r[: int(rng.integers(1, len(r)))]))
        else:
            fin.append(list(r) + [EOS])
    L = max(1, max(len(r) for r in fin)) + (int(rng.integers(0, 4)) if extra_pad else 0)
    a = np.zeros((len(fin), L), dtype=np.int64)
    for i, r in enumerate(fin):
        a[i, : len(r)] = r
    return a


def pack_ymt3(rng, grid, trunc_prob=0.05):
    S = len(grid)
    fin = [[None] * 13 for _ in range(S)]
    for i in range(S):
        for c in range(13):
            r = grid[i][c]
            if rng.random() < trunc_prob and len(r) > 2:
                fin[i][c] = list(r[: int(rng.integers(1, len(r)))])
            else:
                fin[i][c] = list(r) + [EOS]
    L = max(len(r) for row in fin for r in row) + int(rng.integers(0, 3))
    a = np.zeros((S, 13, L), dtype=np.int64)
    for i in range(S):
        for c in range(13):
            a[i, c, : len(fin[i][c])] = fin[i][c]
    return a


def mutate(rng, rows, vocab_hi, special_ids, n_mut):
    """Adversarial edits of token lists: deletions, duplications, random ids, UNK/PAD/EOS inserts."""
    rows = [list(r) for r in rows]
    for _ in range(n_mut):
        if not rows:
            break
        r = rows[int(rng.integers(0, len(rows)))]
        pos = int(rng.integers(0, len(r) + 1))
        op = rng.random()
        if op < 0.25 and r:
            del r[min(pos, len(r) - 1)]
        elif op < 0.45 and r:
            j = min(pos, len(r) - 1)
            r.insert(j, r[j])
        elif op < 0.7:
            r.insert(pos, int(rng.integers(0, vocab_hi)))
        else:
            r.insert(pos, int(rng.choice(special_ids)))
    return rows


def random_ids_mt3(rng, S):
    """Pure random MT3 streams, weighted towards meaningful events."""
    rows = []
    for _ in range(S):
        n = int(rng.integers(0, 120))
        r = []
        for _ in range(n):
            u = rng.random()
            if u < 0.25:
                r.append(M_SHIFT + int(rng.integers(0, 250) if rng.random() < 0.9 else rng.integers(0, 1001)))
            elif u < 0.5:
                r.append(M_PITCH + int(rng.integers(0, 128)))
            elif u < 0.6:
                r.append(M_VEL + int(rng.integers(0, 2)))
            elif u < 0.65:
                r.append(M_TIE)
            elif u < 0.75:
                r.append(M_PROG + int(rng.integers(0, 128)))
            elif u < 0.88:
                r.append(M_DRUM + int(rng.integers(0, 128)))
            elif u < 0.93:
                r.append(int(rng.choice([PAD, UNK])))
            elif u < 0.97:
                r.append(int(rng.integers(M_EXTRA_LO, M_VOCAB)))
            else:
                r.append(EOS)
        rows.append(r)
    return rows


def random_ids_ymt3(rng, S):
    grid = []
    for _ in range(S):
        row = []
        for _c in range(13):
            n = int(rng.integers(0, 40))
            r = [] if rng.random() < 0.3 else [Y_TIE]
            for _ in range(n):
                u = rng.random()
                if u < 0.25:
                    r.append(Y_SHIFT + int(rng.integers(0, 206)))
                elif u < 0.5:
                    r.append(Y_PITCH + int(rng.integers(0, 128)))
                elif u < 0.62:
                    r.append(Y_VEL + int(rng.integers(0, 2)))
                elif u < 0.65:
                    r.append(Y_TIE)
                elif u < 0.77:
                    r.append(Y_PROG + int(rng.choice(YMT3_PROGRAMS + [96, 110, 127])))
                elif u < 0.9:
                    r.append(Y_DRUM + int(rng.integers(0, 128)))
                elif u < 0.96:
                    r.append(int(rng.choice([PAD, UNK])))
                else:
                    r.append(EOS)
            row.append(r)
        grid.append(row)
    return grid
