"""The LSNN's smooth surrogate is the LSNN's own step with spikes replaced by their expectation (input bias
included), reproduces the spiking step away from threshold when cold, and is differentiable."""

import dataclasses
import math

import pytest
import torch

from spiking import LSNN, LSNNConfig
from spiking.alif import ALIFState

BIASED = LSNNConfig(n_lif=3, n_alif=3, n_inputs=2, n_outputs=1, refractory_steps=0, input_bias=True)


def random_state(n_batch, n_units, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    v = (torch.randn(n_batch, n_units, generator=g) * 0.01).to(dtype)
    b = (torch.rand(n_batch, n_units, generator=g) * 0.1).to(dtype)
    z = torch.rand(n_batch, n_units, generator=g).to(dtype)  # expected spikes, anywhere in [0, 1]
    return v, b, z


@pytest.mark.parametrize("input_bias", [False, True])
def test_cold_surrogate_matches_the_spiking_step_away_from_threshold(input_bias):
    net = LSNN(dataclasses.replace(BIASED, input_bias=input_bias), seed=0)
    assert (net.b_in is not None) == input_bias
    sur = net.smooth_surrogate(temperature=1e-4)
    g = torch.Generator().manual_seed(0)
    z = (torch.rand(4, 6, generator=g) < 0.5).float()
    v = torch.randn(4, 6, generator=g) * 0.01
    b = torch.rand(4, 6, generator=g) * 0.1
    u = torch.randn(4, 2, generator=g)
    state = ALIFState(v, b, z, torch.zeros(4, 6, dtype=torch.int32))
    spiking = net.step(state, u)
    smooth = sur.step(torch.cat([v, b, z], dim=1), u)
    v_s, b_s, z_s = sur.split(smooth)
    assert torch.allclose(v_s, spiking.v, atol=1e-6) and torch.allclose(b_s, spiking.b, atol=1e-6)
    far = (spiking.v - (net.neurons.threshold + net.neurons.beta * spiking.b)).abs() > 1e-3
    assert far.any() and torch.equal(z_s[far].round(), spiking.z[far])


@pytest.mark.parametrize("refractory_steps", [0, 2])
def test_surrogate_is_the_lsnns_own_step_with_spikes_replaced_by_their_expectation(refractory_steps):
    """At any temperature: feed the real LSNN's ``step`` the surrogate's expected spikes ẑ in place of z; its v
    and b are the surrogate's, and the surrogate's next ẑ is σ((v - A)/(A·T)) of them. In float64, to 1e-12."""
    net = LSNN(dataclasses.replace(BIASED, refractory_steps=refractory_steps), seed=1).double()
    assert net.b_in.abs().min() > 0
    sur = net.smooth_surrogate(temperature=0.2)
    v, b, z = random_state(5, 6, dtype=torch.float64)
    u = torch.randn(5, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    own = net.step(ALIFState(v, b, z, torch.zeros(5, 6, dtype=torch.int32)), u)
    v_s, b_s, z_s = sur.split(sur.step(torch.cat([v, b, z], dim=1), u))
    assert (v_s - own.v).abs().max() < 1e-12 and (b_s - own.b).abs().max() < 1e-12
    threshold = net.neurons.threshold + net.neurons.beta * own.b
    assert (z_s - torch.sigmoid((own.v - threshold) / (threshold * 0.2))).abs().max() < 1e-12


def test_the_input_bias_enters_the_surrogate_as_its_current():
    """With and without ``b_in`` the surrogate's v differs by exactly (1 - α)·b_in; b does not differ."""
    net = LSNN(dataclasses.replace(BIASED, dt_ms=1.0), seed=2).double()
    sur = net.smooth_surrogate()
    x = torch.cat(random_state(3, 6, seed=3, dtype=torch.float64), dim=1)
    u = torch.randn(3, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with_bias = sur.split(sur.step(x, u))
    b_in, net.b_in = net.b_in, None
    without = sur.split(sur.step(x, u))
    gain = 1 - math.exp(-1.0 / net.cfg.tau_m_ms)
    assert (with_bias[0] - without[0] - gain * b_in.detach()).abs().max() < 1e-12
    assert torch.equal(with_bias[1], without[1])
    assert (gain * b_in).abs().max() > 1e-3  # a contribution the comparison above could not miss


def test_surrogate_has_a_jacobian_and_refuses_a_bad_temperature():
    net = LSNN(LSNNConfig(n_lif=2, n_alif=2, n_inputs=1, n_outputs=1, input_bias=True))
    sur = net.smooth_surrogate()
    x = torch.zeros(1, 12, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda x: sur.step(x, torch.zeros(1, 1)), x)
    assert jac.shape == (1, 12, 1, 12) and torch.isfinite(jac).all() and jac.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        net.smooth_surrogate(temperature=0)
