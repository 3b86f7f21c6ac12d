"""Fixed points of a 64-unit GRU trained on the 3-bit flip-flop: ``fixedpoints.find`` against an Adam-only
finder configured like the public FixedPointFinder (Golub & Sussillo 2018; its PyTorch port).

    python bench/fixedpoints.py [--starts 1024] [--noise 0.05] [--threads 1]

Both start from the same 1024 states (held-out trajectories plus Gaussian noise) and use tol_q 1e-12. The
reference is written here as the public code runs it: all points optimised jointly on the mean q with Adam
(ε 0.01), an adaptive learning rate (×0.95 when the loss is worse than each of the last 5, ×1/0.95 after 5
improving steps), adaptive gradient-norm clipping (95th percentile of the last 100 norms), stopping when
every q < tol_q or every |Δq| < tol_dq or after 5000 iterations; then points with q <= tol_q are kept and
deduplicated at tol_unique 1e-3. It is run with learning rates 1.0 (its default) and 0.1.

Counts are of unique points with q <= tol_q; the time is wall time on this machine's CPU. The last line is
JSON: ``{"ours_s", "reference_s", "ratio", ...}`` where ``reference_s`` is the time of the faster reference
run among those that found all 8 stable points (the lr 0.1 run when neither did).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# run as a script, this file's folder comes first on sys.path and its name would hide the package
sys.path = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]

import fixedpoints  # noqa: E402
from fixedpoints.find import linearise  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def load_gru():
    sys.path.insert(0, str(DATA))
    from make_fixedpoint_nets import load, make

    if not (DATA / "fixedpoints_gru64.pt").exists():
        make("gru64")
    return load("gru64")


class AdaptiveLearningRate:
    """FixedPointFinder's rule: ×0.95 when the loss is worse than each of the last ``window``, ×1/0.95 after
    ``window`` consecutive improvements."""

    def __init__(self, initial: float, window: int = 5, decrease: float = 0.95, increase: float = 1 / 0.95):
        self.rate, self.window, self.decrease, self.increase = initial, window, decrease, increase
        self.losses: list[float] = []
        self.improving = 0

    def update(self, loss: float) -> float:
        recent = self.losses[-self.window:]
        if recent and loss > max(recent):
            self.rate *= self.decrease
            self.improving = 0
        elif recent and loss < recent[-1]:
            self.improving += 1
            if self.improving >= self.window:
                self.rate *= self.increase
                self.improving = 0
        self.losses.append(loss)
        return self.rate


def reference_finder(step, x0, u0, lr: float, tol_q=1e-12, tol_dq=1e-20, max_iters=5000, tol_unique=1e-3):
    """Adam-only joint optimisation as in the public FixedPointFinder; returns (x, q, iterations)."""
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, eps=0.01)
    schedule = AdaptiveLearningRate(lr)
    norms: list[float] = []
    q_prev = None
    iterations = 0
    for iterations in range(1, max_iters + 1):  # noqa: B007 (the count is returned)
        opt.zero_grad()
        q = 0.5 * ((step(x, u0) - x) ** 2).sum(dim=1)
        loss = q.mean()
        loss.backward()
        loss = float(loss.detach())
        norm = float(x.grad.norm())
        norms = (norms + [norm])[-100:]
        clip = float(torch.tensor(norms).quantile(0.95))
        if norm > clip:
            x.grad.mul_(clip / norm)
        for group in opt.param_groups:
            group["lr"] = schedule.update(loss)
        opt.step()
        q_now = q.detach()
        if bool((q_now < tol_q).all()):
            break
        if q_prev is not None and bool(((q_now - q_prev).abs() < tol_dq).all()):
            break
        q_prev = q_now
    with torch.no_grad():
        q = 0.5 * ((step(x, u0) - x) ** 2).sum(dim=1)
    return x.detach(), q, iterations


def reference_points(rnn, x, q, u, tol_q=1e-12, tol_unique=1e-3):
    keep = (q <= tol_q).nonzero()[:, 0]
    unique = keep[fixedpoints.unique_lowest_q(x[keep], q[keep], tol_unique)]
    with fixedpoints.dynamics_of(rnn) as (_, precise):
        return linearise(precise, x[unique].double(), u[unique].double(), q[unique].double(), tol_q)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1024)
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reference-lrs", type=float, nargs="*", default=[1.0, 0.1])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rnn, payload = load_gru()
    states = payload["states"]
    tol_q = 1e-12

    t0 = time.perf_counter()
    fixedpoints.find(lambda x, u: torch.tanh(x), torch.zeros(1, 2), n_starts=2)  # one-time torch.func imports
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = fixedpoints.find(rnn, states, n_starts=args.starts, noise=args.noise, tol_q=tol_q, seed=0)
    ours_s = time.perf_counter() - t0
    print(f"ours: {ours} in {ours_s:.2f} s; {ours.info}")

    flat = states.reshape(-1, states.shape[-1])
    zeros = torch.zeros(flat.shape[0], payload["n_inputs"])
    x0, u0 = fixedpoints.sample_starts(flat, zeros, args.starts, args.noise, torch.Generator().manual_seed(0))
    runs = {}
    with fixedpoints.dynamics_of(rnn, precise_dtype=None) as (dyn, _):
        for lr in args.reference_lrs:
            t0 = time.perf_counter()
            x, q, iters = reference_finder(dyn.fn, x0, u0, lr, tol_q=tol_q)
            seconds = time.perf_counter() - t0
            found = reference_points(rnn, x, q, u0, tol_q)
            runs[lr] = (seconds, found)
            print(f"reference lr {lr}: {found} in {seconds:.2f} s, {iters} iterations, "
                  f"{int((q <= tol_q).sum())} of {len(q)} starts converged")

    complete = [lr for lr, (_, f) in runs.items() if f.by_index().get(0, 0) >= 8]
    chosen = min(complete, key=lambda lr: runs[lr][0]) if complete else min(runs, key=lambda lr: abs(lr - 0.1))
    reference_s, reference_fps = runs[chosen]
    summary = {
        "ours_s": round(ours_s, 3),
        "reference_s": round(reference_s, 3),
        "ratio": round(reference_s / ours_s, 2),
        "reference_lr": chosen,
        "ours_unique": len(ours),
        "reference_unique": len(reference_fps),
        "ours_by_index": {str(k): v for k, v in ours.by_index().items()},
        "reference_by_index": {str(k): v for k, v in reference_fps.by_index().items()},
        "reference_runs": {str(lr): {"s": round(s, 3), "unique": len(f), "stable": f.by_index().get(0, 0)}
                           for lr, (s, f) in runs.items()},
        "ours_warmup_s": round(warmup_s, 3),
        "n_starts": args.starts,
        "noise": args.noise,
        "threads": args.threads,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
