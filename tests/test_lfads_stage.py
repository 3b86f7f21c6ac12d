"""The ``lfads`` stage's positive-control source ``rate``: Poisson spikes read from a rate network."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import tasks
from pipeline.context import RunContext
from pipeline.outputs import RunWriter
from pipeline.stages.lfads import LFADSSection, network_data
from ratenets import RateRNN, RateRNNConfig
from ratenets.checkpoint import save_checkpoint


def rate_context(tmp_path) -> RunContext:
    task = tasks.make("flipflop", n_bits=2, n_steps_total=40)
    model = RateRNN(RateRNNConfig(n_units=12, n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms),
                    seed=0)
    (tmp_path / "checkpoints").mkdir()
    save_checkpoint(tmp_path / "checkpoints" / "rate.pt", model, done=True)
    return RunContext(cfg=SimpleNamespace(seed=0), out=tmp_path, task=task, device=torch.device("cpu"),
                      summary={"stages": {"rate": {}}}, writer=RunWriter(tmp_path), stage="lfads")


def test_rate_source_spikes_are_poisson_at_the_rate_units_rates(tmp_path):
    ctx = rate_context(tmp_path)
    sec = LFADSSection(sources=("rate",), n_trials=300, n_neurons=8, bin_steps=4, rate_max_hz=30.0)
    data = network_data(ctx, "rate", sec)
    assert data["spikes"].shape == (300, 10, 8) and data["spikes"].dtype == torch.int64
    # expected counts per bin: 4 steps x r x 30 Hz x 5 ms, r in (0, 1)
    cap = 4 * 30.0 * ctx.task.dt_ms / 1000.0
    assert 0 < data["rates"].min() and data["rates"].max() < cap
    # the counts' mean per neuron equals the expected counts' within 4 standard errors (Poisson: var = mean)
    mean_count, mean_rate = data["spikes"].double().mean((0, 1)), data["rates"].double().mean((0, 1))
    se = (mean_rate / (300 * 10)).sqrt()
    assert ((mean_count - mean_rate).abs() < 4 * se).all()
    # twice the peak rate: the same trials and neurons, expected counts exactly doubled
    double = network_data(ctx, "rate", LFADSSection(sources=("rate",), n_trials=300, n_neurons=8, bin_steps=4,
                                                     rate_max_hz=60.0))
    torch.testing.assert_close(double["rates"], 2 * data["rates"])
    assert torch.equal(double["neurons"], data["neurons"]) and torch.equal(double["targets"], data["targets"])


@pytest.mark.parametrize("bad", [0.0, -5.0, float("nan"), 5000.0])
def test_rate_max_hz_out_of_range_is_one_line(bad):
    with pytest.raises(ValueError, match=r"rate_max_hz must be in \(0, 1000\] Hz"):
        LFADSSection(rate_max_hz=bad)
