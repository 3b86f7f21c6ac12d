"""Cross-simulator check: rebuild a transferred LIF network in Brian2 and compare spike trains.
``python -m transfer.xcheck`` runs it on a 100-unit network; ``tests/test_lif_xcheck.py`` asserts on it.

Brian2 (``pip install 'ratespike[xcheck]'``, numpy < 2.4; code-generation target ``numpy``) runs the same
network with the same weights, the same input current (a ``TimedArray`` holding ``bias + W_in u`` per
rate step), the same initial voltages, voltage noise off and no warm-up:

* membrane: ``dv/dt = (-v + I_syn + ext(t, i)) / τm (unless refractory)``, Brian2's ``euler`` method,
  threshold ``v >= θ``, reset ``v = v_reset``; Brian2 frees a unit when ``t − lastspike >= refractory``,
  so ``refractory = (R + 1)·dt`` gives the R frozen steps of ``spiking.lif``;
* synapse: the paper's discrete double-exponential update, ``I_syn ← I_syn·e^{−dt/τd} + h·dt`` and
  ``h ← h·e^{−dt/τr}`` in the ``before_synapses`` slot, then ``on_pre: h_post += w/(τr·τd_post)`` with
  ``w = W_ij/λ`` in seconds (the reference code's units), which is the order of ``spiking.lif.lif_step``.

What it checks is therefore the wiring, the current indexing, the membrane integration, threshold,
reset, refractoriness and the ordering of the updates in an independent simulator.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

import tasks
from ratenets import RateRNN, RateRNNConfig
from spiking.lif_network import LIFNetwork
from spiking.simulate import simulate

from .mapping import rate_to_lif


class XCheckResult(NamedTuple):
    """What ``compare_with_brian2`` returns. Fields: ``n_spikes_ours`` and ``n_spikes_brian`` spikes per unit
    ``[N]``; ``counts_equal`` whether they agree for every unit; ``fraction_within_one_step`` of the matched spikes
    (the k-th spike of a unit against its k-th spike in the other simulator); ``max_step_difference`` in LIF steps;
    ``n_lif_steps`` simulated."""

    n_spikes_ours: np.ndarray  # [N]
    n_spikes_brian: np.ndarray  # [N]
    counts_equal: bool
    fraction_within_one_step: float  # of matched spikes (k-th spike of a unit against its k-th spike)
    max_step_difference: int
    n_lif_steps: int


def brian2_available() -> bool:
    try:
        import brian2  # noqa: F401
    except ImportError:
        return False
    return True


def simulate_brian2(
    lif_net: LIFNetwork, inputs: torch.Tensor, v0: torch.Tensor, timing: dict | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """One trial of ``lif_net`` in Brian2 (numpy target, noise off). ``inputs [T,I]`` per step of ``dt_ms``,
    ``v0 [N]`` in mV. Returns ``(unit, lif_step)`` of every spike; ``timing`` gets ``setup_s``, ``run_s``."""
    import time

    import brian2 as b2

    t0 = time.perf_counter()
    p = lif_net.params
    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    lif_dt = p.lif_dt_ms * b2.ms
    w_rec = lif_net.w_rec.detach().double().cpu().numpy()
    drive = (p.bias_mv + inputs.double().cpu() @ lif_net.w_in.double().cpu().T).numpy()  # [T, N]
    ext = b2.TimedArray(drive, dt=lif_net.dt_ms * b2.ms)  # noqa: F841 (found by name in the equations)
    tau_m = p.tau_m_ms * b2.ms  # noqa: F841
    tau_r = p.tau_rise_ms * b2.ms
    eqs = """
    dv/dt = (-v + I_syn + ext(t, i)) / tau_m : 1 (unless refractory)
    I_syn : 1
    h : Hz
    tau_d : second (constant)
    """
    group = b2.NeuronGroup(w_rec.shape[0], eqs, threshold="v >= v_th", reset="v = v_reset",
                           refractory=(p.refractory_steps + 1) * lif_dt, method="euler", dt=lif_dt,
                           namespace={"v_th": p.v_threshold_mv, "v_reset": p.v_reset_mv, "ext": ext,
                                      "tau_m": tau_m, "tau_r": tau_r})
    group.v = v0.double().cpu().numpy()
    group.tau_d = lif_net.tau_d_ms.double().cpu().numpy() * b2.ms
    group.run_regularly("I_syn = I_syn * exp(-dt / tau_d) + h * dt\nh = h * exp(-dt / tau_r)",
                        when="before_synapses")
    post, pre = np.nonzero(w_rec)
    syn = b2.Synapses(group, group, "w : second", on_pre="h_post += w / (tau_r * tau_d_post)", dt=lif_dt,
                      namespace={"tau_r": tau_r})
    syn.connect(i=pre, j=post)
    syn.w = w_rec[post, pre] * b2.second
    monitor = b2.SpikeMonitor(group)
    net = b2.Network(group, syn, monitor)
    net.run(0 * b2.ms)  # builds the code objects, so that run_s is the simulation alone
    t1 = time.perf_counter()
    net.run(inputs.shape[0] * lif_net.dt_ms * b2.ms)
    if timing is not None:
        timing.update(setup_s=t1 - t0, run_s=time.perf_counter() - t1)
    steps = np.round(np.asarray(monitor.t / lif_dt)).astype(np.int64)
    return np.asarray(monitor.i, dtype=np.int64), steps


def compare_with_brian2(lif_net: LIFNetwork, inputs: torch.Tensor, seed: int = 0) -> XCheckResult:
    """Run one trial (``inputs [T,I]``) in both simulators, float64, noise off, the same random ``v0``
    drawn from U[−65, 30] mV (the reference code's range: the first-step volley exercises the synapses), no
    warm-up (``lif_net.warmup_ms`` is not used: Brian2 starts the trial at t = 0)."""
    n_units = lif_net.n_units
    v0 = -65.0 + 95.0 * torch.rand(n_units, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    res = simulate(lif_net.w_rec.cpu(), lif_net.w_in.cpu(), lif_net.w_out.cpu(), lif_net.tau_d_ms.cpu(),
                   inputs[None].cpu(), lif_net.params, dt_ms=lif_net.dt_ms, dtype=torch.float64,
                   noise_source=lambda step: 0.0, v0=v0, raster_trials=1)
    ours_unit, ours_step = res.raster[:, 3].cpu().numpy(), res.raster[:, 2].cpu().numpy()
    brian_unit, brian_step = simulate_brian2(lif_net, inputs, v0)
    n_ours = np.bincount(ours_unit, minlength=n_units)
    n_brian = np.bincount(brian_unit, minlength=n_units)
    diffs = []
    for unit in range(n_units):
        a = np.sort(ours_step[ours_unit == unit])
        b = np.sort(brian_step[brian_unit == unit])
        k = min(len(a), len(b))
        diffs.append(np.abs(a[:k] - b[:k]))
        diffs.append(np.full(abs(len(a) - len(b)), np.iinfo(np.int64).max // 2))  # unmatched spikes
    diffs = np.concatenate(diffs) if diffs else np.zeros(0, dtype=np.int64)
    within = float((diffs <= 1).mean()) if diffs.size else 1.0
    max_diff = int(diffs.max()) if diffs.size else 0
    n_steps = inputs.shape[0] * lif_net.params.substeps(lif_net.dt_ms)
    return XCheckResult(n_ours, n_brian, bool((n_ours == n_brian).all()), within, max_diff, n_steps)


def main() -> None:
    """``python -m transfer.xcheck``: a 100-unit transferred network on one Go trial; prints JSON."""
    import json
    import time

    rate_net = RateRNN(RateRNNConfig(n_units=100), seed=0)
    lif_net = rate_to_lif(rate_net, 25.0)
    task = tasks.make("gonogo", n_steps_total=100)
    batch = task.sample(8, torch.Generator().manual_seed(0))
    trial = int(batch.meta["go"].argmax())
    t0 = time.perf_counter()
    res = compare_with_brian2(lif_net, batch.inputs[trial])
    print(json.dumps({"n_units": lif_net.n_units, "n_lif_steps": res.n_lif_steps,
                      "spikes_ours": int(res.n_spikes_ours.sum()), "spikes_brian2": int(res.n_spikes_brian.sum()),
                      "counts_equal": res.counts_equal, "within_one_step": res.fraction_within_one_step,
                      "max_step_difference": res.max_step_difference, "seconds": round(time.perf_counter() - t0, 1)}))


if __name__ == "__main__":
    main()
