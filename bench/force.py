"""The FORCE seed's exercise (``/work/shared/seeds/001_*``: N 1000, g 1.5, dt 1, learn until t 300, test 300-800
with learning off, target cos(2π t/50)) run two ways on the same network, then 16 networks in one call.

    python bench/force.py [--n-units 1000] [--batch 16] [--threads 1] [--seed 0]

(a) The seed's loop, written out here (numpy + ``scipy.integrate.ode``, the seed's algorithm step for step):
    the rates are cached, the readout updated by RLS at every integer t (P(0) = I), then the ODE
    ``dx/dt = -x + g J r + u z`` with r and z held is integrated over [t, t+1] by ``ode`` (its default, vode);
    after t 300 the learning rate is 0 (the loop still computes P r and the rank-1 product, as the seed does).
    It runs on *our* network: J, the feedback u, the initial readout and x(0) are those of
    ``ForceRNN(ForceConfig(n_units, tau_ms=1, dt_ms=1), seed)`` in float64, so both sides solve one problem
    and differ only in how they integrate and in precision.
(b) Ours: ``baselines.fit_force`` on that network (float32, exponential Euler with r and z held: exact for the
    same held-rate ODE), learning at t = 1..300, testing on t = 301..800.

Both test errors are RMSE of z against the target over t in (300, 800]. Then (c) ``--batch`` networks (seeds
seed..seed+B-1) trained in one ``fit_force`` call against the same networks trained one after another.
The last line is JSON: ``ratio`` = seed loop time / our time; ``batch_ratio`` = sequential / batched time.

    python bench/force.py --spiking 0 1 2 3 4 5 6 7 [--n-units 2000]

instead runs Nicola & Clopath's spiking FORCE protocol (``baselines.spiking_force``, the defaults of
``SpikingForceConfig``): 5 s settling, 5 s of RLS every 2.5 ms, 5 s of test on the 5 Hz sine, for each seed,
all seeds side by side in one ``fit_spiking_force`` call; prints each seed's test RMSE (of the amplitude, 1).
Timings are wall time of one run each on this machine's CPU, with ``--threads`` threads for torch and for numpy's
BLAS alike.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch

from baselines.force import ForceConfig, ForceRNN, fit_force, rmse, seed_cosine  # noqa: E402
from baselines.spiking_force import (  # noqa: E402
    SpikingForce,
    SpikingForceConfig,
    fit_spiking_force,
    phase_drift,
    sine_target,
)

T_MAX, LEARN_UNTIL, PERIOD = 800, 300, 50.0


def seed_loop(j: np.ndarray, u: np.ndarray, w: np.ndarray, x0: np.ndarray, gain: float) -> np.ndarray:
    """The seed's FORCE loop (In [4] of the notebook): returns z at t = 0..800."""
    from scipy.integrate import ode

    n = len(x0)
    target = lambda t0: math.cos(2 * math.pi * t0 / PERIOD)  # noqa: E731
    p = np.eye(n)
    lr = 1.0
    held = {"r": np.tanh(x0), "w": w.copy()}

    def f3(t0, x):
        r = held["r"]
        return -x + gain * (j @ r) + (held["w"] @ r) * u

    solver = ode(f3)
    solver.set_initial_value(x0)
    x, z, t = [x0], [], [0.0]
    while t[-1] < T_MAX:
        r = np.tanh(x[-1])
        held["r"] = r
        z.append(held["w"] @ r)
        error = target(t[-1]) - z[-1]
        q = p @ r
        c = lr / (1 + q @ r)
        p = p - c * np.outer(q, q)
        held["w"] = held["w"] + c * error * q
        if t[-1] > LEARN_UNTIL:
            lr = 0.0
        solver.integrate(solver.t + 1.0)
        x.append(solver.y)
        t.append(solver.t)
    z.append(held["w"] @ np.tanh(x[-1]))
    return np.asarray(z[: T_MAX + 1])


