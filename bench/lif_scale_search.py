"""Bench: the Go/NoGo scaling-factor search (12 factors × 100 trials, N = 200, 20,000 LIF steps a trial).

(a) ours (``transfer.search_scale``: one batched simulation) against a one-trial-at-a-time, per-step NumPy
    simulation written the way the public ports of Kim et al.'s MATLAB code do it (arrays of N, a Python
    loop over LIF steps, the full-resolution filtered rates kept for the readout). The reference is timed
    on ``--reference-trials`` trials and scaled linearly to 1,200 trials (said so in the output).
(b) LIF steps per second, one trial, noise off, the same network, input and initial voltages, against Brian2
    (``transfer.xcheck.simulate_brian2``, the network the cross-check tests) on its ``numpy`` and ``cython``
    code-generation targets; only where ``brian2`` imports (run from the xcheck environment:
    ``.venv-xcheck/bin/python bench/lif_scale_search.py``; the cython target needs Cython and a C compiler).
    Ours runs in float32 (the simulator's default) and float64; Brian2 runs in float64 (its default
    ``core.default_float_dtype``). Every side is called once untimed, then ``--repeats`` times; the median is
    kept. Brian2's figure is its simulation loop alone (``device._last_run_time``: no code generation, no
    compilation; ``brian2_*_call_s`` is the whole ``net.run`` of the trial). The cython target compiles its
    code objects before the timed run, into a cache folder that is empty at the first call:
    ``brian2_cython_compile_s`` = the first cython call's setup minus the first numpy call's; a later call
    (``brian2_cython_setup_s``) compiles again whatever its objects' new names changed. Both Brian2 targets must
    give the same spikes.

The network is ``runs/transfer_scores/gonogo_seed0.pt`` when it exists (``bench/transfer_scores.py``),
else an untrained N = 200 RateRNN (firing rates, hence the spike traffic, are similar). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

import tasks
from ratenets import RateRNN, RateRNNConfig, load_model
from spiking import LIFParams, simulate
from transfer import DEFAULT_SCALES, rate_to_lif, search_scale
from transfer.xcheck import brian2_available, simulate_brian2

CHECKPOINT = Path("runs/transfer_scores/gonogo_seed0.pt")


def load_network():
    if CHECKPOINT.exists():
        return load_model(CHECKPOINT).eval(), str(CHECKPOINT)
    return RateRNN(RateRNNConfig(n_units=200), seed=0).eval(), "untrained RateRNN(n_units=200, seed=0)"


def reference_trial(w, w_in, w_out, td_s, u, scaling_factor, rng, noise=True):
    """One trial, the way the public ports run it: NumPy, per LIF step, seconds as in the MATLAB code."""
    n = w.shape[0]
    w = w / scaling_factor
    ext_stim = w_in @ u  # [N, T]
    dt, tref, tm, vreset, vpeak, tr = 0.00005, 0.002, 0.010, -65.0, -40.0, 0.002
    nt = u.shape[1] * 100
    ipsc, h, r, hr = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    v = vreset + rng.random(n) * (30 - vreset)
    tlast = np.zeros(n)
    rs = np.zeros((n, nt))
    for i in range(nt):
        current = ipsc + vpeak + ext_stim[:, i // 100]
        dv = (dt * i > tlast + tref) * (-v + current) / tm
        v = v + dt * dv + (rng.standard_normal(n) / 10 if noise else 0.0)
        index = np.flatnonzero(v >= vpeak)
        jd = w[:, index].sum(axis=1) if len(index) else 0.0
        tlast = tlast + (dt * i - tlast) * (v >= vpeak)
        ipsc = ipsc * np.exp(-dt / td_s) + h * dt
        h = h * np.exp(-dt / tr) + jd / (tr * td_s)
        r = r * np.exp(-dt / td_s) + hr * dt
        hr = hr * np.exp(-dt / tr) + (v >= vpeak) / (tr * td_s)
        rs[:, i] = r
        v = v + (vreset - v) * (v >= vpeak)
    return (w_out / scaling_factor) @ rs


def bench_search(rate_net, task, n_trials, reference_trials):
    t0 = time.perf_counter()
    result = search_scale(rate_net, task, DEFAULT_SCALES, n_trials=n_trials, seed=0)
    ours_s = time.perf_counter() - t0
    w = rate_net.w_rec().detach().double().numpy()
    w_in = rate_net.w_in.detach().double().numpy()
    w_out = rate_net.w_out.detach().double().numpy()
    td_s = rate_net.taus_ms().detach().double().numpy() / 1000
    batch = task.sample(reference_trials, torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for b in range(reference_trials):
        scale = DEFAULT_SCALES[b % len(DEFAULT_SCALES)]
        reference_trial(w, w_in, w_out, td_s, batch.inputs[b].double().numpy().T, scale, rng)
    per_trial = (time.perf_counter() - t0) / reference_trials
    total = len(DEFAULT_SCALES) * n_trials
    return result, ours_s, per_trial, per_trial * total


@contextmanager
def brian2_target(target: str):
    """Run ``transfer.xcheck.simulate_brian2`` (which sets ``codegen.target = "numpy"``) on ``target`` instead: the
    same network through the same code, with that one preference pinned while the context is open."""
    from brian2.core.preferences import BrianGlobalPreferences

    setitem = BrianGlobalPreferences.__setitem__

    def pinned(self, name, value):
        setitem(self, name, target if name == "codegen.target" else value)

    BrianGlobalPreferences.__setitem__ = pinned
    try:
        yield
    finally:
        BrianGlobalPreferences.__setitem__ = setitem


def brian2_call(lif, inputs, v0, target: str) -> dict:
    """One ``simulate_brian2`` call on ``target``: setup (build + code generation/compilation) seconds, the whole
    ``net.run`` seconds, the simulation loop's seconds, the target in force, the precision and the spikes."""
    import brian2 as b2

    timing = {}
    with brian2_target(target):
        units, steps = simulate_brian2(lif, inputs, v0, timing=timing)
        used = b2.prefs.codegen.target  # an explicit target never falls back: a failed compilation raises
    return {"setup_s": timing["setup_s"], "call_s": timing["run_s"], "loop_s": b2.get_device()._last_run_time,
            "target": used, "spikes": (units, steps), "float": b2.prefs.core.default_float_dtype.__name__}


