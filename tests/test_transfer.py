"""Rate→LIF transfer: the weight mapping, bad inputs, the batched scale search, figures."""

from __future__ import annotations

import math

import pytest
import torch

import tasks
from ratenets import RateRNN, RateRNNConfig
from spiking import LIFNetwork, LIFParams
from transfer import rate_to_lif, search_scale, simulate_trials
from transfer.plots import plot_raster, plot_rate_histogram, plot_scale_scan


def rate_net(n_units=30, activation="sigmoid", seed=0):
    return RateRNN(RateRNNConfig(n_units=n_units, activation=activation), seed=seed)


def test_mapping_divides_recurrent_and_readout_keeps_input_and_drops_bias():
    net = rate_net()
    with torch.no_grad():
        net.b_out.fill_(0.3)
    lif = rate_to_lif(net, 25.0)
    assert isinstance(lif, LIFNetwork)
    assert torch.allclose(lif.w_rec, net.w_rec() / 25.0)
    assert torch.allclose(lif.w_out, net.w_out / 25.0)
    assert torch.equal(lif.w_in, net.w_in.detach())
    assert torch.allclose(lif.tau_d_ms, net.taus_ms())
    assert torch.equal(lif.b_out, torch.zeros(1))
    assert lif.rate_net is net and lif.scale_factor == 25.0 and lif.params == LIFParams()
    kept = rate_to_lif(net, 25.0, keep_readout_bias=True)
    assert torch.allclose(kept.b_out, torch.tensor([0.3]))
    assert "rate_net" not in dict(lif.named_modules())  # the rate net is reachable, not a submodule


@pytest.mark.parametrize("bad", [0, -5.0, math.nan, math.inf, "twenty"])
def test_bad_scale_factor_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="scale_factor must be a"):
        rate_to_lif(rate_net(), bad)
    with pytest.raises(ValueError, match="scale_factor must be a"):
        search_scale(rate_net(), tasks.make("gonogo"), scales=[20.0, bad], n_trials=2)


def test_nan_weights_are_one_clear_error():
    net = rate_net()
    with torch.no_grad():
        net.w_rec_raw[0, 1] = float("nan")
    with pytest.raises(ValueError, match="w_rec holds NaN"):
        rate_to_lif(net, 25.0)


def test_missing_tau_is_one_clear_error():
    class NoTau(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.w_in, self.w_out, self.w_rec = net.w_in, net.w_out, net.w_rec

    with pytest.raises(ValueError, match="no synaptic time constants"):
        rate_to_lif(NoTau(rate_net()), 25.0)


def test_relu_network_warns_that_it_did_not_convert_in_the_paper():
    with pytest.warns(UserWarning, match="ReLU rate networks did not convert"):
        rate_to_lif(rate_net(activation="relu"), 25.0)


def test_search_scores_every_factor_in_one_batched_simulation():
    net = rate_net(n_units=20)
    task = tasks.make("gonogo", n_steps_total=30, stim_on=5, stim_off=10)
    res = search_scale(net, task, scales=[20.0, 40.0, 60.0], n_trials=4, seed=3)
    assert [row[0] for row in res.table] == [20.0, 40.0, 60.0]
    scores = [row[1] for row in res.table]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert res.best_score == max(scores) and res.best_scale == res.table[scores.index(max(scores))][0]
    assert len(res.firing_rates_hz) == 3 and res.n_trials == 4
    # Each factor's score is what a single-factor search with the same seed gives (common random numbers).
    for scale, score in res.table:
        assert search_scale(net, task, scales=[scale], n_trials=4, seed=3).best_score == score


def test_default_grid_is_the_papers():
    from transfer import DEFAULT_SCALES

    assert DEFAULT_SCALES == tuple(float(s) for s in range(20, 76, 5))


def test_lif_module_forward_and_trials_for_figures(tmp_path):
    net = rate_net(n_units=20)
    task = tasks.make("gonogo", n_steps_total=30, stim_on=5, stim_off=10)
    lif = rate_to_lif(net, 30.0)
    batch = task.sample(2, torch.Generator().manual_seed(0))
    roll = lif(batch.inputs, generator=torch.Generator().manual_seed(0))
    assert roll.outputs.shape == (2, 30, 1) and roll.states.shape == (2, 30, 20) and roll.spikes.shape == (2, 30, 20)
    trials = simulate_trials(lif, task, n_trials=2, seed=0)
    assert trials.lif_outputs.shape == trials.rate_outputs.shape == (2, 30, 1)
    assert trials.raster.shape[1] == 3 and int(trials.raster[:, 1].max()) < 30 * 100
    assert net.training  # simulate_trials leaves the rate net's mode alone
    for path in (
        plot_scale_scan([[20, 0.5], [25, 0.9]], tmp_path / "scan.png", best_scale=25),
        plot_raster(trials.raster, trials.lif_outputs, tmp_path / "raster.png", trials.rate_outputs,
                    trials.batch.targets),
        plot_rate_histogram(trials.firing_rates_hz, tmp_path / "rates.png"),
    ):
        assert path.exists() and path.stat().st_size > 1000