def blas_threads(n: int):
    """numpy's BLAS limited to ``n`` threads, like torch (threadpoolctl comes with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def test_rmse_seed(z: np.ndarray) -> float:
    t = np.arange(len(z), dtype=float)
    keep = t > LEARN_UNTIL
    return float(np.sqrt(np.mean((z[keep] - np.cos(2 * np.pi * t[keep] / PERIOD)) ** 2)))


def make(n_units: int, seed: int) -> ForceRNN:
    return ForceRNN(ForceConfig(n_units=n_units, dt_ms=1.0, tau_ms=1.0), seed=seed)


def ours(models) -> tuple[float, list[float]]:
    target = seed_cosine(T_MAX, 1.0, PERIOD)  # t = 1..800
    t0 = time.perf_counter()
    fit = fit_force(models, target, learn=LEARN_UNTIL)
    seconds = time.perf_counter() - t0
    return seconds, [rmse(z[LEARN_UNTIL:], target[LEARN_UNTIL:]) for z in fit.outputs]


def spiking(seeds: list[int], n_units: int, overrides: dict, p0: float | None = None, rls_float64: bool = False,
            float64: bool = False, rls_every_ms: float = 2.5, forget: float = 1.0, quadrature: bool = False) -> None:
    """N&C's protocol on each seed, side by side in one call. ``quadrature``: a second output learns the cosine
    (both fed back); the error is the sine's."""
    cfg = SpikingForceConfig(n_units=n_units, n_outputs=2 if quadrature else 1, **overrides)
    settle, train, test = 5000.0, 5000.0, 5000.0
    target = sine_target(round((settle + train + test) / cfg.dt_ms), cfg.dt_ms, quadrature=quadrature)
    nets = [SpikingForce(cfg, seed=s) for s in seeds]
    if float64:
        nets = [m.double() for m in nets]
    fits = fit_spiking_force(nets, target, settle_ms=settle, train_ms=train, test_ms=test, raster_units=0, p0=p0,
                             rls_float64=rls_float64 or float64, rls_every_ms=rls_every_ms, forget=forget)
    errors = [f.test_rmse for f in fits]  # the sine's (output 0)
    rates = [float(f.run.n_spikes.mean()) / ((settle + train + test) / 1000) for f in fits]
    phases = [phase_drift(f, cfg.dt_ms)[:, 0].tolist() for f in fits]  # per test second, rad
    for s, e, r, ph in zip(seeds, errors, rates, phases):
        print(f"seed {s}: test RMSE {e:.4f} of the amplitude, {r:.1f} Hz; phase per test second (rad) "
              f"{', '.join(f'{v:+.2f}' for v in ph)}")
    print(f"spiking FORCE, N {n_units}, {len(seeds)} seeds in {fits[0].seconds:.0f} s: median "
          f"{float(np.median(errors)):.4f}, max {max(errors):.4f}, {sum(e <= 0.2 for e in errors)}/{len(seeds)} <= 0.2")
    print(json.dumps({"bench": "spiking_force", "n_units": n_units, "seeds": seeds,
                      "test_rmse": [round(e, 4) for e in errors], "rate_hz": [round(r, 2) for r in rates],
                      "phase_rad_per_test_s": [[round(v, 3) for v in ph] for ph in phases],
                      "config": cfg.config_dict(), "p0": p0, "rls_float64": rls_float64 or float64, "float64": float64,
                      "rls_every_ms": rls_every_ms, "forget": forget, "quadrature": quadrature,
                      "seconds": round(fits[0].seconds, 1),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-units", type=int, default=None, help="1000 (rate), 2000 (--spiking)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--spiking", type=int, nargs="+", metavar="SEED", help="run spiking FORCE on these seeds")
    ap.add_argument("--gain", type=float, help="spiking: G (default: SpikingForceConfig's)")
    ap.add_argument("--feedback-scale", type=float, help="spiking: Q (default: SpikingForceConfig's)")
    ap.add_argument("--p0", type=float, help="spiking: P(0) = p0·I (default: fit_spiking_force's)")
    ap.add_argument("--rls-float64", action="store_true", help="spiking: the RLS matrix P in float64")
    ap.add_argument("--float64", action="store_true", help="spiking: the whole network in float64 (as N&C's MATLAB)")
    ap.add_argument("--rls-every-ms", type=float, default=2.5, help="spiking: RLS period (N&C: 2.5 ms)")
    ap.add_argument("--forget", type=float, default=1.0, help="spiking: RLS forgetting factor per update (N&C: 1)")
    ap.add_argument("--quadrature", action="store_true", help="spiking: a second output learns the cosine (fed back)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.spiking:
        chosen = {"gain": args.gain, "feedback_scale": args.feedback_scale}
        spiking(args.spiking, args.n_units or 2000, {k: v for k, v in chosen.items() if v is not None}, args.p0,
                args.rls_float64, args.float64, args.rls_every_ms, args.forget, args.quadrature)
        return
    n = args.n_units or 1000

    model = make(n, args.seed)
    f64 = {k: v.double().numpy() for k, v in model.state_dict().items()}
    with blas_threads(args.threads):
        t0 = time.perf_counter()
        z_seed = seed_loop(f64["j"], f64["w_fb"][:, 0], f64["w_out"][0], f64["x0"], model.cfg.gain)
        seed_s = time.perf_counter() - t0
    seed_err = test_rmse_seed(z_seed)
    print(f"(a) seed's scipy-ode loop, N {n}: {seed_s:.2f} s, test RMSE {seed_err:.4f}")

    ours_s, (ours_err,) = ours(make(n, args.seed))
    print(f"(b) fit_force, N {n}: {ours_s:.2f} s, test RMSE {ours_err:.4f}; ratio {seed_s / ours_s:.2f}")

    seeds = range(args.seed, args.seed + args.batch)
    batched_s, batched_err = ours([make(n, s) for s in seeds])
    sequential = [ours(make(n, s)) for s in seeds]
    sequential_s = sum(s for s, _ in sequential)
    sequential_err = [e[0] for _, e in sequential]
    print(f"(c) {args.batch} networks: one call {batched_s:.2f} s, one after another {sequential_s:.2f} s "
          f"(batch ratio {sequential_s / batched_s:.2f}); test RMSE median {float(np.median(batched_err)):.4f}, "
          f"{sum(e <= 0.05 for e in batched_err)}/{args.batch} <= 0.05")
    print(json.dumps({
        "bench": "force", "n_units": n, "seed": args.seed,
        "seed_loop_s": round(seed_s, 3), "ours_s": round(ours_s, 3), "ratio": round(seed_s / ours_s, 2),
        "seed_loop_test_rmse": round(seed_err, 5), "ours_test_rmse": round(ours_err, 5),
        "batch": args.batch, "batched_s": round(batched_s, 3), "sequential_s": round(sequential_s, 3),
        "batch_ratio": round(sequential_s / batched_s, 2),
        "batched_test_rmse": [round(e, 5) for e in batched_err],
        "sequential_test_rmse": [round(e, 5) for e in sequential_err],
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