def bench_brian2(lif, inputs, v0, n_steps, repeats) -> dict:
    import brian2 as b2

    out = {}
    with tempfile.TemporaryDirectory(prefix="brian2_cython_cache_") as cache:
        b2.prefs.codegen.runtime.cython.cache_dir = cache  # empty: nothing compiled before this bench
        for target in ("numpy", "cython"):
            first = brian2_call(lif, inputs, v0, target)
            calls = [brian2_call(lif, inputs, v0, target) for _ in range(repeats)]
            loop_s = statistics.median(c["loop_s"] for c in calls)
            call_s = statistics.median(c["call_s"] for c in calls)
            setup_s = statistics.median(c["setup_s"] for c in calls)
            out[f"brian2_{target}_steps_per_s"] = round(n_steps / loop_s, 1)
            out[f"brian2_{target}_call_steps_per_s"] = round(n_steps / call_s, 1)
            out[f"brian2_{target}_call_s"] = round(call_s, 3)
            out[f"brian2_{target}_setup_s"] = round(setup_s, 3)
            out[f"brian2_{target}_first_setup_s"] = round(first["setup_s"], 3)
            out[f"brian2_{target}_target_used"] = calls[-1]["target"]
            out[f"brian2_{target}_precision"] = calls[-1]["float"]
            out[f"brian2_{target}_spikes"] = int(len(calls[-1]["spikes"][0]))
            out[f"_{target}_spikes"] = calls[-1]["spikes"]
        # a later call compiles again only what its objects' names changed (extensions built / calls says so)
        out["brian2_cython_extensions_built"] = sum(1 for f in Path(cache).rglob("*") if f.suffix in (".so", ".pyd"))
    out["brian2_cython_calls"] = repeats + 1
    # the first cython call finds the cache empty: its setup beyond the first numpy call's is the compilation
    out["brian2_cython_compile_s"] = round(out["brian2_cython_first_setup_s"] - out["brian2_numpy_first_setup_s"], 2)
    (nu, ns), (cu, cs) = out.pop("_numpy_spikes"), out.pop("_cython_spikes")
    key = lambda u, s: sorted(zip(s.tolist(), u.tolist()))  # noqa: E731
    out["brian2_targets_same_spikes"] = key(nu, ns) == key(cu, cs)
    return out


