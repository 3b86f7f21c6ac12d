"""The LIF network of Kim et al. 2019: golden trajectory, synaptic kernel, refractoriness, batching."""

from __future__ import annotations

import math

import pytest
import torch

from spiking import LIFParams, initial_state, lif_step, simulate, synapse_constants, warmup_steps

F64 = torch.float64


def reference_run(w, drive, tau_d, v0, noise, n_steps, p: LIFParams):
    """Hand-written float64 equations (Kim et al. 2019, reference code order), plain Python floats."""
    n = len(v0)
    v, i_syn, h, r, q, refr = list(v0), [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n, [0] * n
    a, dt, big_r = p.lif_dt_ms / p.tau_m_ms, p.lif_dt_ms, p.refractory_steps
    trajectory, spikes = [], []
    for k in range(n_steps):
        s = [0] * n
        for i in range(n):
            if refr[i] > 0:  # clamped at v_reset
                refr[i] -= 1
            else:
                v[i] += a * (i_syn[i] + drive[i] - v[i]) + noise[k][i]
                if v[i] >= p.v_threshold_mv:
                    s[i], v[i], refr[i] = 1, p.v_reset_mv, big_r
                    spikes.append((k, i))
        for i in range(n):
            i_syn[i] = i_syn[i] * math.exp(-dt / tau_d[i]) + h[i] * dt
            kappa = 1000.0 / (p.tau_rise_ms * tau_d[i])
            h[i] = h[i] * math.exp(-dt / p.tau_rise_ms) + kappa * sum(w[i][j] * s[j] for j in range(n))
            r[i] = r[i] * math.exp(-dt / tau_d[i]) + q[i] * dt
            q[i] = q[i] * math.exp(-dt / p.tau_rise_ms) + kappa * s[i]
        trajectory.append((list(v), list(i_syn), list(r)))
    return trajectory, spikes


W3 = [[0.0, 0.0, 0.1], [0.6, 0.0, 0.0], [0.3, -0.2, 0.0]]
TAU3 = [20.0, 50.0, 90.0]
V03 = [-60.0, -45.0, -41.0]
DRIVE3 = [-10.0, -40.0, -40.0]  # bias −40 mV; unit 0 gets +30 mV of input and fires regularly


def three_neurons(n_steps=1500, seed=0):
    noise = 0.1 * torch.randn(n_steps, 3, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return noise, reference_run(W3, DRIVE3, TAU3, V03, noise.tolist(), n_steps, LIFParams())


def test_golden_three_neuron_trajectory_of_the_pure_step():
    p = LIFParams()
    noise, (golden, golden_spikes) = three_neurons()
    syn = synapse_constants(torch.tensor(TAU3, dtype=F64), p)
    state = initial_state((3,), p, dtype=F64, v0=torch.tensor(V03, dtype=F64))
    w, drive = torch.tensor(W3, dtype=F64), torch.tensor(DRIVE3, dtype=F64)
    spikes = []
    for k, (v_ref, i_ref, r_ref) in enumerate(golden):
        s, state = lif_step(state, drive, noise[k], w, syn, p)
        spikes += [(k, int(i)) for i in s.nonzero().flatten()]
        assert torch.allclose(state.v, torch.tensor(v_ref, dtype=F64), atol=1e-9, rtol=0), k
        assert torch.allclose(state.i_syn, torch.tensor(i_ref, dtype=F64), atol=1e-9, rtol=0), k
        assert torch.allclose(state.r, torch.tensor(r_ref, dtype=F64), atol=1e-9, rtol=0), k
    assert spikes == golden_spikes
    assert len({i for _, i in spikes}) == 3 and len(spikes) >= 8  # all three fire, recurrence matters


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_golden_three_neuron_spikes_of_the_batched_simulator(kernel):
    p = LIFParams()
    noise, (golden, golden_spikes) = three_neurons()
    n_rate_steps = 15  # 15 × 100 LIF steps
    inputs = torch.tensor([30.0, 0.0, 0.0], dtype=F64).expand(1, n_rate_steps, 3)
    res = simulate(torch.tensor(W3, dtype=F64), torch.eye(3, dtype=F64), torch.ones(1, 3, dtype=F64),
                   torch.tensor(TAU3, dtype=F64), inputs, p, dt_ms=5.0, dtype=F64, noise_source=lambda k: noise[k],
                   v0=torch.tensor(V03, dtype=F64), raster_trials=1, kernel=kernel, record_rates=True)
    assert [(int(k), int(i)) for k, i in res.raster[:, [2, 3]]] == golden_spikes
    v_end, _, r_end = golden[-1]
    assert torch.allclose(res.final_state.v[0, 0], torch.tensor(v_end, dtype=F64), atol=1e-9, rtol=0)
    assert torch.allclose(res.rates[0, 0, -1], torch.tensor(r_end, dtype=F64), atol=1e-9, rtol=0)
    assert torch.allclose(res.outputs[0, 0, -1, 0], torch.tensor(sum(r_end), dtype=F64), atol=1e-9, rtol=0)
    assert res.n_spikes.sum() == len(golden_spikes)


def test_synaptic_kernel_integrates_to_one():
    """One spike: ∫ r dt = 1 (r in Hz, t in s), and the recurrent current ∫ I dt = W; the discrete sums
    have the closed form dt² / ((1 − e^{−dt/τr})(1 − e^{−dt/τd}) τr τd) = 1 + O(dt/τr)."""
    p = LIFParams(noise_std_mv=0.0, lif_dt_ms=0.1)
    tau_d = torch.tensor([15.0, 30.0], dtype=F64)
    syn = synapse_constants(tau_d, p)
    w = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=F64)  # unit 0 → unit 1
    state = initial_state((2,), p, dtype=F64, v0=torch.tensor([0.0, -200.0], dtype=F64))  # unit 0 fires once
    drive = torch.tensor([-200.0, -200.0], dtype=F64)
    int_r = int_i = 0.0
    for _ in range(40 * 30 * 10):  # 40 τd of the slower unit
        s, state = lif_step(state, drive, 0.0, w, syn, p)
        int_r += float(state.r[0]) * p.lif_dt_ms / 1000
        int_i += float(state.i_syn[1]) * p.lif_dt_ms / 1000
    dt, tr = p.lif_dt_ms, p.tau_rise_ms

    def closed(td):
        return dt * dt / ((1 - math.exp(-dt / tr)) * (1 - math.exp(-dt / td)) * tr * td)

    assert int_r == pytest.approx(closed(15.0), rel=1e-9)
    assert int_i == pytest.approx(2.0 * closed(30.0), rel=1e-9)
    assert abs(int_r - 1) < dt / tr and abs(int_i / 2.0 - 1) < dt / tr


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
@pytest.mark.parametrize("refractory_ms", [2.0, 0.5, 0.0])
def test_refractory_period_respected(kernel, refractory_ms):
    p = LIFParams(refractory_ms=refractory_ms)
    inputs = torch.full((2, 4, 1), 1e5)  # overwhelming drive: a unit fires as soon as it may
    res = simulate(torch.zeros(3, 3), torch.ones(3, 1), torch.ones(1, 3), torch.full((3,), 20.0), inputs, p,
                   dt_ms=5.0, generator=torch.Generator().manual_seed(0), raster_trials=2, kernel=kernel)
    for trial in range(2):
        for unit in range(3):
            ev = res.raster[(res.raster[:, 1] == trial) & (res.raster[:, 3] == unit)]
            intervals = ev[:, 2].diff()
            assert len(ev) > 5
            assert (intervals == p.refractory_steps + 1).all()  # never sooner, and free right after


def small_network(n_units=20, n_nets=2, seed=0, dtype=F64):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n_units, n_units, generator=g, dtype=dtype) * 0.8
    w_rec = torch.stack([w / s for s in (1.0, 1.5)[:n_nets]])
    w_in = torch.randn(n_units, 2, generator=g, dtype=dtype) * 20
    w_out = torch.randn(n_nets, 1, n_units, generator=g, dtype=dtype) / 20
    tau_d = 20 + 80 * torch.rand(n_units, generator=g, dtype=dtype)
    return w_rec, w_in, w_out, tau_d


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_batched_equals_one_at_a_time_for_the_same_noise(kernel):
    w_rec, w_in, w_out, tau_d = small_network()
    batch, n_steps, n_units = 3, 10, w_rec.shape[-1]
    g = torch.Generator().manual_seed(1)
    inputs = torch.randn(batch, n_steps, 2, generator=g, dtype=F64).clamp(min=0)
    noise = 0.1 * torch.randn(n_steps * 100, batch, n_units, generator=g, dtype=F64)
    v0 = -65 + 95 * torch.rand(batch, n_units, generator=g, dtype=F64)
    kw = dict(dt_ms=5.0, dtype=F64, kernel=kernel, record_counts=True, record_rates=True)
    full = simulate(w_rec, w_in, w_out, tau_d, inputs, noise_source=lambda k: noise[k], v0=v0, **kw)
    assert full.n_spikes.sum() > 50
    for s in range(2):
        for b in range(batch):
            trial_noise = noise[:, b]
            one = simulate(w_rec[s], w_in, w_out[s], tau_d, inputs[b : b + 1],
                           noise_source=lambda k, z=trial_noise: z[k], v0=v0[b], **kw)
            assert torch.equal(one.n_spikes[0, 0], full.n_spikes[s, b])
            assert torch.equal(one.counts[0, 0], full.counts[s, b])
            assert torch.allclose(one.outputs[0, 0], full.outputs[s, b], atol=1e-12, rtol=0)
            assert torch.allclose(one.rates[0, 0], full.rates[s, b], atol=1e-12, rtol=0)


