"""``report.md``: the page a scientist reads first: what ran, how well, each stage's own lines, the figures.
Built from the summary's stages that still hold (the runner has dropped the others)."""

from __future__ import annotations

from .context import RunContext
from .outputs import REPORT
from .registry import STAGES, ordered


def _fmt(x, digits=3):
    if isinstance(x, bool) or x is None:
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _model_notes(m: dict) -> str:
    notes = []
    if "n_units" in m:
        notes.append(f"{m['n_units']} units")
    if "train_steps" in m:
        notes.append(f"{m['train_steps']} updates")
    t = m.get("tau_ms")
    if isinstance(t, dict) and all(isinstance(t.get(k), (int, float)) for k in ("min", "median", "max")):
        notes.append(f"τ {t['min']:.0f}–{t['max']:.0f} ms (median {t['median']:.0f})")
    if isinstance(m.get("mean_rate_hz"), (int, float)):
        notes.append(f"mean rate {m['mean_rate_hz']:.1f} Hz")
    if isinstance(m.get("scale_factor"), (int, float)):
        notes.append(f"λ = {m['scale_factor']:g}")
    return ", ".join(notes)


def build_report(ctx: RunContext) -> str:
    s, cfg, task = ctx.summary, ctx.cfg, ctx.task
    done = [st for st in ordered(n for n in s.get("stages", {}) if n in STAGES)]
    lines = [
        f"# Run `{cfg.name}`: {task.name}",
        "",
        f"Task `{task.name}` ({task.n_steps} steps of {task.dt_ms:g} ms, {task.n_inputs} inputs, "
        f"{task.n_outputs} outputs), seed {cfg.seed}, device `{ctx.device}`.",
        f"Stages done: {', '.join(st.name for st in done) or 'none'}. "
        "Scores use the task's published criterion on held-out trials that chose nothing.",
        "",
        "## Models",
        "",
        "| model | score | trials | notes |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in s.get("models", {}).items():
        lines.append(f"| {name} | {_fmt(m.get('score'))} | {m.get('n_trials', '–')} | {_model_notes(m)} |")
    for st in done:
        if st.report is not None:
            lines += [""] + st.report(ctx)
    timings = s.get("timings_s", {})
    lines += ["", "## Time per stage", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {st.name} | {_fmt(timings.get(st.name), 1)} |" for st in done]
    figures = [f[1] for st in done for f in s["stages"][st.name].get("files", []) if f[0] == "figure"]
    if figures:
        lines += ["", "## Figures", ""]
        for name in figures:
            lines += [f"### {name.replace('_', ' ')}", "", f"![{name}](figures/{name}.png)", ""]
    lines += ["", "Files: `config.yaml` (as run), `summary.json`, `results.h5`, `checkpoints/`.", ""]
    return "\n".join(lines)


def write_report(ctx: RunContext) -> None:
    ctx.writer.text(REPORT, build_report(ctx))
