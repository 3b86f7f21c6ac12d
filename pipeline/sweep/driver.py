"""The sweep driver: validate every network, check and lock the sweep folder, skip the networks that are done,
run the rest through an executor (a failed one again, ``retries`` times, then recorded as failed with its
error line; the sweep goes on), report progress, then aggregate.

The sweep folder holds ``sweep.json`` (the sweep's config and its networks' names), ``sweep_state.json`` (each
network's status, attempts, score, error), ``sweep.log`` (one line per finished network), one ordinary run
folder per network, and the aggregate (``pipeline.sweep.aggregate``). Killing the driver loses nothing: each
network's run folder resumes on its own, and the state is rebuilt from the run folders at the next start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ratenets.atomic import atomic_write_text

from ..config import load_config, to_dict
from ..errors import RunError
from ..lock import RunLock, RunLocked
from ..outputs import OutputError, read_json
from ..registry import STAGES
from ..runner import _differences, stage_settings
from .config import Network, SweepConfig, sweep_to_dict

SWEEP_FILE = "sweep.json"
STATE_FILE = "sweep_state.json"
LOG_FILE = "sweep.log"


def _write_json(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def signature(cfg) -> dict:
    """What a network's results depend on: its stages and each one's settings (sections of stages it does not
    run, which other stages may add to every config, do not count)."""
    out = {"stages": list(cfg.stages)}
    for name in cfg.stages:
        out.update(stage_settings(cfg, STAGES[name]))  # seed, task and the stage's own section
    return out


def check_folder(sweep: SweepConfig, networks: list[Network], folder: Path) -> None:
    """Refuse a folder that holds another sweep, or a network built with another config (nothing is mixed)."""
    if folder.exists() and not folder.is_dir():
        raise RunError(f"cannot use {folder} as the sweep folder: a file of that name is in the way")
    if not folder.is_dir():
        return
    marker = folder / SWEEP_FILE
    hint = "use --out for another folder"
    if marker.exists():
        try:
            other = read_json(marker)
        except OutputError as e:
            raise RunError(f"{e}; {hint}") from None
        if other.get("name") != sweep.name:
            raise RunError(f"{folder} holds the networks of another sweep ({other.get('name')!r}, not "
                           f"{sweep.name!r}); {hint}")
    elif any((p / "config.yaml").exists() for p in folder.iterdir() if p.is_dir()):
        raise RunError(f"{folder} holds run folders that no sweep made; {hint}")
    for net in networks:
        path = folder / net.name / "config.yaml"
        if not path.exists():
            continue
        try:
            old = signature(load_config(path))
        except Exception as e:  # noqa: BLE001 - any unreadable config is a conflict
            raise RunError(f"{folder} holds a network {net.name} whose config.yaml cannot be read ({e}); {hint}") \
                from None
        diff = _differences(old, signature(net.config))
        if diff:
            raise RunError(f"{folder} holds network {net.name} built with another config ({diff[0]}); {hint}")


def finished_result(net: Network, folder: Path) -> dict | None:
    """The recorded result of a network whose run folder says every one of its stages is done with its
    settings (a cheap check of ``summary.json``; the runner checks more thoroughly when it runs); else None."""
    from .worker import network_result

    run = folder / net.name
    if not (run / "report.md").exists() or not (run / "summary.json").exists():
        return None
    try:
        summary = read_json(run / "summary.json")
        records = summary.get("stages", {})
        for name in net.config.stages:
            record = records.get(name)
            if not isinstance(record, dict) or _differences(record.get("settings"),
                                                            stage_settings(net.config, STAGES[name])):
                return None
    except (OutputError, OSError):
        return None
    result = network_result(summary, net.model)
    return result if isinstance(result.get("score"), (int, float)) else None


class Progress:
    """Counts and ETA for the whole sweep, one line per finished network."""

    def __init__(self, total: int, log):
        self.total, self.log = total, log
        self.done = self.failed = self.running = 0
        self.t0 = time.perf_counter()
        self.finished_now = 0
        self.lines: list[str] = []

    def eta(self) -> str:
        left = self.total - self.done - self.failed
        if not self.finished_now or not left:
            return "ETA -"
        per = (time.perf_counter() - self.t0) / self.finished_now
        s = per * left
        return f"ETA {s / 60:.1f} min" if s >= 60 else f"ETA {s:.0f} s"

    def line(self, text: str) -> None:
        head = f"[{self.done}/{self.total} done, {self.failed} failed, {self.running} running, {self.eta()}]"
        msg = f"{head} {text}"
        self.lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}")
        self.log(msg)


def run_sweep(sweep: SweepConfig, out_root: Path = Path("runs"), executor=None, log=print,
              aggregate: bool = True, on_event=None) -> dict:
    """Run every network of ``sweep`` under ``out_root/<sweep.name>/`` and aggregate; return the state."""
    from .executors import LocalExecutor

    networks = sweep.networks()  # every config validated before any work
    folder = Path(out_root) / sweep.name
    check_folder(sweep, networks, folder)
    try:
        with RunLock(folder):
            return _run_locked(sweep, networks, folder, executor or LocalExecutor(sweep.processes), log,
                               aggregate, on_event)
    except RunLocked as e:
        raise RunError(str(e)) from None


def _previous_states(folder: Path) -> dict:
    """Each network's record in the sweep state file, or nothing when the file is missing or unreadable (the
    run folders themselves say what is done)."""
    if not (folder / STATE_FILE).exists():
        return {}
    try:
        return read_json(folder / STATE_FILE).get("networks", {})
    except OutputError:
        return {}


def _run_locked(sweep, networks, folder, executor, log, aggregate, on_event) -> dict:
    _write_json(folder / SWEEP_FILE, {**sweep_to_dict(sweep), "networks": [n.name for n in networks]})
    old = _previous_states(folder)
    state = {"name": sweep.name, "executor": executor.name, "networks": {}}
    progress = Progress(len(networks), log)
    previous_log = (folder / LOG_FILE).read_text(encoding="utf-8") if (folder / LOG_FILE).exists() else ""
    todo = []
    for net in networks:
        entry = {**net.axes(), "model": net.model, "status": "pending", "attempts": 0}
        result = finished_result(net, folder)
        if result is not None:
            prior = old.get(net.name, {})
            entry.update(status="done", attempts=prior.get("attempts", 1), score=result["score"],
                         scores=result["scores"], seconds=prior.get("seconds"))
            progress.done += 1
        else:
            todo.append(net)
        state["networks"][net.name] = entry
    if progress.done:
        log(f"sweep {sweep.name}: {progress.done} of {len(networks)} networks done before, skipped")
    log(f"sweep {sweep.name}: {len(todo)} networks to run on the {executor.name} executor "
        f"({min(executor.slots, max(len(todo), 1))} at once), writing {folder}")

    def save():
        state["progress"] = {"done": progress.done, "failed": progress.failed, "running": progress.running,
                             "total": len(networks)}
        _write_json(folder / STATE_FILE, state)
        atomic_write_text(folder / LOG_FILE, previous_log + "".join(f"{x}\n" for x in progress.lines))

    save()
    queue = list(todo)
    running: dict[int, Network] = {}
    try:
        while queue or running:
            while queue and len(running) < executor.slots:
                net = queue.pop(0)
                entry = state["networks"][net.name]
                entry["attempts"] += 1
                entry["status"] = "running"
                job = {"name": net.name, "config": to_dict(net.config), "out": str(folder.resolve()),
                       "model": net.model, "threads": 1}
                running[executor.submit(job)] = net
                progress.running = len(running)
                save()
                if on_event:
                    on_event("started", net.name)
            for outcome in executor.wait(timeout=5.0):
                net = running.pop(outcome.key)
                progress.running = min(len(running) + len(queue), executor.slots)  # as soon as the slot refills
                entry = state["networks"][net.name]
                if outcome.ok:
                    r = outcome.result
                    entry.update(status="done", score=r["score"], scores=r["scores"], seconds=r["seconds"])
                    entry.pop("error", None)
                    progress.done += 1
                    progress.finished_now += 1
                    score = f"{r['score']:.4f}" if isinstance(r["score"], (int, float)) else "none"
                    progress.line(f"{net.name}: score {score} in {r['seconds']:.0f} s (attempt {entry['attempts']})")
                elif entry["attempts"] <= sweep.retries:
                    entry.update(status="pending", error=outcome.error)
                    queue.append(net)
                    progress.line(f"{net.name}: attempt {entry['attempts']} failed ({outcome.error}); retrying")
                else:
                    entry.update(status="failed", error=outcome.error)
                    progress.failed += 1
                    progress.finished_now += 1
                    progress.line(f"{net.name}: FAILED after {entry['attempts']} attempts: {outcome.error}")
                save()
                if on_event:
                    on_event("done" if outcome.ok else "failed", net.name)
    finally:
        executor.close()
    failed = [n for n, e in state["networks"].items() if e["status"] == "failed"]
    wall = time.perf_counter() - progress.t0
    state["session"] = {"networks_run": progress.finished_now, "wall_s": round(wall, 1),
                        "networks_per_hour": round(3600 * progress.finished_now / wall, 2) if wall > 0 else None}
    save()
    log(f"sweep {sweep.name}: {progress.done} done, {len(failed)} failed"
        + (f" ({', '.join(failed)})" if failed else "")
        + f"; {progress.finished_now} networks finished in {wall / 60:.1f} min this run"
        + (f" ({3600 * progress.finished_now / wall:.1f} networks/hour)" if progress.finished_now else ""))
    if aggregate:
        from .aggregate import aggregate_sweep

        aggregate_sweep(folder, sweep, networks, state, log=log)
    return state


def aggregate_folder(folder: Path, sweep: SweepConfig, log=print) -> dict:
    """Aggregate what a sweep folder holds now (``--aggregate-only``), without running any network."""
    from .aggregate import aggregate_sweep

    networks = sweep.networks()
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"no sweep folder {folder}; run the sweep first")
    check_folder(sweep, networks, folder)
    old = _previous_states(folder)
    state = {"networks": {}}
    for net in networks:
        result = finished_result(net, folder)
        prior = old.get(net.name, {})
        if result is not None:
            state["networks"][net.name] = {**prior, "status": "done", "score": result["score"]}
        else:
            status = prior.get("status") if prior.get("status") in ("failed", "running") else "pending"
            state["networks"][net.name] = {**prior, "status": status}
    return aggregate_sweep(folder, sweep, networks, state, log)
