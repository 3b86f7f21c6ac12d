"""Fixed points of networks trained on the 3-bit flip-flop, a 64-unit GRU and FixedPointFinder's own example
(a 16-unit tanh ``nn.RNN``): ``fixedpoints.find`` at its defaults against an Adam-only finder that runs as the
public FixedPointFinder runs (Golub & Sussillo 2018) at its defaults.

    python bench/find_fixed_points.py [--nets gru64 rnn16] [--starts 1024] [--noise 0.5] [--threads 1] [--repeats 3]

Ours runs at its defaults (1024 starts from the held-out states, noise 0.05 x the states' standard deviation,
tol_q 1e-12, the settling check); the reference from 1024 of the same states plus its example's absolute noise
(``--noise``, 0.5), tol_q 1e-12.

The reference follows FixedPointFinder's joint optimisation (``_run_joint_optimization`` and
``_run_optimization_loop``) with its defaults (``FixedPointFinderBase``: tol_q 1e-12, tol_dq 1e-20,
max_iters 5000, Adam ε 0.01; recurrent-whisperer's ``AdaptiveLearningRate``: start 1.0, ×0.95 when the
loss is worse than each of the previous 5, ×1/0.95 after 5 strictly improving steps, at most one change
per 5 steps; ``AdaptiveGradNormClip``: clip the global gradient norm at the 95th percentile of the last
128 norms, no clipping on the first step). All points move together on the mean q, with TensorFlow's
Adam update (lr·√(1−β₂ᵗ)/(1−β₁ᵗ)·m/(√v + ε)). Its stopping rule is per point: the optimisation ends once
EVERY point has q < tol_q or |Δq| < tol_dq·lr (each point may meet either), or after max_iters. Then, as
its ``find_fixed_points`` does, distance outliers (beyond 10× the starts' mean distance from their
centroid) are dropped, duplicates merged and the points linearised; this bench also keeps only the
points with q <= tol_q (FixedPointFinder itself keeps every point; that count is printed too). It is
run with learning rates 1.0 (its default) and 0.1.

Quality: both sides' unique points are matched within 1e-4 (Euclidean, float64), both ways, and their
indices compared (``ours_superset``: every point the reference found is among ours); both max q are printed
(the reference's evaluated in float64 at its float32 points). Times are wall time on this machine's CPU, ours
the median of ``--repeats`` runs after one warm-up call on a toy map (``ours_first_s``: the first run, which
also pays one-time tracing costs); the reference's include its filtering, deduplication and linearisation.
One JSON line per network, ``ratio`` = reference time / our time with the reference's run that found the
most points (the faster one on a tie); the last line sums both networks up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

import fixedpoints  # noqa: E402
from fixedpoints.find import linearise  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
MATCH_TOL = 1e-4


def load_net(name: str):
    sys.path.insert(0, str(DATA))
    from make_fixedpoint_nets import load, make

    if not (DATA / f"fixedpoints_{name}.pt").exists():
        make(name)
    return load(name)


class AdaptiveLearningRate:
    """recurrent-whisperer's rule with its defaults and no warm-up: after a change, wait ``window`` steps;
    then ×``decrease`` when the newest loss is worse than each of the ``window`` before it, else ×``increase``
    when the last ``window + 1`` losses fall strictly."""

    def __init__(self, initial: float, window: int = 5, decrease: float = 0.95, increase: float = 1 / 0.95):
        self.rate, self.window, self.decrease, self.increase = initial, window, decrease, increase
        self.losses: list[float] = []
        self.step = 0
        self.last_change = -1

    def update(self, loss: float) -> None:
        self.losses.append(loss)
        if self.step == 0:  # the end of the (empty) warm-up counts as a change
            self.last_change = 0
        elif self.step >= self.last_change + self.window:
            recent = self.losses[-(self.window + 1):]
            if all(recent[-1] > earlier for earlier in recent[:-1]):
                self.rate *= self.decrease
                self.last_change = self.step
            elif all(later < earlier for earlier, later in zip(recent, recent[1:])):
                self.rate *= self.increase
                self.last_change = self.step
        self.step += 1


class AdaptiveGradNormClip:
    """recurrent-whisperer's clipper with its defaults: the ``percentile`` of the last ``window`` global
    gradient norms, ``initial`` (no clipping in effect) before any norm is logged."""

    def __init__(self, window: int = 128, percentile: float = 95.0, initial: float = 1e12, ceiling: float = 1e12):
        self.window, self.percentile, self.ceiling = window, percentile, ceiling
        self.value = initial
        self.norms: list[float] = []
        self.step = 0

    def update(self, norm: float) -> None:
        if self.step < self.window:
            self.norms.append(norm)
        else:
            self.norms[self.step % self.window] = norm
        self.value = min(float(np.percentile(self.norms, self.percentile)), self.ceiling)
        self.step += 1


def reference_finder(step, x0, u0, lr: float, tol_q=1e-12, tol_dq=1e-20, max_iters=5000, adam_eps=0.01,
                     betas=(0.9, 0.999)):
    """FixedPointFinder's joint optimisation; returns (x, q at x, iterations, q when it stopped)."""
    x = x0.clone()
    m, v = torch.zeros_like(x), torch.zeros_like(x)
    beta1, beta2 = betas
    schedule, clipper = AdaptiveLearningRate(lr), AdaptiveGradNormClip()
    q_prev = torch.full((x.shape[0],), float("nan"), dtype=x.dtype)
    iterations = 0
    for iterations in range(1, max_iters + 1):  # noqa: B007 (the count is returned)
        rate, clip = schedule.rate, clipper.value
        xg = x.detach().requires_grad_(True)
        with torch.enable_grad():
            q = 0.5 * ((step(xg, u0) - xg) ** 2).sum(dim=1)
            loss = q.mean()
            (grad,) = torch.autograd.grad(loss, xg)
        norm = float(grad.norm())
        if norm > clip:  # tf.clip_by_global_norm
            grad = grad * (clip / norm)
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = rate * (1 - beta2**iterations) ** 0.5 / (1 - beta1**iterations)  # TF1 AdamOptimizer
        x = x - step_size * m / (v.sqrt() + adam_eps)
        q = q.detach()
        dq = (q - q_prev).abs()
        # the peer's rule: stop once every point, each on its own, has q < tol_q or |dq| < tol_dq·lr
        if iterations > 1 and bool(((dq < tol_dq * rate) | (q < tol_q)).all()):
            break
        q_prev = q
        schedule.update(float(loss.detach()))
        clipper.update(norm)
    with torch.no_grad():
        q_final = 0.5 * ((step(x, u0) - x) ** 2).sum(dim=1)
    return x.detach(), q_final, iterations, q


