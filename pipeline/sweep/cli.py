"""``ratespike sweep CONFIG [--out DIR] [--processes N] [--ray-address auto|HOST:PORT] [--aggregate-only]``:
run every network of a sweep config (resuming, skipping those done), then aggregate."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import load_sweep


def parse_args(argv, prog: str = "ratespike sweep"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0].split(":", 1)[-1].strip())
    p.add_argument("config", help="YAML sweep config, e.g. configs/universality.yaml")
    p.add_argument("--out", default="runs", help="parent folder of the sweep folder (default: runs)")
    p.add_argument("--processes", type=int, help="local executor: networks at once (default: the config's; "
                                                 "0: as many as cores)")
    p.add_argument("--retries", type=int, help="runs again of a failed network (default: the config's)")
    p.add_argument("--ray-address", help="run on the Ray cluster at auto or HOST:PORT (the cluster extra)")
    p.add_argument("--ray-timeout", type=float, default=30.0, help="seconds to wait for the Ray cluster (30)")
    p.add_argument("--no-aggregate", action="store_true", help="run the networks only")
    p.add_argument("--aggregate-only", action="store_true", help="aggregate the finished networks, run none")
    return p.parse_args(argv)


def sweep_main(argv, log=print) -> None:
    """Raises the project's one-line errors (ConfigError, RunError) for ``pipeline.cli`` to print."""
    import dataclasses

    from ..errors import ConfigError
    from .driver import run_sweep
    from .executors import make_executor

    args = parse_args(argv)
    sweep = load_sweep(args.config)
    changes = {}
    if args.processes is not None:
        changes["processes"] = args.processes
    if args.retries is not None:
        changes["retries"] = args.retries
    if changes:
        sweep = dataclasses.replace(sweep, **changes)
    if args.aggregate_only:
        if args.ray_address or args.no_aggregate:
            raise ConfigError("--aggregate-only runs no network: give it without --ray-address or --no-aggregate")
        from .driver import aggregate_folder

        aggregate_folder(Path(args.out) / sweep.name, sweep, log=log)
        return
    networks = sweep.networks()  # validated before a cluster is contacted
    del networks
    executor = make_executor(args.ray_address, sweep.processes, args.ray_timeout)
    run_sweep(sweep, Path(args.out), executor, log=log, aggregate=not args.no_aggregate)
