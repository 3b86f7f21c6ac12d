"""What runs one network, wherever it runs (a local process, a Ray worker, the bench's own process): the
ordinary runner on the network's run config, torch single-threaded, progress bars silenced. Results are
bitwise reproducible for a given thread count, so every executor gives the same per-network results."""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path


def network_result(summary: dict, model: str) -> dict:
    """What the sweep records of a finished network: the score of the model that stands for it, every
    model's score, and the fixed-point summary."""
    models = summary.get("models", {})
    entry = models.get(model, {})
    return {
        "score": entry.get("score"),
        "scores": {m: v.get("score") for m, v in models.items() if isinstance(v, dict)},
        "fixed_points": summary.get("fixed_points", {}),
        "timings_s": summary.get("timings_s", {}),
    }


def run_network(job: dict) -> dict:
    """Run one network (``job``: ``config`` as plain data, ``out`` the sweep folder, ``model``, ``threads``)
    and return ``network_result`` plus the seconds it took. Errors propagate to the executor."""
    import torch

    from ..config import RunConfig, from_dict
    from ..runner import run_pipeline

    torch.set_num_threads(int(job.get("threads", 1)))
    t0 = time.perf_counter()
    cfg = from_dict(RunConfig, job["config"])
    lines: list[str] = []
    quiet = io.StringIO()  # the training progress of many networks would interleave in the sweep's log
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        summary = run_pipeline(cfg, Path(job["out"]), log=lines.append)
    return {**network_result(summary, job["model"]), "seconds": round(time.perf_counter() - t0, 2),
            "pid": os.getpid()}


def error_line(e: BaseException) -> str:
    """One line for a failed network: the exception's type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]
