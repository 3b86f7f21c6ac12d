"""``report.md``: the page a scientist reads first: what ran, how well, and the figures."""

from __future__ import annotations

from .pipeline import RunContext
from .results import atomic_write_text


def _fmt(x, digits=3):
    return "–" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def write_report(ctx: RunContext) -> None:
    s, cfg = ctx.summary, ctx.cfg
    lines = [
        f"# Run `{cfg.name}`: {ctx.task.name}",
        "",
        f"Task `{ctx.task.name}` ({ctx.task.n_steps} steps of {ctx.task.dt_ms:g} ms, "
        f"{ctx.task.n_inputs} inputs, {ctx.task.n_outputs} outputs), seed {cfg.seed}, device `{ctx.device}`.",
        "Scores use the task's published criterion on held-out trials.",
        "",
        "## Models",
        "",
        "| model | score | trials | notes |",
        "| --- | --- | --- | --- |",
    ]
    for name, m in s.get("models", {}).items():
        notes = []
        if "n_units" in m:
            notes.append(f"{m['n_units']} units")
        if "train_steps" in m:
            notes.append(f"{m['train_steps']} updates")
        if "tau_ms" in m:
            t = m["tau_ms"]
            notes.append(f"τ {t['min']:.0f}–{t['max']:.0f} ms (median {t['median']:.0f})")
        if "mean_rate_hz" in m:
            notes.append(f"mean rate {m['mean_rate_hz']:.1f} Hz")
        lines.append(f"| {name} | {_fmt(m.get('score'))} | {m.get('n_trials', '–')} | {', '.join(notes)} |")
    if "transfer" in s:
        t = s["transfer"]
        lines += ["", "## Rate → LIF transfer", "", f"Best scaling factor {t['scale']:g}.", ""]
        lines += ["| scale | LIF score |", "| --- | --- |"] + [f"| {a:g} | {b:.3f} |" for a, b in t["scan"]]
    if s.get("fixed_points"):
        lines += ["", "## Fixed points", "", "At zero input, started from held-out states.", "",
                  "| model | points | by index (0 = stable) | max q | analysed through |",
                  "| --- | --- | --- | --- | --- |"]
        for name, fp in s["fixed_points"].items():
            idx = ", ".join(f"{k}: {v}" for k, v in sorted(fp["by_index"].items(), key=lambda kv: int(kv[0])))
            max_q = f"{fp['max_q']:.1e}" if fp["n"] else "–"
            lines.append(f"| {name} | {fp['n']} | {idx or '–'} | {max_q} | {fp.get('analysed', '')} |")
        check = s["fixed_points"].get("lif", {}).get("memory_check")
        if check and "fraction_at_corresponding_point" in check:
            lines += ["", f"LIF states during held memories ({check['n_settled_steps']} settled steps): "
                      f"{check['fraction_at_corresponding_point']:.0%} lie nearest the stable point of the rate map "
                      "that holds the same bits (median distance "
                      f"{check['median_distance_over_point_spacing']:.2f}× the median spacing between points)."]
    lines += ["", "## Time per stage", "", "| stage | seconds |", "| --- | --- |"]
    lines += [f"| {k} | {v:.1f} |" for k, v in s.get("timings_s", {}).items()]
    figures = sorted((ctx.out / "figures").glob("*.png")) if (ctx.out / "figures").exists() else []
    stage_order = {"rate": 0, "transfer": 1, "lif": 1, "lsnn": 2, "fixed": 3}
    figures.sort(key=lambda f: stage_order.get(f.stem.split("_")[0], 4))  # in the order the stages ran
    if figures:
        lines += ["", "## Figures", ""]
        for f in figures:
            lines += [f"### {f.stem.replace('_', ' ')}", "", f"![{f.stem}](figures/{f.name})", ""]
    lines += ["", "Files: `config.yaml` (as run), `summary.json`, `results.h5`, `checkpoints/`.", ""]
    atomic_write_text(ctx.out / "report.md", "\n".join(lines))