def reference_points(precise, x, q, u, starts, tol_q=1e-12, tol_unique=1e-3, q_filter=True):
    """As FixedPointFinder post-processes: distance outliers dropped, duplicates merged (here with our
    Euclidean dedup, for both sides alike), linearised; with ``q_filter`` only points with q <= tol_q."""
    keep = fixedpoints.outlier_mask(x, starts, 10.0)
    if q_filter:
        keep &= q <= tol_q
    keep = keep.nonzero()[:, 0]
    unique = keep[fixedpoints.unique_lowest_q(x[keep], q[keep], tol_unique)]
    xd, ud = x[unique].double(), u[unique].double()
    with torch.no_grad():
        q64 = fixedpoints.solver.q_of(precise, xd, ud)  # q of the float32 points, evaluated in float64
    return linearise(precise, xd, ud, q64, tol_q)


def match(a: fixedpoints.FixedPoints, b: fixedpoints.FixedPoints, tol: float = MATCH_TOL) -> dict:
    """How many of ``a``'s points have one of ``b``'s within ``tol`` and the reverse; of the matched pairs,
    how many have different indices."""
    if len(a) == 0 or len(b) == 0:
        return {"a_in_b": 0, "b_in_a": 0, "index_mismatch": 0}
    dist = torch.cdist(a.xstar.double(), b.xstar.double())
    nearest_ab = dist.min(dim=1)
    found_a = nearest_ab.values <= tol
    found_b = dist.min(dim=0).values <= tol
    mismatch = (a.n_unstable[found_a] != b.n_unstable[nearest_ab.indices[found_a]]).sum()
    return {"a_in_b": int(found_a.sum()), "b_in_a": int(found_b.sum()), "index_mismatch": int(mismatch)}


