"""Command line: ``ratespike CONFIG [--out DIR] [--stages a,b] [--device D] [--seed N] [--force]`` (also
``python -m pipeline`` and ``python transfer/run.py``); ``ratespike sweep SWEEP_CONFIG ...`` runs a sweep
(``pipeline.sweep``; a sweep config given in place of a run config is run as one).

Trains and analyses every model the config asks for and writes ``<out>/<name>/`` (see README).
Rerunning the same command resumes an interrupted run; finished stages are not recomputed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ratenets import CheckpointError, TrainingDiverged

from .config import ConfigError, RunConfig, load_config, with_overrides
from .context import RunError
from .registry import STAGES
from .runner import run_pipeline

USER_ERRORS = (ConfigError, CheckpointError, TrainingDiverged, RunError)


def parse_args(argv, prog: str = "ratespike"):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML run config, e.g. configs/flipflop.yaml")
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--stages", help=f"comma-separated stages to run (default: the config's); of {', '.join(STAGES)}")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's)")
    p.add_argument("--seed", type=int, help="seed for every random stream (default: the config's)")
    p.add_argument("--force", action="store_true", help="recompute the stages run, even where results exist")
    return p.parse_args(argv)


def resolve(args) -> RunConfig:
    cfg = load_config(args.config)
    overrides = {}
    if args.stages is not None:
        overrides["stages"] = [s.strip() for s in args.stages.split(",") if s.strip()]
    if args.device is not None:
        overrides["device"] = args.device
    if args.seed is not None:
        overrides["seed"] = args.seed
    return with_overrides(cfg, **overrides) if overrides else cfg


def main(argv=None, prog: str = "ratespike") -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and (argv[0] == "sweep" or _is_sweep(argv[0])):  # ``ratespike sweep CONFIG`` or a sweep config given
        return _sweep(argv[1:] if argv[0] == "sweep" else argv)
    args = parse_args(argv, prog)
    try:
        cfg = resolve(args)
        run_pipeline(cfg, Path(args.out), force=args.force)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


def _is_sweep(arg: str) -> bool:
    from .sweep.config import is_sweep_file

    return arg.endswith((".yaml", ".yml")) and Path(arg).is_file() and is_sweep_file(arg)


def _sweep(argv) -> int:
    from .sweep.cli import sweep_main

    try:
        sweep_main(argv)
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume the sweep (finished networks are skipped)",
              file=sys.stderr)
        return 130
    return 0
