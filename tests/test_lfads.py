"""LFADS (``baselines.lfads``) and its synthetic data: learning on a tiny Lorenz dataset, the generator as a
``step`` map, the KL terms against closed forms, exact resume, and one clear line for each bad input."""

import math

import pytest
import torch

from baselines.lfads import (
    LFADS,
    LFADSConfig,
    LFADSFitConfig,
    LFADSTrainConfig,
    _kl_diag_normal,
    fit,
    infer,
    load,
)
from baselines.lfads_data import (
    affine_r_squared,
    chaotic_rnn_dataset,
    lorenz_dataset,
    pooled_r_squared,
    r_squared,
)
from ratenets import TrainingDiverged

TINY_MODEL = LFADSConfig(co_dim=0, gen_dim=32, fac_dim=6, ic_enc_dim=32, dropout=0.0)


def tiny_lorenz():
    """20 conditions x 10 trials, 20 neurons at 80 Hz, 20 bins: enough signal to learn from in seconds."""
    data = lorenz_dataset(20, 10, n_neurons=20, n_bins=20, base_rate_hz=80.0, time_per_bin=0.04, seed=0)
    return data.split((0.8, 0.2))


def small_fit_config(n_steps=3, **train):
    model = LFADSConfig(co_dim=2, gen_dim=8, fac_dim=3, ic_enc_dim=4, ci_enc_dim=4, con_dim=4)
    return LFADSFitConfig(model, LFADSTrainConfig(n_steps=n_steps, batch_size=4, eval_every=1, checkpoint_every=1,
                                                  **train))


def counts(trials=8, bins=6, neurons=5, seed=0):
    return torch.poisson(torch.full((trials, bins, neurons), 0.5), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def lorenz_fit():
    train, test = tiny_lorenz()
    cfg = LFADSFitConfig(TINY_MODEL, LFADSTrainConfig(n_steps=300, batch_size=32, lr=0.01, cd_rate=0.0,
                                                      kl_ramp_steps=50, eval_every=100))
    return fit(train.spikes, cfg, device="cpu", seed=0), test


def test_learns_the_rates_of_a_tiny_lorenz_dataset(lorenz_fit):
    result, test = lorenz_fit
    out = result.infer(test.spikes)
    untrained = infer(LFADS(result.model.cfg, seed=0), test.spikes)
    assert r_squared(untrained.rates, test.rates) < 0.2  # the score is earned by training
    assert r_squared(out.rates, test.rates) >= 0.5  # held-out trials
    assert affine_r_squared(out.factors, test.latents) >= 0.5
    assert result.rates.shape == (160, 20, 20) and result.factors.shape == (160, 20, 6)
    assert result.generator_states.shape == (160, 20, 32)


def test_generator_step_is_the_map_forward_runs():
    for co_dim in (0, 2):
        cfg = LFADSConfig(n_neurons=5, n_bins=6, co_dim=co_dim, gen_dim=8, fac_dim=3, ic_enc_dim=4, ci_enc_dim=4,
                          con_dim=4)
        model = LFADS(cfg, seed=1).eval()
        with torch.no_grad():
            out = model.run(counts())
            g = out["g0"]
            inputs = out["inputs"] if co_dim else torch.zeros(8, 6, 1)
            for t in range(6):
                g = model.step(g, inputs[:, t])
                torch.testing.assert_close(g, out["states"][:, t], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(out["factors"], model.factors_of(out["states"]))
        assert model.fac_weight.shape == (3, 8) and torch.allclose(
            torch.nn.functional.normalize(model.fac_weight, dim=1).norm(dim=1), torch.ones(3))


def test_kl_terms_match_closed_forms():
    g = torch.Generator().manual_seed(0)
    mean, logvar = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    pm, plv = torch.randn(3, generator=g), torch.randn(3, generator=g)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * logvar).exp()),
                                            torch.distributions.Normal(pm, (0.5 * plv).exp())).sum(-1)
    torch.testing.assert_close(_kl_diag_normal(mean, logvar, pm, plv), ref)
    # AR(1) prior: log q(u) - log p(u) with p the Gaussian of covariance v a^|i-j|
    model = LFADS(LFADSConfig(n_neurons=2, n_bins=5, co_dim=1, gen_dim=4, fac_dim=2, co_prior_tau_bins=3.0,
                              co_prior_var=0.2))
    u, m, lv = torch.randn(2, 5, 1, generator=g), torch.randn(2, 5, 1, generator=g), torch.randn(2, 5, 1, generator=g)
    a, v = math.exp(-1 / 3.0), 0.2
    idx = torch.arange(5.0)
    cov = v * a ** (idx[:, None] - idx[None, :]).abs()
    log_p = torch.distributions.MultivariateNormal(torch.zeros(5), cov).log_prob(u[..., 0])
    log_q = torch.distributions.Normal(m, (0.5 * lv).exp()).log_prob(u).sum(dim=(1, 2))
    with torch.no_grad():
        got = model._kl_ar1({"inputs": u, "co_mean": m, "co_logvar": lv})
    torch.testing.assert_close(got, log_q - log_p, rtol=1e-4, atol=1e-4)


def test_resume_gives_the_weights_of_one_run(tmp_path):
    spikes = counts(trials=8)
    whole = fit(spikes, small_fit_config(6), device="cpu", seed=3)
    path = tmp_path / "lfads.pt"
    first = fit(spikes, small_fit_config(3), device="cpu", seed=3, checkpoint=path)
    assert first.history["step"][-1] == 3
    second = fit(spikes, small_fit_config(6), device="cpu", seed=3, checkpoint=path)
    assert second.resumed_from == 3 and second.history["step"] == list(range(1, 7))
    for (k, a), (_, b) in zip(whole.model.state_dict().items(), second.model.state_dict().items()):
        assert torch.equal(a, b), k
    again = fit(spikes, small_fit_config(6), device="cpu", seed=3, checkpoint=path)  # finished: loaded as is
    assert torch.equal(again.rates, second.rates)
    loaded = load(path)  # torch.load(weights_only=True) inside
    assert torch.equal(infer(loaded, spikes).rates, second.rates)