def bench_net(name: str, args) -> dict:
    """Ours at its defaults and the reference at each learning rate on the saved network ``name``."""
    rnn, payload = load_net(name)
    states = payload["states"]
    tol_q = 1e-12
    times = []
    for _ in range(max(1, args.repeats)):
        t0 = time.perf_counter()
        ours = fixedpoints.find(rnn, states, n_starts=args.starts, tol_q=tol_q, seed=0)
        times.append(time.perf_counter() - t0)
    ours_s = statistics.median(times)
    ours_max_q = float(ours.q.max())
    print(f"[{name}] ours: {ours} in {ours_s:.2f} s (median of {[round(t, 3) for t in times]}); {ours.info}")

    flat = states.reshape(-1, states.shape[-1])
    zeros = torch.zeros(flat.shape[0], payload["n_inputs"])
    x0, u0 = fixedpoints.sample_starts(flat, zeros, args.starts, args.noise, torch.Generator().manual_seed(0))
    runs = {}
    with fixedpoints.dynamics_of(rnn) as (dyn, precise):
        for lr in args.reference_lrs:
            t0 = time.perf_counter()
            x, q, iters, q_at_stop = reference_finder(dyn.fn, x0, u0, lr, tol_q=tol_q)
            found = reference_points(precise, x, q, u0, x0, tol_q)
            seconds = time.perf_counter() - t0
            as_peer = reference_points(precise, x, q, u0, x0, tol_q, q_filter=False)
            pairs = match(ours, found)
            superset = pairs["b_in_a"] == len(found)
            equal = superset and pairs["a_in_b"] == len(ours) and not pairs["index_mismatch"]
            runs[lr] = {"s": seconds, "fps": found, "iters": iters, "equal": equal, "superset": superset, **pairs,
                        "converged_starts": int((q <= tol_q).sum()), "stopped_by_rule": iters < 5000,
                        "max_q": float(found.q.max()) if len(found) else float("nan"),
                        "peer_unique": len(as_peer), "peer_max_q": float(as_peer.q.max()) if len(as_peer) else 0.0}
            print(f"[{name}] reference lr {lr}: {found} in {seconds:.2f} s, {iters} iterations "
                  f"({'its stopping rule' if iters < 5000 else 'the iteration cap'}), "
                  f"{runs[lr]['converged_starts']} of {len(q)} starts at q <= tol_q; float32 q at the stop: max "
                  f"{float(q_at_stop.max()):.2e}")
            print(f"  ours found by the reference: {pairs['a_in_b']} of {len(ours)}; the reference's found by ours: "
                  f"{pairs['b_in_a']} of {len(found)} (match within {MATCH_TOL:g}); index mismatches "
                  f"{pairs['index_mismatch']}; max q ours {ours_max_q:.2e}, reference {runs[lr]['max_q']:.2e}")
            if not superset:
                print(f"  NOT a superset: ours misses {len(found) - pairs['b_in_a']} of the reference's points")
            print(f"  as FixedPointFinder reports them (no q filter): {len(as_peer)} unique points, max q "
                  f"{runs[lr]['peer_max_q']:.2e}")

    chosen = min(runs, key=lambda lr: (-len(runs[lr]["fps"]), runs[lr]["s"]))  # the reference's best run
    ref = runs[chosen]
    return {
        "net": name,
        "ours_s": round(ours_s, 3),
        "reference_s": round(ref["s"], 3),
        "ratio": round(ref["s"] / ours_s, 2),
        "ours_superset": ref["superset"],
        "equal_quality": ref["equal"],
        "reference_lr": chosen,
        "ours_unique": len(ours),
        "reference_unique": len(ref["fps"]),
        "ours_in_reference": ref["a_in_b"],
        "reference_in_ours": ref["b_in_a"],
        "index_mismatch": ref["index_mismatch"],
        "ours_max_q": ours_max_q,
        "reference_max_q": ref["max_q"],
        "ours_by_index": {str(k): v for k, v in ours.by_index().items()},
        "reference_by_index": {str(k): v for k, v in ref["fps"].by_index().items()},
        "ours_degenerate": int(ours.degenerate.sum()),
        "reference_runs": {str(lr): {"s": round(r["s"], 3), "iterations": r["iters"], "unique": len(r["fps"]),
                                     "superset_by_ours": r["superset"], "max_q": r["max_q"],
                                     "peer_unique": r["peer_unique"], "peer_max_q": r["peer_max_q"]}
                           for lr, r in runs.items()},
        "ours_runs_s": [round(t, 3) for t in times],
        "ours_first_s": round(times[0], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", nargs="*", default=["gru64", "rnn16"])
    parser.add_argument("--starts", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=0.5, help="the reference's absolute start noise")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reference-lrs", type=float, nargs="*", default=[1.0, 0.1])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    toy = torch.zeros(1, 2, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the toy's degenerate point at 0 is not the question here
        fixedpoints.find(lambda x, u: torch.tanh(x), toy, n_starts=2, settle_steps=0)  # one-time torch.func imports
    warmup_s = time.perf_counter() - t0
    results = [bench_net(name, args) for name in args.nets]
    for entry in results:
        print(json.dumps(entry))
    print(json.dumps({
        "nets": {r["net"]: {k: r[k] for k in ("ours_unique", "reference_unique", "ours_superset", "ours_s",
                                              "reference_s", "ratio")} for r in results},
        "ours_warmup_s": round(warmup_s, 3), "n_starts": args.starts, "reference_noise": args.noise,
        "threads": torch.get_num_threads(),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
