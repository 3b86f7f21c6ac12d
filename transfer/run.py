"""Pipeline entry: ``python transfer/run.py CONFIG [--out DIR] [--stages a,b] [--device D] [--seed N] [--force]``.

Trains and analyses every model the config asks for and writes ``<out>/<name>/`` (see README).
Rerunning the same command resumes an interrupted run; finished stages are not recomputed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the source tree importable
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from ratenets import CheckpointError, TrainingDiverged  # noqa: E402
from transfer.config import ConfigError, RunConfig, load_config, with_overrides  # noqa: E402
from transfer.pipeline import RunError, run_pipeline  # noqa: E402

USER_ERRORS = (ConfigError, CheckpointError, TrainingDiverged, RunError)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="transfer/run.py", description=__doc__.splitlines()[0])
    p.add_argument("config", help="YAML run config, e.g. configs/flipflop.yaml")
    p.add_argument("--out", default="runs", help="parent folder of the run directory (default: runs)")
    p.add_argument("--stages", help="comma-separated stages to run (default: the config's)")
    p.add_argument("--device", help="auto, cpu or cuda (default: the config's)")
    p.add_argument("--seed", type=int, help="seed for every random stream (default: the config's)")
    p.add_argument("--force", action="store_true", help="recompute stages whose output exists")
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


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
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


if __name__ == "__main__":
    sys.exit(main())
