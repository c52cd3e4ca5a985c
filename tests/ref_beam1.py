"""Plain-Python transcription of Magenta's decoding rule: t5x beam search with
one beam, brevity penalty alpha = 0.6, NEG = -1e7 (specs/magenta-t5x.md
§5.5), written from the spec's pseudo-code, independent of csrc/core/decode.c.

The network is driven one row at a time through an exported MT3 module's
``encode`` / ``step_logits`` (the cache API); the candidates' log-probs are
``torch.log_softmax`` of the float32 logits plus the live log-prob, the
top-2 is taken with a stable numpy sort (descending value, lower id first
on ties, as ``lax.top_k``), and every score is float32 arithmetic as in JAX.
"""
import numpy as np

NEG = np.float32(-1.0e7)
ALPHA = np.float32(0.6)
EOS = 1


def brevity(n):
    """BP(n) = ((5 + n) / 6) ** 0.6 in float32."""
    return np.float32((np.float32(5.0) + np.float32(n)) / np.float32(6.0)) ** ALPHA


def top2(lp):
    """[(value, id), (value, id)] of a float32 vector: descending, ties -> lower id."""
    order = np.lexsort((np.arange(lp.shape[0]), -lp.astype(np.float64)))
    return [(np.float32(lp[order[0]]), int(order[0])), (np.float32(lp[order[1]]), int(order[1]))]


def beam1_row(step_lp, T):
    """The §5.5 loop for one row.  ``step_lp(t, token)`` returns the float32
    log-softmax vector of the step that feeds ``token`` at position t.
    Returns (tokens, info): tokens as the decoder writes them (the chosen
    sequence, EOS included, no padding); info: steps run and whether a
    finished candidate was taken."""
    live = [0]
    L = np.float32(0.0)
    best = None
    best_score = NEG
    steps = 0
    for t in range(T):
        if best is not None and best_score > np.float32(L / brevity(T + 1)):
            break
        lp = (step_lp(t, live[t]) + L).astype(np.float32)
        steps += 1
        (v1, i1), (v2, i2) = top2(lp)
        for v, i in ((v1, i1), (v2, i2)):
            if i == EOS:
                s = np.float32(v / brevity(t + 1))
                if s > best_score:
                    best_score = s
                    best = live[1:] + [EOS]
        v, i = (v1, i1) if i1 != EOS else (v2, i2)
        L = v
        live.append(i)
    out = best if best is not None else live[1:]
    return out, {"steps": steps, "finished": best is not None}


def greedy_row(step_lp, T):
    """Plain greedy (argmax, stop at EOS) on the same steps, for comparison."""
    tok, out = 0, []
    for t in range(T):
        lp = step_lp(t, tok)
        tok = top2(lp)[0][1]
        out.append(tok)
        if tok == EOS:
            break
    return out


def module_stepper(module, features_row, T):
    """``step_lp`` for one segment through an MT3Runtime-style module (torch)."""
    import torch

    with torch.inference_mode():
        ck, cv = module.encode(torch.from_numpy(np.ascontiguousarray(features_row[None], np.float32)))
        l, n, h, _, dk = ck.shape
        sk = torch.zeros(l, n, h, T, dk, dtype=ck.dtype)
        sv = torch.zeros_like(sk)

    def step_lp(t, token):
        with torch.inference_mode():
            logits = module.step_logits(torch.tensor([token], dtype=torch.long), t, sk, sv, ck, cv)
            return torch.log_softmax(logits.float(), dim=-1)[0].numpy()

    return step_lp

