"""Rate FORCE (Sussillo & Abbott 2009) and spiking FORCE (Nicola & Clopath 2017): RLS against its closed form,
batched against sequential training, the seed's exercise at small size, bad inputs, the closed loop as a map for
``fixedpoints``, checkpoints, and the spiking network's adapter against the project's LIF kernel."""

import math

import pytest
import torch

from baselines.force import (
    ForceConfig,
    ForceRNN,
    RLSError,
    chaotic_teacher,
    fit_force,
    force_step,
    plot_force_fit,
    rls_matrix,
    rls_update,
    rmse,
    seed_cosine,
    sum_of_sines,
)
from baselines.spiking_force import (
    NC_PARAMS,
    SpikingForce,
    SpikingForceConfig,
    SpikingForceFit,
    fit_spiking_force,
    lif_step_sparse,
    phase_drift,
    simulate_spiking_force,
    sine_target,
)
from ratenets import Rollout, load_model, save_checkpoint
from spiking.lif import LIFParams, initial_state, lif_step, synapse_constants


def tiny(n=30, seed=0, **kw) -> ForceRNN:
    return ForceRNN(ForceConfig(n_units=n, dt_ms=1.0, tau_ms=1.0, **kw), seed=seed)


def _rls_from_zero(r, f, alpha, forget=1.0):
    """RLS over samples ``r [M,K,N]``, targets ``f [M,K,O]`` from w = 0, P(0) = I/α: ``(w [M,O,N], P)``."""
    p = rls_matrix(r.shape[0], r.shape[2], 1 / alpha, r.dtype)
    w = torch.zeros(r.shape[0], f.shape[2], r.shape[2], dtype=r.dtype)
    for i in range(r.shape[1]):
        err = torch.bmm(w, r[:, i].unsqueeze(-1)).squeeze(-1) - f[:, i]
        rls_update(p, w, r[:, i], err, forget=forget)
    return w, p


def test_rls_equals_ridge_regression():
    """RLS from w = 0, P(0) = I/α after K samples is the ridge solution (αI + RᵀR)⁻¹ Rᵀf, for each network."""
    g = torch.Generator().manual_seed(0)
    n_nets, n, k, alpha = 3, 6, 40, 0.5
    r = torch.randn(n_nets, k, n, generator=g, dtype=torch.float64)
    f = torch.randn(n_nets, k, 2, generator=g, dtype=torch.float64)
    w, p = _rls_from_zero(r, f, alpha)
    gram = alpha * torch.eye(n, dtype=torch.float64) + r.transpose(1, 2) @ r
    ridge = torch.linalg.solve(gram, r.transpose(1, 2) @ f).transpose(1, 2)
    assert torch.allclose(w, ridge, atol=1e-10)
    assert torch.allclose(p, torch.linalg.inv(gram), atol=1e-10)


def test_rls_with_forgetting_equals_exponentially_weighted_ridge_regression():
    """With forgetting factor λ, after K samples: argmin Σᵢ λ^(K−i) (wᵀrᵢ − fᵢ)² + λ^K α‖w‖² (from w = 0)."""
    g = torch.Generator().manual_seed(1)
    n_nets, n, k, alpha, lam = 2, 5, 60, 0.5, 0.9
    r = torch.randn(n_nets, k, n, generator=g, dtype=torch.float64)
    f = torch.randn(n_nets, k, 1, generator=g, dtype=torch.float64)
    w, p = _rls_from_zero(r, f, alpha, forget=lam)
    weight = lam ** torch.arange(k - 1, -1, -1, dtype=torch.float64)  # λ^(K−i) for i = 1..K
    gram = lam**k * alpha * torch.eye(n, dtype=torch.float64) + r.transpose(1, 2) @ (weight[:, None] * r)
    solution = torch.linalg.solve(gram, r.transpose(1, 2) @ (weight[:, None] * f)).transpose(1, 2)
    assert torch.allclose(w, solution, atol=1e-9)
    assert torch.allclose(p, torch.linalg.inv(gram), atol=1e-9)
    assert (_rls_from_zero(r, f, alpha)[0] - w).abs().max() > 1e-2  # not plain RLS: old samples weigh less


