"""How many word positions a batch needs.

Every model masks what lies past a sample's length, so the positions after a batch's longest sample reach no
output: an eager batch is cut there (plus the windows a temporal convolution still needs), which is where the
time of the encoders goes on short synthetic segments. Under graph capture the shapes stay static, so nothing is
cut: a data-dependent length would recompile every batch.
"""

from __future__ import annotations

import torch


def needed_steps(lengths: torch.Tensor, available: int, margin: int = 0) -> int:
    """The batch's longest sample (at least one word) plus ``margin`` steps, at most ``available``; all
    ``available`` steps under graph capture."""
    if torch.compiler.is_compiling():
        return available
    longest = max(int(lengths.max()), 1) if lengths.numel() else 1
    return min(available, longest + margin)
