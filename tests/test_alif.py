"""ALIF neuron (spiking/alif.py): golden trajectory against the hand-written Bellec 2018 equations,
the pseudo-derivative's values, adaptation dynamics, snntorch state traps, bad parameters."""

import math
from pathlib import Path

import pytest
import snntorch
import torch

from spiking.alif import (
    ALIF,
    ALIFParameters,
    ALIFState,
    alif_step,
    bellec_pseudo_derivative,
    check_parameters,
    decay,
    spike_function,
)


def hand_written(currents, tau_m, tau_a, beta, thr, dt, n_ref):
    """Bellec 2018 for one neuron, plain Python floats."""
    alpha, rho = math.exp(-dt / tau_m), math.exp(-dt / tau_a)
    v = b = z = 0.0
    blocked = 0
    out = []
    for i in currents:
        b = rho * b + (1 - rho) * z
        a = thr + beta * b
        v = alpha * v + (1 - alpha) * i - a * z
        z = 1.0 if (v > a and blocked == 0) else 0.0
        blocked = n_ref if z else max(blocked - 1, 0)
        out.append((v, b, a, z))
    return out


def test_golden_trajectory_matches_hand_written_equations():
    torch.set_default_dtype(torch.float64)
    try:
        currents = [0.0, 0.3, 0.5, 0.5, 0.5, 0.1, 0.0, 0.6, 0.6, 0.6, 0.6, 0.0, 0.0, 0.7, 0.7, 0.7, 0.7, 0.7]
        params = dict(tau_m=20.0, tau_a=200.0, beta=1.6, thr=0.01, dt=1.0, n_ref=2)
        golden = hand_written(currents, **params)
        p = ALIFParameters(torch.tensor([20.0]), torch.tensor([200.0]), torch.tensor([1.6]), torch.tensor([0.01]), 2)
        state = ALIFState(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.int32))
        spikes = []
        for i, (v, b, _a, z) in zip(currents, golden):
            zt, state = alif_step(torch.tensor([[i]]), state, p, 1.0)
            assert state.v.item() == pytest.approx(v, abs=1e-12)
            assert state.b.item() == pytest.approx(b, abs=1e-12)
            assert zt.item() == z
            spikes.append(z)
        assert sum(spikes) >= 3  # the trajectory exercises spikes, resets and refractoriness
    finally:
        torch.set_default_dtype(torch.float32)


def test_pseudo_derivative_values():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.25, 1.0, 1.5])
    expected = torch.tensor([0.0, 0.0, 0.15, 0.3, 0.225, 0.0, 0.0])
    assert torch.allclose(bellec_pseudo_derivative(x), expected)
    # through the fused spike: dz/dv = ψ(ṽ)/A with ṽ = (v - A)/A
    a = torch.tensor([0.02, 0.02, 0.02])
    v = torch.tensor([0.02, 0.025, 0.05], requires_grad=True)
    z = spike_function("bellec")(v, a)
    assert z.tolist() == [0.0, 1.0, 1.0]
    z.sum().backward()
    expected_v = bellec_pseudo_derivative((v.detach() - a) / a) / a
    assert torch.allclose(v.grad, expected_v)
    assert torch.allclose(v.grad, torch.tensor([15.0, 11.25, 0.0]))


def test_snntorch_surrogates_selectable():
    v = torch.tensor([0.005, 0.015], requires_grad=True)
    a = torch.tensor([0.01, 0.01])
    z = spike_function("atan")(v, a)
    assert z.tolist() == [0.0, 1.0]
    z.sum().backward()
    assert (v.grad > 0).all()
    with pytest.raises(ValueError, match="surrogate must be one of"):
        spike_function("nope")


def test_threshold_rises_after_spikes_and_decays_back():
    neuron = ALIF(1, tau_m_ms=20.0, tau_a_ms=100.0, beta=1.8, threshold=0.01, dt_ms=1.0)
    state = neuron.initial_state(1)
    thresholds, n_spikes = [], 0
    for t in range(400):
        drive = torch.full((1, 1), 0.2 if t < 50 else 0.0)
        z, state = neuron(drive, state)
        n_spikes += int(z.item())
        thresholds.append(0.01 + 1.8 * state.b.item())
    assert n_spikes >= 5
    peak = max(thresholds[:60])
    assert peak > 0.05  # well above the baseline 0.01
    # after the drive stops, b decays with τa: e^{-350/100} ≈ 3 % of the peak excess remains
    assert thresholds[-1] - 0.01 < 0.05 * (peak - 0.01)
    assert all(x >= y for x, y in zip(thresholds[60:], thresholds[61:]))


def test_neurons_do_not_share_state_or_leak_into_snntorch_registry():
    before = len(snntorch.SpikingNeuron.instances)
    a = ALIF(3, dt_ms=1.0)
    b = ALIF(3, dt_ms=1.0)
    assert len(snntorch.SpikingNeuron.instances) == before
    sa = a.initial_state(2)
    za, sa = a(torch.full((2, 3), 0.5), sa)
    sb = b.initial_state(2)
    assert torch.count_nonzero(sb.v) == 0 and torch.count_nonzero(sa.v) > 0
    assert not hasattr(a, "mem") and not hasattr(a, "spk")