def test_rls_refuses_a_non_finite_state_and_keeps_its_weights():
    p = rls_matrix(1, 4, 1.0)
    w = torch.ones(1, 1, 4)
    r = torch.tensor([[0.1, float("nan"), 0.2, 0.3]])
    with pytest.raises(RLSError, match="non-finite") as err:
        rls_update(p, w, r, torch.zeros(1, 1))
    assert "\n" not in str(err.value) and isinstance(err.value, ValueError)
    assert torch.equal(w, torch.ones(1, 1, 4)) and torch.equal(p, rls_matrix(1, 4, 1.0))


def test_fit_force_stops_at_a_non_finite_state_with_its_last_good_readout():
    inputs = torch.zeros(20, 1)
    inputs[12] = float("inf")
    target = seed_cosine(20)
    model = tiny(n_inputs=1)
    initial = model.w_out.clone()
    with pytest.raises(RLSError):
        fit_force(model, target, inputs)
    reference = tiny(n_inputs=1)
    fit_force(reference, target[:12], inputs[:12])
    assert torch.isfinite(model.w_out).all() and not torch.equal(model.w_out, initial)  # 12 updates kept
    assert torch.allclose(model.w_out, reference.w_out, atol=1e-6)


def test_target_of_the_wrong_length_is_one_line_and_changes_nothing():
    model = tiny(n_inputs=2)
    before = model.w_out.clone()
    with pytest.raises(ValueError, match="wrong length") as err:
        fit_force(model, seed_cosine(9), torch.zeros(10, 2))
    assert "\n" not in str(err.value)
    assert torch.equal(model.w_out, before)
    with pytest.raises(ValueError, match="learn"):
        fit_force(model, seed_cosine(10), torch.zeros(10, 2), learn=torch.ones(9, dtype=torch.bool))
    assert torch.equal(model.w_out, before)


def test_seed_exercise_small():
    """The seed's exercise at N 200 (learn t <= 300, test 300-800 with learning off, seed 0)."""
    model = ForceRNN(ForceConfig(n_units=200, dt_ms=1.0, tau_ms=1.0), seed=0)
    target = seed_cosine(800)
    fit = fit_force(model, target, learn=300)
    assert rmse(fit.outputs[0, 300:], target[300:]) < 0.1
    assert (fit.weight_change[0, 300:] == 0).all() and (fit.weight_change[0, :300] > 0).all()
    # the trained network replays the same closed loop: forward from the fit's state at t 300 gives the test run
    start = fit_force(ForceRNN(model.cfg, seed=0), target[:300], learn=300).final_state
    replay = model(torch.zeros(1, 500, 0), x0=start).outputs[0]
    assert torch.allclose(replay, fit.outputs[0, 300:], atol=1e-4)
    fig = plot_force_fit(fit, target, dt=1.0, learn_until=300)
    assert len(fig.axes) == 2


def test_many_networks_in_one_call_equal_one_at_a_time():
    target = sum_of_sines(60, 1.0, periods=(20.0, 35.0))
    nets = [tiny(seed=s).double() for s in range(3)]
    together = fit_force(nets, target, learn=40)
    for s, net in enumerate(nets):
        alone = tiny(seed=s).double()
        fit = fit_force(alone, target, learn=40)
        assert torch.allclose(fit.outputs[0], together.outputs[s], atol=1e-9)
        assert torch.allclose(alone.w_out, net.w_out, atol=1e-9)
    assert together.rls.shape == (3, 30, 30)


def test_step_is_the_exact_held_rate_update_and_matches_forward():
    model = tiny(n=8, n_inputs=1, substeps=3)
    with torch.no_grad():
        model.j.zero_()
        model.w_out.zero_()
    x = torch.randn(2, 8, dtype=torch.float32)
    u = torch.tensor([[0.5], [-1.0]])
    h = model.cfg.dt_ms / 3
    drive = u @ model.w_in.T
    expected = drive + (x - drive) * math.exp(-3 * h / model.cfg.tau_ms)  # linear leak: exact over 3 substeps
    assert torch.allclose(model.step(x, u), expected, atol=1e-6)
    model = tiny(n=8, n_inputs=1, substeps=2)
    inputs = torch.randn(2, 5, 1, generator=torch.Generator().manual_seed(1))
    out = model(inputs)
    assert isinstance(out, Rollout) and out.outputs.shape == (2, 5, 1) and out.states.shape == (2, 5, 8)
    x = model.initial_state(2)
    for t in range(5):
        x = model.step(x, inputs[:, t])
        assert torch.allclose(x, out.states[:, t], atol=1e-6)
    assert torch.allclose(out.outputs, model.readout(torch.tanh(out.states)), atol=1e-6)
    assert torch.allclose(force_step(x, inputs[:, 0], model.weights(), model.decay, 2), model.step(x, inputs[:, 0]))


