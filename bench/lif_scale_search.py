"""Bench: the Go/NoGo scaling-factor search (12 factors × 100 trials, N = 200, 20,000 LIF steps a trial).

(a) ours (``transfer.search_scale``: one batched simulation) against a one-trial-at-a-time, per-step NumPy
    simulation written the way the public ports of Kim et al.'s MATLAB code do it (arrays of N, a Python
    loop over LIF steps, the full-resolution filtered rates kept for the readout). The reference is timed
    on ``--reference-trials`` trials and scaled linearly to 1,200 trials (said so in the output).
(b) LIF steps per second against Brian2 (numpy code-generation target) on the same network and input,
    one trial, noise off; only where ``brian2`` imports (run from the xcheck environment:
    ``.venv-xcheck/bin/python bench/lif_scale_search.py``).

The network is ``runs/transfer_scores/gonogo_seed0.pt`` when it exists (``bench/transfer_scores.py``),
else an untrained N = 200 RateRNN (firing rates, hence the spike traffic, are similar). Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
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


def bench_steps_per_second(rate_net, task):
    """One trial, noise off, the same network and input in both simulators: LIF steps per second."""
    lif = rate_to_lif(rate_net, 30.0, LIFParams(noise_std_mv=0.0))
    batch = task.sample(1, torch.Generator().manual_seed(0))
    n_steps = task.n_steps * lif.params.substeps(lif.rate_dt_ms)
    v0 = -65 + 95 * torch.rand(lif.n_units, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t0 = time.perf_counter()
    simulate(lif.w_rec, lif.w_in, lif.w_out, lif.tau_d_ms, batch.inputs, lif.params, rate_dt_ms=lif.rate_dt_ms, v0=v0)
    ours = n_steps / (time.perf_counter() - t0)
    out = {"ours_steps_per_s_one_trial": round(ours, 1)}
    if brian2_available():
        timing = {}
        simulate_brian2(lif, batch.inputs[0], v0, timing=timing)
        out["brian2_steps_per_s_one_trial"] = round(n_steps / timing["run_s"], 1)
        out["brian2_setup_s"] = round(timing["setup_s"], 2)
        out["ours_over_brian2_steps"] = round(ours * timing["run_s"] / n_steps, 2)
    else:
        out["brian2_steps_per_s_one_trial"] = None
        print("(b) skipped: brian2 is not importable here; run from the xcheck environment")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-trials", type=int, default=100)
    parser.add_argument("--reference-trials", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
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
    steps = bench_steps_per_second(rate_net, task)
    print(f"(b) {steps}")
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
        **steps,
    }
    assert math.isfinite(summary["ratio"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