def bench_steps_per_second(rate_net, task, repeats: int = 3):
    """One trial, noise off, the same network, input and initial voltages in every simulator: LIF steps/s."""
    lif = rate_to_lif(rate_net, 30.0, LIFParams(noise_std_mv=0.0))
    batch = task.sample(1, torch.Generator().manual_seed(0))
    n_steps = task.n_steps * lif.params.substeps(lif.dt_ms)
    v0 = -65 + 95 * torch.rand(lif.n_units, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = {"lif_steps_one_trial": n_steps, "repeats": repeats}
    for dtype in (torch.float32, torch.float64):
        times, spikes = [], None
        for k in range(repeats + 1):  # the first call is untimed
            t0 = time.perf_counter()
            res = simulate(lif.w_rec, lif.w_in, lif.w_out, lif.tau_d_ms, batch.inputs, lif.params,
                           dt_ms=lif.dt_ms, v0=v0, dtype=dtype, raster_trials=1)
            if k:
                times.append(time.perf_counter() - t0)
            spikes = int(res.raster.shape[0])
        name = str(dtype).removeprefix("torch.")
        out[f"ours_{name}_steps_per_s"] = round(n_steps / statistics.median(times), 1)
        out[f"ours_{name}_spikes"] = spikes
    if brian2_available():
        out.update(bench_brian2(lif, batch.inputs[0], v0, n_steps, repeats))
        ours32, ours64 = out["ours_float32_steps_per_s"], out["ours_float64_steps_per_s"]
        for target in ("numpy", "cython"):
            theirs = out[f"brian2_{target}_steps_per_s"]
            out[f"ours_float32_over_brian2_{target}"] = round(ours32 / theirs, 2)
            out[f"ours_float64_over_brian2_{target}"] = round(ours64 / theirs, 2)
    else:
        out["brian2_numpy_steps_per_s"] = out["brian2_cython_steps_per_s"] = None
        print("(b) skipped: brian2 is not importable here; run from the xcheck environment")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-trials", type=int, default=100)
    parser.add_argument("--reference-trials", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per simulator in (b), median kept")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rate_net, source = load_network()
    task = tasks.make("gonogo")
    print(f"network: {source}; N = {rate_net.cfg.n_units}; torch threads {args.threads}; {platform.processor()}")
    result, ours_s, per_trial, reference_s = bench_search(rate_net, task, args.n_trials, args.reference_trials)
    n_total = len(DEFAULT_SCALES) * args.n_trials
    print(f"(a) ours: {len(DEFAULT_SCALES)} factors × {args.n_trials} trials in one simulation: {ours_s:.1f} s "
          f"(best λ = {result.best_scale:g}, score {result.best_score:.2f})")
    print(f"(a) reference: {per_trial:.2f} s per trial, timed on {args.reference_trials} trials and scaled linearly "
          f"to {n_total} trials: {reference_s:.0f} s ({reference_s / 60:.1f} min)")
    steps = bench_steps_per_second(rate_net, task, args.repeats)
    print(f"(b) ours: {steps['ours_float32_steps_per_s']:,.0f} LIF steps/s in float32, "
          f"{steps['ours_float64_steps_per_s']:,.0f} in float64 (one trial, {steps['lif_steps_one_trial']:,} steps)")
    for target in ("numpy", "cython"):
        if steps.get(f"brian2_{target}_steps_per_s"):
            print(f"(b) Brian2 {target} ({steps[f'brian2_{target}_precision']}): "
                  f"{steps[f'brian2_{target}_steps_per_s']:,.0f} steps/s in its simulation loop "
                  f"({steps[f'brian2_{target}_call_steps_per_s']:,.0f} counting the whole net.run); "
                  f"ours float32 / Brian2 {steps[f'ours_float32_over_brian2_{target}']}, "
                  f"ours float64 / Brian2 {steps[f'ours_float64_over_brian2_{target}']}")
    if "brian2_cython_compile_s" in steps:
        print(f"(b) Brian2 cython: compilation {steps['brian2_cython_compile_s']} s (first call's setup beyond "
              f"numpy's; later calls' setup {steps['brian2_cython_setup_s']} s; "
              f"{steps['brian2_cython_extensions_built']} extensions in {steps['brian2_cython_calls']} calls); "
              f"same spikes on both targets: {steps['brian2_targets_same_spikes']}")
    substeps = LIFParams().substeps(task.dt_ms)
    summary = {
        "ours_s": round(ours_s, 2),
        "reference_s": round(reference_s, 1),
        "ratio": round(reference_s / ours_s, 1),
        "reference_timed_trials": args.reference_trials,
        "reference_scaled_to_trials": n_total,
        "reference_s_per_trial": round(per_trial, 3),
        "n_scales": len(DEFAULT_SCALES),
        "n_trials": args.n_trials,
        "n_units": rate_net.cfg.n_units,
        "lif_steps_per_trial": task.n_steps * substeps,
        "ours_trial_steps_per_s": round(n_total * task.n_steps * substeps / ours_s, 1),
        "device": "cpu",
        "threads": args.threads,
        "env_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        **steps,
    }
    assert math.isfinite(summary["ratio"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
