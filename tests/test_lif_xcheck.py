"""Cross-simulator check against Brian2 (extra ``xcheck``; runs from its own environment, see
``transfer/xcheck.py``): a transferred 100-unit network, one Go trial, noise off. Deselected from the
default run (``pyproject.toml``); ``pytest -m xcheck`` in the environment with the extra runs it, and fails
there, not skips, when Brian2 is missing."""

from __future__ import annotations

import pytest
import torch

import tasks
from ratenets import RateRNN, RateRNNConfig
from transfer import rate_to_lif
from transfer.xcheck import compare_with_brian2


@pytest.mark.xcheck
def test_same_spike_trains_as_brian2():
    lif = rate_to_lif(RateRNN(RateRNNConfig(n_units=100), seed=0), 25.0)
    task = tasks.make("gonogo", n_steps_total=100)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    res = compare_with_brian2(lif, batch.inputs[int(batch.meta["go"].argmax())], seed=0)
    assert res.n_spikes_ours.sum() > 200  # the check means something: the network is active
    assert res.counts_equal, f"spike counts differ for units {(res.n_spikes_ours != res.n_spikes_brian).nonzero()}"
    assert res.fraction_within_one_step >= 0.99
