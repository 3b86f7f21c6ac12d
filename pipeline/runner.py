"""The runner: validate everything, lock the run folder, then run each configured stage that is not
done, in order, and write the report.

``summary.json`` keeps one record per finished stage: the settings it ran with (the task with every
default filled in, the seed, its own section), a fingerprint of what it produced (the weights of its
checkpoints, else its summary entries), the fingerprints of the stages it read, and the files it
wrote. A stage counts as done only when all of that still holds on disk: the files are there and
readable, the checkpoints still carry the recorded weights, and what it read has not changed since.
A stage whose inputs changed is invalidated together with the files it derived from them; one whose
own files went missing is recomputed (a model stage from its finished checkpoint, without training).

Nothing is deleted before everything is validated; a forced stage keeps its old checkpoint until the
new one is complete; a stage's old outputs are replaced only when its new ones are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from ratenets import CheckpointError, load_checkpoint, resolve_device
from ratenets.arrays import to_numpy
from ratenets.checkpoint import versions

from . import report
from .config import RunConfig, dump_config, to_dict
from .context import RunContext, RunError
from .lock import RunLock, RunLocked
from .outputs import CONFIG, RESULTS, SUMMARY, OutputError, RunWriter, _jsonable, h5_has, h5_readable, read_json
from .registry import STAGES, Stage, ordered


def _differences(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            key = f"{prefix}{k}"
            if k not in old:
                out.append(f"{key}: (not set) -> {new[k]!r}")
            elif k not in new:
                out.append(f"{key}: {old[k]!r} -> (not set)")
            else:
                out += _differences(old[k], new[k], key + ".")
        return out
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def stage_settings(cfg: RunConfig, stage: Stage) -> dict:
    """What a stage's results depend on besides the stages it reads (compared as JSON would store it)."""
    settings = {"seed": cfg.seed, "task": cfg.resolved_task()}
    if stage.section is not None:
        settings[stage.name] = to_dict(cfg.section(stage.name))
    return json.loads(json.dumps(_jsonable(settings)))


def _without_timings(x):
    """Results without wall-clock figures (``seconds``, ``search_seconds``...), which differ between equal runs."""
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items() if not str(k).endswith("seconds")}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


