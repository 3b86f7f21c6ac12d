"""The LSNN's smooth surrogate reproduces the spiking step away from threshold and is differentiable."""

import pytest
import torch

from spiking import LSNN, LSNNConfig
from spiking.alif import ALIFState


def test_cold_surrogate_matches_the_spiking_step_away_from_threshold():
    net = LSNN(LSNNConfig(n_lif=3, n_alif=3, n_inputs=2, n_outputs=1, refractory_steps=0), seed=0)
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


def test_surrogate_has_a_jacobian_and_refuses_a_bad_temperature():
    net = LSNN(LSNNConfig(n_lif=2, n_alif=2, n_inputs=1, n_outputs=1))
    sur = net.smooth_surrogate()
    x = torch.zeros(1, 12, requires_grad=True)
    jac = torch.autograd.functional.jacobian(lambda x: sur.step(x, torch.zeros(1, 1)), x)
    assert jac.shape == (1, 12, 1, 12) and torch.isfinite(jac).all() and jac.abs().sum() > 0
    with pytest.raises(ValueError, match="temperature"):
        net.smooth_surrogate(temperature=0)
