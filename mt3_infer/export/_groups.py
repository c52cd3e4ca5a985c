"""TorchScript helpers shared by the exported MT3 and YourMT3 modules:
attention without scaling (T5), the decoder step's attention over rows at
different positions (the engine's ``mt3::attend_rows``), the int8 decoder
linears (dtype "int8"), and for ``step_groups`` (continuous batching) rows
in contiguous groups, group g the next ``sizes[g]`` rows, all at position
``poss[g]``."""
from typing import List, Optional

import torch
from torch import Tensor

from ..exceptions import FrameworkError


def _load_ops() -> Optional[FrameworkError]:
    from .._engine import load_engine_ops

    try:
        load_engine_ops()
    except FrameworkError as exc:
        return exc
    return None


# The engine's operators (``attend_rows``) are registered with torch when this
# module is imported, so exported modules script and load in this process;
# without an engine, scripting them fails later with this error.
_OPS_ERROR = _load_ops()


def require_ops() -> None:
    """Raise FrameworkError when the engine's operators are not registered
    (an export needs them: the decoder step calls ``mt3::attend_rows``)."""
    if _OPS_ERROR is not None:
        raise FrameworkError(f"exporting needs the mt3-infer libtorch engine: {_OPS_ERROR}")


def check_groups(n: int, cap: int, limit: int, sizes: List[int], poss: List[int]) -> None:
    """Non-empty groups at positions below ``cap`` (cache) and ``limit``
    (position table) whose sizes add up to the ``n`` rows."""
    if len(sizes) != len(poss) or len(sizes) == 0:
        raise RuntimeError("step: sizes and positions must be non-empty lists of one length")
    total = 0
    for g in range(len(sizes)):
        if sizes[g] < 1 or poss[g] < 0 or poss[g] >= cap or poss[g] >= limit:
            raise RuntimeError("step: position outside the self-attention cache, or an empty group")
        total += sizes[g]
    if total != n:
        raise RuntimeError("step: group sizes do not add up to the rows")


def group_positions(table: Tensor, sizes: List[int], poss: List[int]) -> Tensor:
    """Rows of the position table for every row: ``table[poss[0]]`` (broadcast)
    for one group, else each group's row repeated ``sizes[g]`` times."""
    if len(sizes) == 1:
        return table[poss[0]]
    parts: List[Tensor] = []
    for g in range(len(sizes)):
        parts.append(table[poss[g]].unsqueeze(0).expand(sizes[g], table.size(1)))
    return torch.cat(parts, 0)


def attend(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T) v over the last two dims, with no 1/sqrt(d_kv) scaling
    (T5).  fp32: two matrix products around a softmax, the reference's order
    of operations (outputs unchanged by this helper).  bf16/fp16: the fused
    attention kernel (scale 1), which accumulates in fp32 and reads each key
    and value once; the plain products are slow at these precisions on the
    CPU and would round the scores to 16 bits before the softmax."""
    if q.dtype == torch.float32:
        w = torch.softmax(torch.matmul(q, k.transpose(-1, -2)), dim=-1)
        return torch.matmul(w, v)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)


def attend_rows(q: Tensor, k: Tensor, v: Tensor, sizes: List[int], lens: List[int]) -> Tensor:
    """Decoder-step attention for rows in contiguous groups (the engine's
    ``mt3::attend_rows``): q [N, H, Dh], k/v [N, H, S, Dh]; the next
    ``sizes[g]`` rows attend to their own positions ``0 .. lens[g]-1`` (no
    scaling, T5) -> [N, H*Dh].  On the CPU in float32 each (row, head) is
    computed alone in a fixed order, so a row's result does not depend on the
    other rows of its call (continuous batching = drained batches, bit for
    bit) and a step costs one call per layer, not one per group; elsewhere
    the groups run :func:`attend` one by one."""
    return torch.ops.mt3.attend_rows(q, k, v, sizes, lens)


def quantize_linear(w: Tensor) -> torch.classes.quantized.LinearPackedParamsBase:
    """int8 copy of a linear weight [out, in] for :func:`linear_int8`:
    symmetric, one scale per output row (max |w| / 127, zero point 0)."""
    scale = (w.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero = torch.zeros(w.size(0), dtype=torch.long)
    qw = torch.quantize_per_channel(w.detach().float(), scale, zero, 0, torch.qint8)
    return torch.ops.quantized.linear_prepack(qw, None)


def linear_int8(x: Tensor, packed: torch.classes.quantized.LinearPackedParamsBase) -> Tensor:
    """x @ w.T with int8 weights and activations quantized per call (one
    affine scale over the whole of x, in the 7-bit reduced range, so no CPU's
    int16 intermediate sums saturate); int32 accumulation, fp32 out.  The
    activation scale spans all rows of x: a row's result depends slightly on
    the other rows of its batch."""
    return torch.ops.quantized.linear_dynamic(x, packed, True)