@pytest.mark.parametrize("edit, message", [
    (lambda x: x - 1, "negative counts"),
    (lambda x: x + 0.5, "non-integer counts"),
    (lambda x: x.index_put((torch.tensor(0), torch.tensor(0), torch.tensor(0)), torch.tensor(float("nan"))),
     "NaN or infinite"),
    (lambda x: x[:3], "3 trials, fewer than the batch size 4"),
    (lambda x: x[0], "must be \\[trials, bins, neurons\\]"),
])
def test_bad_spikes_are_one_line(edit, message):
    with pytest.raises(ValueError, match=message) as err:
        fit(edit(counts()), small_fit_config(1), device="cpu")
    assert "\n" not in str(err.value)


def test_bins_or_neurons_other_than_the_saved_model_are_one_line(tmp_path):
    path = tmp_path / "lfads.pt"
    result = fit(counts(), small_fit_config(2), device="cpu", checkpoint=path)
    with pytest.raises(ValueError, match="spikes has 7 bins; the model was fitted to 6") as err:
        result.infer(counts(bins=7))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="spikes has 4 neurons; the model was fitted to 5"):
        infer(load(path), counts(neurons=4))
    with pytest.raises(ValueError, match="spikes have 4 neurons, but the saved model in .* was fitted to 5") as err:
        fit(counts(neurons=4), small_fit_config(2), device="cpu", checkpoint=path)
    assert "\n" not in str(err.value)


def test_nan_loss_stops_with_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "lfads.pt"
    original = LFADS.run
    calls = {"n": 0}

    def poisoned(self, spikes, generator=None):
        out = original(self, spikes, generator)
        calls["n"] += 1
        if self.training and calls["n"] > 2:
            out["log_rates"] = out["log_rates"] * float("nan")
        return out

    monkeypatch.setattr(LFADS, "run", poisoned)
    with pytest.raises(TrainingDiverged, match="LFADS loss became nan at step 3; last good checkpoint kept") as err:
        fit(counts(), small_fit_config(5), device="cpu", checkpoint=path)
    assert "\n" not in str(err.value)
    monkeypatch.setattr(LFADS, "run", original)
    assert fit(counts(), small_fit_config(5), device="cpu", checkpoint=path).resumed_from == 2


def test_config_dicts_name_a_bad_key():
    with pytest.raises(ValueError, match="LFADS config key train.n_step is unknown"):
        LFADSFitConfig.from_dict({"train": {"n_step": 3}})
    with pytest.raises(ValueError, match="LFADS config key model: dropout must be in \\[0, 1\\)"):
        LFADSFitConfig.from_dict({"model": {"dropout": 1.0}})
    assert LFADSFitConfig.from_dict({"model": {"co_dim": 0}}).model.co_dim == 0


def test_synthetic_data_have_the_documented_statistics():
    chaos = chaotic_rnn_dataset(4, 3, n_bins=20, seed=0)
    assert chaos.spikes.shape == (12, 20, 50) and chaos.spikes.dtype == torch.int64
    assert 0 < chaos.rates.min() and chaos.rates.max() <= 30.0 * 10.0 / 1000.0  # <= 30 Hz in 10 ms bins
    assert torch.equal(chaos.latents[0], chaos.latents[2]) and not torch.equal(chaos.latents[0], chaos.latents[3])
    lorenz = lorenz_dataset(6, 2, n_neurons=10, n_bins=50, seed=1)
    per_condition = lorenz.latents[::2].reshape(-1, 3)
    torch.testing.assert_close(per_condition.mean(0), torch.zeros(3), atol=1e-5, rtol=0)  # z-scored
    torch.testing.assert_close(per_condition.std(0), torch.ones(3), atol=1e-5, rtol=0)
    assert r_squared(lorenz.rates, lorenz.rates) == pytest.approx(1.0)
    flat = lorenz.rates.reshape(-1, 10)
    assert r_squared(flat.mean(0).expand_as(flat), flat) == pytest.approx(0.0, abs=1e-9)
    assert affine_r_squared(2 * lorenz.latents - 1, lorenz.latents) == pytest.approx(1.0)
    silent = torch.cat([flat, torch.zeros(len(flat), 1)], 1)  # a unit that never fires is left out, not -inf
    assert r_squared(silent, silent) == pytest.approx(1.0) and r_squared(flat, flat + 0.0) == pytest.approx(1.0)
    # pooled R²: one channel explained exactly (variance 4), one at its mean (variance 1): 1 - 1/5 by hand,
    # where the mean over channels says 0.5
    y = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-1.0, -1.0]]) * torch.tensor([2.0, 1.0])
    guess = torch.stack([y[:, 0], torch.zeros(4)], 1)
    assert pooled_r_squared(guess, y) == pytest.approx(0.8) and r_squared(guess, y) == pytest.approx(0.5)
    barely = torch.zeros(100, 2)
    barely[:, 0] = torch.linspace(-1, 1, 100)
    barely[7, 1] = 1e-3  # a unit that fired once, faintly: its own R² of a zero guess is -huge when off by 1
    off = barely.clone()
    off[:, 1] = 1.0
    assert r_squared(off, barely) < -1e5 and pooled_r_squared(off, barely) < 0 and \
        pooled_r_squared(barely, barely) == pytest.approx(1.0)