def test_sparse_and_dense_kernels_agree():
    w_rec, w_in, w_out, tau_d = small_network()
    inputs = torch.rand(4, 8, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    runs = [simulate(w_rec, w_in, w_out, tau_d, inputs, dt_ms=5.0, dtype=F64, kernel=k, raster_trials=2,
                     generator=torch.Generator().manual_seed(3)) for k in ("dense", "sparse")]
    assert torch.equal(runs[0].raster, runs[1].raster)
    assert torch.equal(runs[0].n_spikes, runs[1].n_spikes)
    assert torch.allclose(runs[0].outputs, runs[1].outputs, atol=1e-12, rtol=0)
    for a, b in zip(runs[0].final_state, runs[1].final_state):
        assert torch.allclose(a, b, atol=1e-12, rtol=0)


def test_memory_is_per_rate_step_and_dtype_follows_request():
    w_rec, w_in, w_out, tau_d = small_network(dtype=torch.float32)
    inputs = torch.rand(5, 6, 2)
    res = simulate(w_rec, w_in, w_out, tau_d, inputs, dt_ms=5.0, generator=torch.Generator().manual_seed(0))
    assert res.outputs.shape == (2, 5, 6, 1) and res.outputs.dtype == torch.float32
    assert res.rates is None and res.counts is None and res.raster is None
    assert res.n_spikes.shape == (2, 5, 20)
    assert res.firing_rates_hz().shape == (2, 5, 20)
    res64 = simulate(w_rec, w_in, w_out, tau_d, inputs, dt_ms=5.0, dtype=F64, record_counts=True)
    assert res64.outputs.dtype == F64 and res64.counts.shape == (2, 5, 6, 20) and res64.counts.dtype == torch.uint8


@pytest.mark.parametrize(
    "changes, message",
    [({"tau_m_ms": 0}, "tau_m_ms must be > 0"), ({"lif_dt_ms": -0.05}, "lif_dt_ms must be > 0"),
     ({"lif_dt_ms": 20.0}, "lif_dt_ms must be <= tau_m_ms"), ({"refractory_ms": -1.0}, "refractory_ms must be >= 0"),
     ({"noise_std_mv": -0.1}, "noise_std_mv must be >= 0"), ({"v_reset_mv": -30.0}, "v_reset_mv < v_threshold_mv"),
     ({"v_init_low_mv": 0.0}, "v_init_low_mv <= v_init_high_mv"), ({"bias_mv": "-40"}, "bias_mv must be a number")]
    + [({name: bad}, f"{name} must be finite") for name in LIFParams.__dataclass_fields__
       for bad in (math.nan, math.inf, -math.inf)],
)  # fmt: skip
def test_bad_lif_parameters_are_one_clear_error_on_construction(changes, message):
    with pytest.raises(ValueError, match=message):
        LIFParams(**changes)


def test_lif_params_are_frozen_and_hold_no_protocol_settings():
    p = LIFParams()
    with pytest.raises(AttributeError):
        p.lif_dt_ms = 0.1
    assert not hasattr(p, "warmup_ms") and not hasattr(p, "dt_ms")  # one name per meaning; warm-up is a protocol


def test_bad_simulation_settings_raise_one_clear_error():
    w_rec, w_in, w_out, tau_d = small_network()
    inputs = torch.zeros(1, 1, 2, dtype=F64)
    with pytest.raises(ValueError, match="whole multiple of the LIF step lif_dt_ms 0.3"):
        LIFParams(lif_dt_ms=0.3).substeps(5.0)
    with pytest.raises(ValueError, match="kernel"):
        simulate(w_rec, w_in, w_out, tau_d, inputs, dt_ms=5.0, kernel="fast")
    with pytest.raises(TypeError, match="dt_ms"):  # the rate step has no default that could disagree
        simulate(w_rec, w_in, w_out, tau_d, inputs)
    for bad in (math.nan, math.inf, 0.0):
        with pytest.raises(ValueError, match="dt_ms"):
            simulate(w_rec, w_in, w_out, tau_d, inputs, dt_ms=bad)


@pytest.mark.parametrize("warmup_ms, message", [(12.0, "whole number of steps of dt_ms 5.0 ms, got 12.0"),
                                                (2.5, "whole number of steps of dt_ms 5.0 ms, got 2.5"),
                                                (-5.0, "warmup_ms must be >= 0, got -5.0"),
                                                (math.nan, "warmup_ms must be a finite number")])
def test_warmup_that_is_not_whole_rate_steps_is_one_clear_error(warmup_ms, message):
    w_rec, w_in, w_out, tau_d = small_network()
    with pytest.raises(ValueError, match=message):
        simulate(w_rec, w_in, w_out, tau_d, torch.zeros(1, 1, 2, dtype=F64), dt_ms=5.0, warmup_ms=warmup_ms)
    assert warmup_steps(200.0, 5.0) == 40 and warmup_steps(0.0, 5.0) == 0


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_warmup_is_an_unrecorded_zero_input_prefix(kernel):
    """``warmup_ms`` = the same simulation with that much zero input prepended, the prefix cut from every record."""
    w_rec, w_in, w_out, tau_d = small_network()
    inputs = torch.rand(3, 6, 2, generator=torch.Generator().manual_seed(4), dtype=F64)
    v0 = -65 + 95 * torch.rand(3, w_rec.shape[-1], generator=torch.Generator().manual_seed(5), dtype=F64)
    quiet = LIFParams(noise_std_mv=0.0)
    kw = dict(dt_ms=5.0, dtype=F64, kernel=kernel, record_counts=True, record_rates=True, v0=v0)
    warm = simulate(w_rec, w_in, w_out, tau_d, inputs, quiet, warmup_ms=20.0, **kw)
    padded = simulate(w_rec, w_in, w_out, tau_d, torch.cat([torch.zeros(3, 4, 2, dtype=F64), inputs], 1), quiet, **kw)
    assert padded.counts[:, :, :4].sum() > 0  # the prefix did spike, so cutting it is tested
    assert torch.allclose(warm.outputs, padded.outputs[:, :, 4:], atol=1e-12, rtol=0)
    assert torch.allclose(warm.rates, padded.rates[:, :, 4:], atol=1e-12, rtol=0)
    assert torch.equal(warm.counts, padded.counts[:, :, 4:])
    assert torch.equal(warm.n_spikes, padded.counts[:, :, 4:].sum(dim=2).to(torch.int64))
    assert warm.duration_ms == 30.0 and warm.lif_dt_ms == 0.05
