"""The pipeline: build the task, run each stage in order, write the run directory.

Each stage is a function of a ``RunContext`` that trains or analyses one thing, records its figures
in ``summary`` and its arrays in ``results.h5``. A stage whose output exists is skipped (unless
``force``); ``summary.json`` is rewritten after every stage, so an interrupted run keeps everything
finished and resumes the unfinished stage from its checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from ratenets import load_model, resolve_device
from ratenets.checkpoint import load_checkpoint, versions
from tasks import Task

from .config import RunConfig, dump_config, to_dict
from .results import atomic_write_text, read_json, write_json


class RunError(RuntimeError):
    """A run that cannot go on for a reason the user can fix; the message is one line."""


@dataclass
class RunContext:
    cfg: RunConfig
    out: Path
    task: Task
    device: torch.device
    summary: dict
    force: bool = False
    log: Callable[[str], None] = print

    def checkpoint(self, model: str) -> Path:
        return self.out / "checkpoints" / f"{model}.pt"

    def figure(self, name: str) -> Path:
        return self.out / "figures" / f"{name}.png"

    @property
    def h5(self) -> Path:
        return self.out / "results.h5"

    def load_model(self, name: str) -> torch.nn.Module:
        """A trained model of this run, from its checkpoint; a missing one is a ``RunError`` naming the stage."""
        if not self.checkpoint(name).exists():
            raise RunError(f"no {name} checkpoint in {self.out}: run the {name} stage first (--stages {name},...)")
        return load_model(self.checkpoint(name)).to(self.device).eval()

    def eval_generator(self) -> torch.Generator:
        """Held-out trials: a stream no training or validation batch draws from."""
        return torch.Generator().manual_seed(self.cfg.seed + 20_000)


@dataclass
class Stage:
    name: str
    run: Callable[[RunContext], None]
    done: Callable[[RunContext], bool]
    checkpoints: tuple[str, ...] = field(default_factory=tuple)
    sections: tuple[str, ...] = field(default_factory=tuple)


STAGES: dict[str, Stage] = {}


def stage(name: str, done: Callable[[RunContext], bool], checkpoints: tuple[str, ...] = (),
          sections: tuple[str, ...] = ()):
    """Register a stage; stages run in the order they are registered. ``sections``: the config section(s)
    of the stage itself (besides name, seed and task); a stage's inputs are guarded by their own stages."""

    def wrap(fn):
        STAGES[name] = Stage(name, fn, done, checkpoints, sections)
        return fn

    return wrap


def model_done(name: str) -> Callable[[RunContext], bool]:
    """A model's stage is done when the summary has its score and its checkpoint is finished."""

    def done(ctx: RunContext) -> bool:
        if name not in ctx.summary.get("models", {}) or not ctx.checkpoint(name).exists():
            return False
        return bool(load_checkpoint(ctx.checkpoint(name)).get("done"))

    return done


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        key = f"{prefix}{k}"
        if k not in old:
            continue  # a section added since this run began (a newer version's stage) changes nothing done
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, key + ".")
        elif a != b:
            out.append(f"{key}: {a!r} -> {b!r}")
    return out


def _check_same_run(ctx: RunContext) -> None:
    """Refuse to mix results of two configs: a changed setting that a finished stage used is an error
    (a changed setting of a stage still to run is fine)."""
    path = ctx.out / "config.yaml"
    if not path.exists():
        return
    try:
        old = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise RunError(f"{path} is corrupt; use --force to start the run over") from None
    new = to_dict(ctx.cfg)
    for name, st in STAGES.items():
        if not st.done(ctx):
            continue
        keys = ("name", "seed", "task", *st.sections)
        diff = _differences({k: old[k] for k in keys if k in old}, {k: new.get(k) for k in keys if k in old})
        if diff:
            hint = "use --force to recompute or --out for another folder"
            raise RunError(f"{ctx.out} holds a {name} stage run with another config ({diff[0]}); {hint}")


def run_pipeline(cfg: RunConfig, out_root: Path = Path("runs"), force: bool = False, log=print) -> dict:
    """Run the configured stages and the report; return the summary."""
    from . import report, stages  # noqa: F401  (stages register themselves on import)

    out = Path(out_root) / cfg.name
    if force and out.exists():
        for name in cfg.stages:
            for ckpt in STAGES[name].checkpoints:
                (out / "checkpoints" / f"{ckpt}.pt").unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    task = cfg.make_task()
    summary_path = out / "summary.json"
    try:
        summary = read_json(summary_path) if summary_path.exists() else {}
    except ValueError as e:
        if not force:
            raise RunError(str(e)) from None
        summary = {}  # --force starts a corrupt summary over
    summary.setdefault("models", {})
    summary.setdefault("timings_s", {})
    ctx = RunContext(cfg, out, task, device, summary, force, log)
    if not force:
        _check_same_run(ctx)
    summary["task"] = {"name": task.name, "dt_ms": task.dt_ms, "n_steps": task.n_steps, **cfg.task.params}
    summary["versions"] = versions()
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    log(f"run {cfg.name}: task {task.name}, device {device}, writing {out}")
    for name in STAGES:
        if name not in cfg.stages:
            continue
        st = STAGES[name]
        if not force and st.done(ctx):
            log(f"{name}: done before, skipped (use --force to recompute)")
            continue
        t0 = time.perf_counter()
        st.run(ctx)
        summary["timings_s"][name] = round(time.perf_counter() - t0, 2)
        write_json(summary_path, summary)
    report.write_report(ctx)
    write_json(summary_path, summary)
    log(f"report: {out / 'report.md'}")
    return summary
