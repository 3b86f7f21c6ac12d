"""The project's named random streams. A run has one ``seed``; each independent use of randomness draws
from its own generator seeded ``seed + OFFSET``, so adding draws to one stream never shifts another.
Offsets are named here once; use ``stream(seed, OFFSET)`` instead of writing ``seed + 10_000``."""

from __future__ import annotations

import operator

import torch

TRAINING = 0  # training batches and the training noise (``ratenets.train``)
VALIDATION = 10_000  # the fixed validation batch of the training loop
HELD_OUT = 20_000  # held-out trials that score a finished model
ANALYSIS_NOISE = 30_000  # noise of simulations run for analyses (LIF transfer, rasters)


def stream(seed: int, offset: int, device: str | torch.device | None = None) -> torch.Generator:
    """A fresh generator on ``device`` (CPU when None) seeded ``seed + offset``.

    On CPU it draws the same numbers as the default generator seeded with ``seed + offset`` would, call for call."""
    try:
        value = operator.index(seed) + operator.index(offset)
    except TypeError:
        raise TypeError(f"seed and offset must be integers, got {seed!r} and {offset!r}") from None
    if not -(2**63) <= value < 2**64:  # what torch.Generator.manual_seed accepts
        raise ValueError(f"seed + offset must be in [-2**63, 2**64), got {seed} + {offset}")
    return torch.Generator(device="cpu" if device is None else device).manual_seed(value)
