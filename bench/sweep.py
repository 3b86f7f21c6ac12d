"""Sweep throughput: networks per hour of the local executor on N processes against the same networks run one
after another in one process (``InlineExecutor``), each network torch single-threaded in both. The ratio is the
speed-up of running networks side by side; the aim is close to the core count. Also checks that both give the
same per-network scores (results do not depend on where a network runs).

    OMP_NUM_THREADS=1 flock /tmp/cpu.lock python bench/sweep.py [--networks 4] [--processes 2] [--steps 300]

The networks: GRU and vanilla RNNs of 64 units on the 3-bit flip-flop, a fixed number of updates (no early
stop, so every run does the same work), then their fixed points (256 starts).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipeline.sweep import InlineExecutor, LocalExecutor, run_sweep, sweep_from_dict  # noqa: E402


def bench_sweep(n_networks: int, steps: int) -> dict:
    archs = ["gru", "vanilla"]
    seeds = list(range((n_networks + 1) // 2))
    train = {"n_steps": steps, "batch_size": 64, "lr": 0.003, "eval_every": 50, "target_score": 1.01}
    return {
        "name": "bench_sweep",
        "base": {
            "name": "bench", "device": "cpu",
            "task": {"name": "flipflop", "params": {"n_bits": 3, "n_steps_total": 200}},
            "baselines": {"architectures": ["gru"], "eval_trials": 500,
                          "gru": {"model": {"n_units": 64}, "train": train},
                          "vanilla": {"model": {"n_units": 64}, "train": train}},
            "fixedpoints": {"n_starts": 256},
        },
        "axes": {"architectures": archs, "seeds": seeds},
        "retries": 0,
    }


def timed(sweep, out: Path, executor) -> tuple[float, dict]:
    t0 = time.perf_counter()
    state = run_sweep(sweep, out, executor, log=lambda _: None, aggregate=False)
    return time.perf_counter() - t0, state


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--networks", type=int, default=4)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--steps", type=int, default=300, help="training updates per network")
    args = p.parse_args()
    sweep = sweep_from_dict(bench_sweep(args.networks, args.steps))
    n = len(sweep.networks())
    with tempfile.TemporaryDirectory() as tmp:
        seq_s, seq = timed(sweep, Path(tmp) / "sequential", InlineExecutor())
        par_s, par = timed(sweep, Path(tmp) / "local", LocalExecutor(args.processes))
    same = all(seq["networks"][k]["score"] == par["networks"][k]["score"] for k in seq["networks"])
    failed = [k for k, e in par["networks"].items() if e["status"] != "done"]
    print(f"{n} networks ({args.steps} updates each + fixed points), torch single-threaded in both")
    print(f"sequential, one process:      {seq_s:7.1f} s  {3600 * n / seq_s:7.1f} networks/hour")
    print(f"local executor, {args.processes} processes:  {par_s:7.1f} s  {3600 * n / par_s:7.1f} networks/hour")
    print(f"ratio (local / sequential networks per hour): {seq_s / par_s:.2f}")
    print(f"same per-network scores on both: {same}" + (f"; failed: {failed}" if failed else ""))


if __name__ == "__main__":
    main()
