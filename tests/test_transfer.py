"""Rate→LIF transfer: the weight mapping, bad inputs, the batched scale search, warm-up, figures."""

from __future__ import annotations

import math

import pytest
import torch
from matplotlib.figure import Figure

import tasks
from ratenets import RateRNN, RateRNNConfig
from ratenets.plots import save_figure
from spiking import LIFNetwork, LIFParams
from spiking.plots import plot_raster, plot_rate_histogram
from transfer import rate_to_lif, search_scale, simulate_trials
from transfer.plots import plot_scale_scan


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
    assert lif.dt_ms == net.cfg.dt_ms and lif.warmup_ms == 0.0  # the rate step comes from the rate net
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
    assert trials.lif_dt_ms == 0.05 and trials.dt_ms == task.dt_ms
    assert net.training  # simulate_trials leaves the rate net's mode alone
    figures = {
        "scan": plot_scale_scan([[20, 0.5], [25, 0.9]], tmp_path / "scan.png", best_scale=25),
        "raster": plot_raster(trials.spikes(0), tmp_path / "raster.png", dt_ms=trials.lif_dt_ms,
                              outputs={"LIF": trials.lif_outputs, "rate": trials.rate_outputs},
                              targets=trials.batch.targets, output_dt_ms=trials.dt_ms),
        "rates": plot_rate_histogram(trials.firing_rates_hz, tmp_path / "rates.png"),
    }
    for name, fig in figures.items():
        assert isinstance(fig, Figure)
        path = tmp_path / f"{name}.png"
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raster.png", "rates.png", "scan.png"]  # no temp left
    assert isinstance(plot_rate_histogram(trials.firing_rates_hz), Figure)  # no path: nothing written
    assert len(list(tmp_path.iterdir())) == 3


def test_warmup_is_stored_in_the_network_and_used_by_forward_and_trials():
    net = rate_net(n_units=20)
    task = tasks.make("gonogo", n_steps_total=30, stim_on=5, stim_off=10)
    cold, warm = rate_to_lif(net, 30.0), rate_to_lif(net, 30.0, warmup_ms=50.0)
    assert warm.warmup_ms == 50.0 and warm.config_dict()["warmup_ms"] == 50.0
    x = task.sample(2, torch.Generator().manual_seed(0)).inputs
    a = cold(x, generator=torch.Generator().manual_seed(1))
    b = warm(x, generator=torch.Generator().manual_seed(1))
    assert not torch.equal(a.outputs, b.outputs)
    # forward, simulate_trials (default: the network's own) and an explicit warmup_ms all agree
    trials = simulate_trials(warm, task, n_trials=2, seed=0)
    explicit = simulate_trials(cold, task, n_trials=2, seed=0, warmup_ms=50.0)
    assert torch.equal(trials.lif_outputs, explicit.lif_outputs)
    with pytest.raises(ValueError, match="warmup_ms must be a whole number of steps of dt_ms 5.0 ms, got 12.0"):
        rate_to_lif(net, 30.0, warmup_ms=12.0)
    with pytest.raises(ValueError, match="warmup_ms must be a whole number of steps of dt_ms 5.0 ms, got 7.5"):
        search_scale(net, task, scales=[30.0], n_trials=2, warmup_ms=7.5)


def test_search_uses_the_rate_nets_step_and_refuses_a_task_with_another():
    net = rate_net(n_units=20)
    other = tasks.make("gonogo", n_steps_total=30, stim_on=5, stim_off=10, dt_ms=10.0)
    with pytest.raises(ValueError, match="task's dt_ms 10.0 differs from the rate network's dt_ms 5.0"):
        search_scale(net, other, scales=[30.0], n_trials=2)
    with pytest.raises(ValueError, match="task's dt_ms 10.0 differs from the LIF network's dt_ms 5.0"):
        simulate_trials(rate_to_lif(net, 30.0), other, n_trials=2)


def test_figures_are_written_atomically(tmp_path):
    """A save that fails half-way leaves the previous figure whole and no temporary file behind."""
    path = tmp_path / "scan.png"
    plot_scale_scan([[20, 0.5], [25, 0.9]], path)
    before = path.read_bytes()
    fig = plot_scale_scan([[20, 0.1], [25, 0.2]])

    def broken_savefig(target, **kwargs):
        with open(target, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")

    fig.savefig = broken_savefig
    with pytest.raises(OSError, match="disk full"):
        save_figure(fig, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["scan.png"]