@pytest.mark.parametrize(
    "field, value, message",
    [("tau_a_ms", 0.0, "tau_a_ms must be > 0"), ("tau_a_ms", -5.0, "tau_a_ms must be > 0"),
     ("tau_m_ms", 0.0, "tau_m_ms must be > 0"), ("threshold", 0.0, "threshold must be > 0"),
     ("beta", -1.0, "beta must be >= 0"), ("beta", float("nan"), "beta must be finite"),
     ("tau_a_ms", float("inf"), "tau_a_ms must be finite"), ("threshold", float("nan"), "threshold must be finite"),
     ("tau_m_ms", float("-inf"), "tau_m_ms must be finite")],
)  # fmt: skip
def test_bad_parameters_raise_one_value_error(field, value, message):
    p = ALIFParameters(torch.tensor([20.0]), torch.tensor([200.0]), torch.tensor([1.6]), torch.tensor([0.01]))
    with pytest.raises(ValueError, match=message):
        check_parameters(p._replace(**{field: torch.tensor([value])}), 1.0)
    with pytest.raises(ValueError, match=message):
        ALIF(1, **{field: value})


@pytest.mark.parametrize("dt_ms", [0.0, float("nan"), float("inf")])
def test_bad_step_is_one_value_error(dt_ms):
    with pytest.raises(ValueError, match="dt_ms must be a finite number > 0"):
        ALIF(1, dt_ms=dt_ms)


def test_float64_neurons_get_float64_decays():
    """α and ρ of a float64 model are exp(-Δt/τ) to float64 precision, not float32 values cast up."""
    tau = torch.tensor([20.0, 700.0], dtype=torch.float64)
    exact = torch.tensor([math.exp(-1.0 / 20.0), math.exp(-1.0 / 700.0)], dtype=torch.float64)
    assert decay(tau, 1.0).dtype == torch.float64
    assert (decay(tau, 1.0) - exact).abs().max() < 1e-12
    assert (decay(tau.float(), 1.0, dtype=torch.float64) - exact).abs().max() < 1e-12  # a float32 τ, float64 state
    assert torch.equal(decay(tau.float(), 1.0), torch.exp(-1.0 / tau.float()))  # float32 models unchanged
    neuron = ALIF(2, tau_m_ms=20.0, tau_a_ms=700.0, beta=1.6, threshold=0.01, dt_ms=1.0).double()
    state = neuron.initial_state(1)
    assert state.v.dtype == torch.float64
    state = state._replace(b=torch.ones(1, 2, dtype=torch.float64))
    _, state = neuron(torch.full((1, 2), 0.005, dtype=torch.float64), state)  # below threshold: no spike
    assert (state.v[0] - (1 - exact[0]) * 0.005).abs().max() < 1e-15
    assert (state.b[0, 1] - exact[1]).abs() < 1e-15


def bellec_code(currents, n_refractory, tau_m=20.0, tau_a=200.0, beta=1.6, thr=0.01, dt=1.0):
    """LSNN-official's ALIF.__call__ + LIF_dynamic for one neuron: the spike of step t from the membrane of step
    t-1 (scaled by the new threshold), blocked while the buffer of the last ``n_refractory`` spikes holds one."""
    decay_v, decay_b = math.exp(-dt / tau_m), math.exp(-dt / tau_a)
    v = z = b = 0.0
    buffer = [0.0] * n_refractory
    out = []
    for i in currents:
        b = decay_b * b + (1 - decay_b) * z
        a = thr + beta * b
        new_v = decay_v * v + (1 - decay_v) * i - z * a
        new_z = 1.0 if (v - a) / a > 0 else 0.0
        if n_refractory > 0 and max(buffer) > 0:
            new_z = 0.0
        buffer = (buffer + [new_z])[1:] if n_refractory > 0 else buffer
        v, z = new_v, new_z
        out.append(z)
    return out


@pytest.mark.parametrize("n", [1, 2, 5])
def test_refractory_steps_cap_the_rate_as_bellecs_n_refractory_does(n):
    """Both block the n steps after a spike: under a drive strong enough to fire whenever allowed, spikes come
    every n + 1 steps in Bellec's code and here (the docstring says what differs: the timing of the reset)."""
    currents = [100.0] * 300
    p = ALIFParameters(torch.tensor([20.0]), torch.tensor([200.0]), torch.tensor([1.6]), torch.tensor([0.01]), n)
    state = ALIFState(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(1, 1, dtype=torch.int32))
    ours = []
    for i in currents:
        z, state = alif_step(torch.tensor([[i]]), state, p, 1.0)
        ours.append(z.item())
    for spikes in (ours, bellec_code(currents, n)):
        times = [t for t, s in enumerate(spikes) if s]
        assert len(times) > 20 and {b - a for a, b in zip(times, times[1:])} == {n + 1}


def test_alif_uses_only_snntorchs_public_names():
    import spiking

    for path in Path(spiking.__file__).parent.glob("*.py"):
        assert "snntorch._" not in path.read_text(), f"{path.name} imports a private snntorch module"
