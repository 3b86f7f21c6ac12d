"""The one way a tensor leaves torch for numpy, a figure or a file: detached and moved to the CPU first
(a CUDA tensor cannot become a numpy array in place). Plain arrays, lists and numbers pass through."""

from __future__ import annotations

import numpy as np
import torch


def to_numpy(x, dtype=None) -> np.ndarray:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy() if x.dtype != torch.bfloat16 else x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=dtype)