def test_fixedpoints_analyses_the_closed_loop():
    import fixedpoints

    model = tiny(n=12, n_inputs=1, gain=0.5)
    states = model(torch.zeros(4, 20, 1)).states
    fps = fixedpoints.find(model, states, None, n_starts=16, seed=0)
    assert len(fps) >= 1 and float(fps.q.max()) < 1e-8
    x = fps.xstar.to(torch.float32)
    assert torch.allclose(model.step(x, torch.zeros(len(x), 1)), x, atol=1e-4)


def test_checkpoint_rebuilds_the_trained_network(tmp_path):
    model = tiny(n=20, n_inputs=1)
    fit_force(model, seed_cosine(30), torch.zeros(30, 1))
    save_checkpoint(tmp_path / "force.pt", model)
    loaded = load_model(tmp_path / "force.pt")
    inputs = torch.rand(2, 6, 1)
    assert type(loaded) is ForceRNN and torch.equal(loaded(inputs).outputs, model(inputs).outputs)


def test_targets():
    f = chaotic_teacher(200, 1.0, n_units=50, t_transient=50.0)
    assert f.shape == (200, 1) and abs(float(f.std()) - 1) < 1e-3 and float(f.diff(dim=0).abs().max()) < 1
    s = sum_of_sines(100, 1.0, periods=(10.0, 25.0), amplitudes=(1.0, 0.5))
    assert s.shape == (100, 1) and abs(float(s[9, 0]) - 0.5 * math.sin(2 * math.pi * 10 / 25)) < 1e-5
    with pytest.raises(ValueError, match="n_units"):
        ForceConfig(n_units=0)


# --- spiking FORCE -----------------------------------------------------------------------------------------


def test_sparse_adapter_equals_the_lif_kernel_spike_for_spike():
    """The adapter's gathered recurrence gives the same spikes and states as ``lif_step`` with the dense matrix."""
    cfg = SpikingForceConfig(n_units=60, p_connect=0.3, gain=2.0)
    net = SpikingForce(cfg, seed=3).double()
    prm = cfg.params
    syn = synapse_constants(torch.full((60,), 20.0, dtype=torch.float64), prm)
    dense = sparse = initial_state((2, 60), prm, dtype=torch.float64, v0=net.v0.double())
    w_pre = net.w_rec.T.contiguous()
    drive = torch.full((2, 60), prm.bias_mv, dtype=torch.float64) + torch.tensor([[0.5], [1.5]], dtype=torch.float64)
    total = 0
    for _ in range(600):
        s1, dense = lif_step(dense, drive, 0.0, net.w_rec, syn, prm)
        s2, sparse = lif_step_sparse(sparse, drive, 0.0, w_pre, syn, prm)
        assert torch.equal(s1, s2)
        total += int(s1.sum())
    assert total > 100  # the check saw recurrent spikes
    for a, b in zip(dense, sparse):
        assert torch.allclose(a, b, atol=1e-9)