class Verdicts:
    """Which recorded stages still hold, and why not; checkpoint fingerprints cached by file identity."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self._fp_cache: dict = {}

    def checkpoint_fingerprint(self, path: Path) -> str:
        st = path.stat()
        key = (str(path), st.st_mtime_ns, st.st_size)
        if key not in self._fp_cache:
            payload = load_checkpoint(path)
            h = hashlib.sha256()
            for name in sorted(payload["model_state"]):
                t = payload["model_state"][name]
                h.update(name.encode())
                h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
                h.update(to_numpy(t.reshape(-1).contiguous().view(torch.uint8)).tobytes())
            self._fp_cache[key] = h.hexdigest()[:20]
        return self._fp_cache[key]

    def fingerprint(self, stage: Stage, files) -> str:
        ckpts = sorted(name for kind, name, _ in files if kind == "checkpoint")
        if ckpts:
            return "+".join(self.checkpoint_fingerprint(self.ctx.writer.checkpoint_path(c)) for c in ckpts)
        s = self.ctx.summary
        owned = {k: s.get(k) for k in stage.summary_keys} | {m: s["models"].get(m) for m in stage.models}
        return hashlib.sha256(json.dumps(_without_timings(_jsonable(owned)), sort_keys=True).encode()).hexdigest()[:20]

    def current_inputs(self, stage: Stage) -> dict:
        """Fingerprints of the stages ``stage`` reads that are done now."""
        records = self.ctx.summary.get("stages", {})
        return {n: records[n]["fingerprint"] for n in stage.needs if n in records and self.problem(n) is None}

    def problem(self, name: str) -> str | None:
        """None when the recorded stage ``name`` still holds, else why not (one phrase)."""
        ctx = self.ctx
        record = ctx.summary.get("stages", {}).get(name)
        stage = STAGES[name]
        if not isinstance(record, dict):
            return "not run"
        models = ctx.summary.get("models", {})
        for m in stage.written_models(ctx.cfg):
            entry = models.get(m)
            if not isinstance(entry, dict) or not isinstance(entry.get("score"), (int, float)):
                return f"no score for model {m} in the summary"
        for key in stage.summary_keys:
            if ctx.summary.get(key) in (None, {}, []):
                return f"nothing under {key} in the summary"
        try:
            files = [tuple(f) for f in record["files"]]
            for kind, fname, detail in files:
                if kind == "checkpoint":
                    path = ctx.writer.checkpoint_path(fname)
                    if not path.exists():
                        return f"checkpoints/{fname}.pt is missing"
                    if not load_checkpoint(path).get("done"):
                        return f"checkpoints/{fname}.pt is unfinished"
                elif kind == "h5" and not h5_has(ctx.writer.results, fname, detail):
                    return f"{RESULTS} lacks {fname}"
                elif kind == "figure" and not ctx.writer.figure_path(fname).exists():
                    return f"figures/{fname}.png is missing"
            if self.fingerprint(stage, files) != record["fingerprint"]:
                return "its checkpoint holds other weights than the recorded ones"
        except CheckpointError as e:
            return str(e)
        except (KeyError, TypeError, ValueError):
            return "its record in the summary is malformed"
        if record.get("inputs") != self.current_inputs(stage):
            return "the results it was computed from have changed"
        return None


def _drop(ctx: RunContext, name: str, stale: bool) -> None:
    """Forget stage ``name``: its record and summary entries; when ``stale`` (computed from results that
    changed) also the files it wrote, which would otherwise claim what no longer holds."""
    stage = STAGES[name]
    record = ctx.summary.get("stages", {}).pop(name, None)
    for m in stage.models:
        ctx.summary.get("models", {}).pop(m, None)
    for key in stage.summary_keys:
        ctx.summary.pop(key, None)
    ctx.summary.get("timings_s", {}).pop(name, None)
    if not stale or not isinstance(record, dict):
        return
    files = [tuple(f) for f in record.get("files", [])]
    ctx.writer.remove_h5_groups([n for kind, n, _ in files if kind == "h5"])
    for kind, fname, _ in files:
        if kind == "figure":
            ctx.writer.figure_path(fname).unlink(missing_ok=True)
        elif kind == "checkpoint":
            ctx.writer.checkpoint_path(fname).unlink(missing_ok=True)


def _settle(ctx: RunContext, verdicts: Verdicts) -> None:
    """Drop every recorded stage that no longer holds (in run order, so downstream sees upstream's verdict)."""
    records = ctx.summary.setdefault("stages", {})
    for stage in ordered([n for n in records if n in STAGES]):
        why = verdicts.problem(stage.name)
        if why is not None:
            stale = why == "the results it was computed from have changed"
            ctx.log(f"{stage.name}: earlier results no longer hold ({why}); {'removed' if stale else 'to redo'}")
            _drop(ctx, stage.name, stale)


def _check_settings(ctx: RunContext) -> None:
    """A finished stage run with other settings is an error (without --force): nothing is mixed."""
    for name, record in ctx.summary.get("stages", {}).items():
        if name not in STAGES or not isinstance(record, dict):
            continue
        diff = _differences(record.get("settings"), stage_settings(ctx.cfg, STAGES[name]))
        if diff:
            hint = "use --force to recompute or --out for another folder"
            raise RunError(f"{ctx.out} holds a {name} stage run with another config ({diff[0]}); {hint}")


def _load_summary(writer: RunWriter, force: bool, log) -> dict:
    path = writer.out / SUMMARY
    if not path.exists():
        return {}
    try:
        return read_json(path)
    except OutputError as e:
        if not force:
            raise RunError(f"{e}; use --force to set it aside and start the summary over") from None
        log(f"{SUMMARY} is corrupt: kept as {writer.set_aside(SUMMARY, str(e)).name}; starting the summary over")
        return {}


def _prepare(cfg: RunConfig, out: Path):
    """Everything that can be checked before the run folder is touched."""
    try:
        device = resolve_device(cfg.device)
    except ValueError as e:
        raise RunError(str(e)) from None
    task = cfg.make_task()
    if out.exists() and not out.is_dir():
        raise RunError(f"cannot use {out} as the run folder: a file of that name is in the way")
    return device, task


def run_pipeline(cfg: RunConfig, out_root: Path = Path("runs"), force: bool = False, log=print) -> dict:
    """Run the configured stages and the report; return the summary."""
    out = Path(out_root) / cfg.name
    device, task = _prepare(cfg, out)
    try:
        with RunLock(out):
            return _run_locked(cfg, out, device, task, force, log)
    except RunLocked as e:
        raise RunError(str(e)) from None
    except OSError as e:
        where = e.filename or out
        raise RunError(f"cannot write the run folder {out}: {e.strerror or e} ({where})") from None


def _run_locked(cfg, out, device, task, force, log) -> dict:
    writer = RunWriter(out)
    summary = _load_summary(writer, force, log)
    results = out / RESULTS
    if results.exists() and not h5_readable(results):
        log(f"{RESULTS} is unreadable: kept as {writer.set_aside(RESULTS, 'unreadable').name}; its stages are redone")
    ctx = RunContext(cfg, out, task, device, summary, writer, force, log)
    if not force:
        _check_settings(ctx)
    # Validated: from here on the folder may change.
    for p in writer.remove_stale_temps():
        log(f"removed {p.name}, left by an interrupted write")
    for p in (out / "checkpoints").glob("*.pending.pt") if (out / "checkpoints").is_dir() else ():
        p.unlink()
        log(f"removed {p.name}, left by an interrupted --force")
    summary.setdefault("models", {})
    summary.setdefault("timings_s", {})
    summary.setdefault("stages", {})
    verdicts = Verdicts(ctx)
    if force:  # stages run with other settings, and not rerun now, are dropped (config.yaml will say otherwise)
        for name, record in list(summary["stages"].items()):
            if name in STAGES and name not in cfg.stages and _differences(
                    record.get("settings"), stage_settings(cfg, STAGES[name])):
                log(f"{name}: earlier results were computed with other settings; no longer reported")
                _drop(ctx, name, stale=False)
    _settle(ctx, verdicts)
    summary["task"] = cfg.resolved_task() | {"dt_ms": task.dt_ms, "n_steps": task.n_steps}
    summary["versions"] = versions()
    # Results are bitwise reproducible for a given thread count (reductions are summed in another order with
    # more threads: the default LSNN scores 0.976 with one thread and 0.987 with two), so the count is recorded.
    summary["machine"] = {"torch_threads": torch.get_num_threads(), "device": str(device)}
    # config.yaml lists every stage the folder holds results of, not only those run now: a later
    # ``--stages fixedpoints`` must not make the folder look like another run (the sweep compares it)
    held = [s.name for s in ordered(set(cfg.stages) | (set(summary["stages"]) & set(STAGES)))]
    writer.text(CONFIG, dump_config(dataclasses.replace(cfg, stages=type(cfg.stages)(held))))
    writer.json(SUMMARY, summary)
    log(f"run {cfg.name}: task {task.name}, device {device}, writing {out}")
    for stage in ordered(cfg.stages):
        if not force and verdicts.problem(stage.name) is None:
            log(f"{stage.name}: done before, skipped (use --force to recompute)")
            continue
        _run_stage(ctx, stage, verdicts)
        _settle(ctx, verdicts)  # what read this stage's old results no longer holds
        writer.json(SUMMARY, summary)
    _settle(ctx, verdicts)
    writer.json(SUMMARY, summary)
    report.write_report(ctx)
    log(f"report: {out / 'report.md'}")
    return summary


def _run_stage(ctx: RunContext, stage: Stage, verdicts: Verdicts) -> None:
    if stage.name in ctx.summary["stages"]:  # forced: the old record goes now, its files when replaced
        _drop(ctx, stage.name, stale=False)
        ctx.writer.json(SUMMARY, ctx.summary)
    ctx.stage, ctx.pending = stage.name, {}
    ctx.writer.track()
    inputs = verdicts.current_inputs(stage)
    t0 = time.perf_counter()
    try:
        stage.run(ctx)
    finally:
        ctx.stage = None
    for model, path in ctx.pending.items():  # a forced stage's new checkpoints replace the old ones now
        path.replace(ctx.writer.checkpoint_path(model))
    ctx.pending = {}
    files = sorted(set(ctx.writer.written))
    ctx.summary["timings_s"][stage.name] = round(time.perf_counter() - t0, 2)
    ctx.summary["stages"][stage.name] = {
        "settings": stage_settings(ctx.cfg, stage),
        "inputs": inputs,
        "fingerprint": verdicts.fingerprint(stage, files),
        "files": [list(f) for f in files],
    }
