"""What every recurrent model in the project returns for a batch."""

from __future__ import annotations

from typing import NamedTuple

import torch


class Rollout(NamedTuple):
    """``outputs [B,T,O]`` and ``states [B,T,D]`` (the state after each step); ``rates [B,T,N]`` where a
    model has a rate or filtered-spike signal distinct from its state; ``spikes [B,T,N]`` where spiking."""

    outputs: torch.Tensor
    states: torch.Tensor
    rates: torch.Tensor | None = None
    spikes: torch.Tensor | None = None