def test_spiking_force_dense_and_sparse_runs_agree_and_forward_keeps_the_contract():
    cfg = SpikingForceConfig(n_units=40, n_inputs=1, n_outputs=2, p_connect=0.3, gain=1.0, dt_ms=1.0)
    net = SpikingForce(cfg, seed=1).double()
    with torch.no_grad():
        net.w_out.normal_(0, 0.01, generator=torch.Generator().manual_seed(0))
    inputs = torch.rand(2, 30, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    a = simulate_spiking_force(net, inputs, propagation="dense", record_rates=True)
    b = simulate_spiking_force(net, inputs, propagation="sparse", record_rates=True)
    assert torch.equal(a.n_spikes, b.n_spikes) and a.n_spikes.sum() > 0
    assert torch.allclose(a.outputs, b.outputs, atol=1e-9)
    out = net(inputs)
    assert out.outputs.shape == (2, 30, 2) and out.states.shape == (2, 30, 40) and out.spikes.sum() == a.n_spikes.sum()
    with pytest.raises(TypeError, match="no smooth surrogate"):
        net.smooth_surrogate()


@pytest.mark.parametrize("propagation", ["sparse", "dense"])
def test_networks_trained_side_by_side_equal_each_trained_alone(propagation):
    """A list of networks runs one batched simulation (M RLS states in one tensor); each network's spikes,
    outputs and trained readout are those of training it alone."""
    cfg = SpikingForceConfig(n_units=50, p_connect=0.3, gain=1.0, dt_ms=1.0)
    target = sine_target(120, 1.0, freq_hz=20.0)
    kw = dict(settle_ms=20, train_ms=60, test_ms=40, rls_every_ms=2.0, raster_units=10, propagation=propagation)
    together = fit_spiking_force([SpikingForce(cfg, seed=s).double() for s in (4, 5)], target, **kw)
    for s, fit in zip((4, 5), together):
        alone_net = SpikingForce(cfg, seed=s).double()
        alone = fit_spiking_force(alone_net, target, **kw)
        assert torch.equal(fit.run.n_spikes, alone.run.n_spikes) and alone.run.n_spikes.sum() > 100
        assert torch.equal(fit.run.raster, alone.run.raster) and len(alone.run.raster) > 0
        assert torch.allclose(fit.outputs, alone.outputs, atol=1e-9) and fit.run.n_updates == alone.run.n_updates == 30
        assert fit.test_rmse == pytest.approx(alone.test_rmse, abs=1e-9)
    assert not torch.equal(together[0].run.n_spikes, together[1].run.n_spikes)  # two networks, not one twice
    with pytest.raises(ValueError, match="must share n_units"):
        fit_spiking_force([SpikingForce(cfg), SpikingForce(SpikingForceConfig(n_units=40, dt_ms=1.0))],
                          target, **kw)


def test_spiking_force_learns_a_sine_and_refuses_bad_targets():
    """A small version of Nicola & Clopath's 5 Hz sine: 0.4 s to settle, 1 s of RLS, 0.4 s of test."""
    net = SpikingForce(SpikingForceConfig(n_units=300, dt_ms=2.5), seed=0)
    target = sine_target(720, 2.5)
    with pytest.raises(ValueError, match="wrong length"):
        fit_spiking_force(net, target[:-1], settle_ms=400, train_ms=1000, test_ms=400)
    assert not net.w_out.any()
    fit = fit_spiking_force(net, target, settle_ms=400, train_ms=1000, test_ms=400, raster_units=20)
    assert fit.run.n_updates == 400 and net.w_out.any()
    untrained = float(torch.sqrt((target[560:] ** 2).mean()))
    assert fit.test_rmse < 0.5 * untrained
    assert len(fit.run.raster) > 0 and int(fit.run.raster[:, 2].max()) < 20


def test_a_quadrature_target_is_trained_and_fed_back_but_only_the_sine_is_scored():
    """``sine_target(quadrature=True)`` = [sin, cos](2π5t); with it the network has two outputs, both trained, and the
    fit's test RMSE and amplitude are the sine's alone."""
    target = sine_target(720, 2.5, quadrature=True)
    t = torch.arange(1, 721, dtype=torch.float64) * 2.5e-3
    assert target.shape == (720, 2)
    assert torch.allclose(target[:, 1].double(), torch.cos(2 * math.pi * 5 * t), atol=1e-6)
    assert torch.equal(target[:, :1], sine_target(720, 2.5))
    net = SpikingForce(SpikingForceConfig(n_units=300, n_outputs=2, dt_ms=2.5), seed=0)
    fit = fit_spiking_force(net, target, settle_ms=400, train_ms=1000, test_ms=400, raster_units=0)
    assert net.w_out[0].any() and net.w_out[1].any()  # both outputs learned
    test = slice(fit.train_steps[1], None)
    assert fit.test_rmse == pytest.approx(float(torch.sqrt(((fit.outputs[test, 0] - target[test, 0]) ** 2).mean())))
    assert fit.test_amplitude == pytest.approx(float(target[test, 0].max() - target[test, 0].min()) / 2)
    assert fit.test_rmse < 0.5 * float(torch.sqrt((target[test, 0] ** 2).mean()))


def test_phase_drift_reads_a_known_lag_and_amplitude():
    """On a made-up fit whose test output is 0.8·sin(2π5t − 0.1·(t − t0)/s): phase −0.1 rad more per second."""
    dt, n_train, n = 0.5, 200, 200 + 6000
    t = torch.arange(1, n + 1, dtype=torch.float64) * dt / 1000
    lag = torch.where(t > t[n_train - 1], 0.1 * (t - t[n_train - 1]), torch.zeros_like(t))
    z = (0.8 * torch.sin(2 * math.pi * 5 * t - lag)).float().unsqueeze(-1)
    fit = SpikingForceFit(z, sine_target(n, dt), (0, n_train), 0.0, 1.0, None, 0.0)
    rows = phase_drift(fit, dt, window_ms=1000.0)
    assert rows.shape == (3, 2)
    assert torch.allclose(rows[:, 0], torch.tensor([-0.05, -0.15, -0.25], dtype=torch.float64), atol=2e-3)
    assert torch.allclose(rows[:, 1], torch.full((3,), 0.8, dtype=torch.float64), atol=2e-3)
    with pytest.raises(ValueError, match="window_ms"):
        phase_drift(fit, dt, window_ms=4000.0)


def test_nc_parameters_are_the_papers():
    p = NC_PARAMS
    assert (p.lif_dt_ms, p.tau_m_ms, p.refractory_ms, p.v_reset_mv, p.v_threshold_mv, p.bias_mv) == (
        0.05, 10.0, 2.0, -65.0, -40.0, -40.0)
    cfg = SpikingForceConfig()
    assert (cfg.n_units, cfg.p_connect, cfg.gain, cfg.feedback_scale, cfg.tau_decay_ms) == (2000, 0.1, 0.04, 10.0,
                                                                                            20.0)
    net = SpikingForce(SpikingForceConfig(n_units=50, p_connect=0.5), seed=0)
    present = net.w_rec != 0
    assert torch.allclose(net.w_rec.sum(dim=1), torch.zeros(50), atol=1e-6)  # rows balanced over their entries
    assert 0.3 < float(present.float().mean()) < 0.7
    assert isinstance(SpikingForceConfig(params={"lif_dt_ms": 0.1}).params, LIFParams)


# --- the pipeline stage ---------------------------------------------------------------------------------------


def test_force_stage_runs_through_the_pipeline_and_loads_its_finished_fit(tmp_path):
    from pipeline.config import RunConfig, from_dict
    from pipeline.runner import run_pipeline

    data = {"name": "tiny_force", "device": "cpu", "stages": ["force", "fixedpoints"],
            "task": {"name": "flipflop", "params": {"n_bits": 2, "n_steps_total": 40}},
            "force": {"model": {"n_units": 24, "input_scale": 5.0}, "train_trials": 6, "eval_trials": 8},
            "fixedpoints": {"n_starts": 16}}
    cfg = from_dict(RunConfig, data)
    summary = run_pipeline(cfg, tmp_path, log=lambda s: None)
    run = tmp_path / "tiny_force"
    entry = summary["models"]["force"]
    assert 0 <= entry["score"] <= 1 and entry["train_trials"] == 6 and entry["n_units"] == 24
    assert summary["fixed_points"]["force"]["n"] >= 1
    for fig in ("force_training", "force_trials", "fixed_points_force"):
        assert (run / "figures" / f"{fig}.png").exists(), fig
    loaded = load_model(run / "checkpoints" / "force.pt")
    assert type(loaded) is ForceRNN and loaded.cfg.n_inputs == 2 and loaded.cfg.dt_ms == 5.0
    (run / "figures" / "force_trials.png").unlink()  # redone from the finished checkpoint, without refitting
    logs = []
    again = run_pipeline(cfg, tmp_path, log=logs.append)
    assert any("loaded the finished fit" in line for line in logs)
    assert again["models"]["force"]["score"] == entry["score"]
    assert "## FORCE" in (run / "report.md").read_text()


def test_force_section_checks_its_settings():
    from pipeline.config import ConfigError, RunConfig, from_dict

    base = {"stages": ["force"], "task": {"name": "flipflop"}}
    with pytest.raises(ConfigError, match="config key force: train_trials must be in"):
        from_dict(RunConfig, {**base, "force": {"train_trials": 0}})
    with pytest.raises(ConfigError, match="n_inputs is set from the task"):
        from_dict(RunConfig, {**base, "force": {"model": {"n_inputs": 3}}})
    with pytest.raises(ConfigError, match="alpha"):
        from_dict(RunConfig, {**base, "force": {"train": {"alpha": -1.0}}})
