"""TorchScript helpers shared by the exported MT3 and YourMT3 modules'
``step_groups`` (continuous batching): rows in contiguous groups, group g the
next ``sizes[g]`` rows, all at position ``poss[g]``."""
from typing import List

import torch
from torch import Tensor


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
