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


def _similarity_to_rate(s: dict, name: str) -> str:
    """``CKA x / DSA y`` of ``name`` against the rate network (the compare stage's matrices), or –."""
    parts = []
    for method in ("cka", "dsa"):
        entry = s.get("similarity", {}).get(method)
        if isinstance(entry, dict) and "rate" in entry.get("models", []) and name in entry["models"]:
            value = entry["matrix"][entry["models"].index(name)][entry["models"].index("rate")]
            parts.append(f"{method.upper()} {value:.2f}" if isinstance(value, float) else f"{method.upper()} –")
    return " / ".join(parts) or "–"


def overview_table(s: dict) -> list[str]:
    """The table report.md opens with: one row per model."""
    lines = ["| model | score | firing rate (Hz) | stable points | saddles | similarity to the rate net "
             "(CKA: 1 = same / DSA: 0 = same) |", "| --- | --- | --- | --- | --- | --- |"]
    fixed = s.get("fixed_points", {})
    mean_field = s.get("compare", {}).get("lif_mean_field")
    rows = list(s.get("models", {})) + (["untrained"] if "untrained" in s.get("similarity", {}).get("cka", {})
                                        .get("models", []) else [])
    for name in rows:
        m = s.get("models", {}).get(name, {})
        fp = mean_field if name == "lif" and mean_field else fixed.get(name, {})
        by_index = fp.get("by_index") or {}
        stable = by_index.get("0", by_index.get(0)) if by_index or fp.get("n") == 0 else None
        saddles = sum(v for k, v in by_index.items() if int(k) > 0) if by_index or fp.get("n") == 0 else None
        if name == "lif" and mean_field:
            name_shown = "lif (mean field)"
        else:
            name_shown = name
        rate = m.get("mean_rate_hz")
        lines.append(f"| {name_shown} | {_fmt(m.get('score'))} | {_fmt(rate, 1) if isinstance(rate, float) else '–'} "
                     f"| {_fmt(stable if stable is not None else 0) if fp else '–'} "
                     f"| {_fmt(saddles) if saddles is not None else '–'} | "
                     f"{'(itself)' if name == 'rate' else _similarity_to_rate(s, name)} |")
    return lines


def build_report(ctx: RunContext) -> str:
    s, cfg, task = ctx.summary, ctx.cfg, ctx.task
    done = [st for st in ordered(n for n in s.get("stages", {}) if n in STAGES)]
    lines = [
        f"# Run `{cfg.name}`: {task.name}",
        "",
        *overview_table(s),
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
