"""Stage ``compare``: every model of the run side by side on the same held-out trials.

* Similarity of their state trajectories by every method of ``fixedpoints.similarity`` (matrices, heat maps,
  an MDS embedding), with an untrained rate network of the trained one's size as a reference.
* The transferred LIF network on its own terms: the fixed points of its mean-field map (``spiking.meanfield``),
  checked against the simulated network (held memories, return after a perturbation).
* All models' trajectories in one PCA space: each model's own first three PCs, aligned to the rate network's by
  orthogonal Procrustes with a scale.
* Their dynamics: each model's fixed points (from the ``fixedpoints`` stage) linked saddle → attractor by
  ``fixedpoints.topology`` and reduced to Maheswaranathan et al.'s graph (attractors and index-1 saddles,
  ``fixedpoints.compare``): which models share the rate network's graph (the sweep's measure, for one run).

States that enter: the rate network's rates φ(x); the LIF network's filtered spike trains (its own synaptic filter,
double exponential τr = 2 ms, τd = the unit's τ, in spikes/s, what its readout reads); the LSNN's spikes through a
causal exponential filter of ``spike_filter_ms``; every other model's ``rates`` (FORCE: tanh x) or state.
LFADS is fit to recorded spikes, not driven by the task's inputs, so it has no states on these trials and is left
out (the summary says so).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import MDS

from fixedpoints import similarity, topology, topology_summary
from fixedpoints.similarity import HIGHER_IS_SIMILAR, METHODS
from ratenets.arrays import to_numpy
from ratenets.seeds import ANALYSIS_NOISE
from spiking.meanfield import mean_field_fixed_points, perturbation_return, validate_mean_field

from ..context import RunContext, RunError
from ..registry import Stage, register
from .fixedpoints import analysed_form, analysed_model, settled_memory_steps, stored_fixed_points

UNTRAINED = "untrained"
SKIPPED = {"lfads": "fit to recorded spikes, not driven by the task's inputs: no states on these trials"}


@dataclass(frozen=True)
class CompareSection:
    """``n_trials`` held-out trials shared by every model; ``methods`` of ``fixedpoints.similarity``;
    ``spike_filter_ms`` the LSNN's spike filter; ``untrained``: add an untrained rate network as a reference;
    ``meanfield_starts`` starts for the LIF mean field's fixed points (0: skip the mean field);
    ``topology_steps``, ``topology_epsilon``, ``match_tol``: ``fixedpoints.topology``'s ``max_steps``, ``epsilon``
    and ``match_tol`` for each model's saddle → attractor links (0 steps: skip; the sweep's defaults)."""

    n_trials: int = 32
    methods: tuple[str, ...] = METHODS
    spike_filter_ms: float = 20.0
    untrained: bool = True
    meanfield_starts: int = 64
    perturb_steps: int = 100
    topology_steps: int = 2000
    topology_epsilon: float = 0.01
    match_tol: float = 0.05

    def __post_init__(self):
        if not 2 <= self.n_trials <= 100_000:
            raise ValueError(f"n_trials must be in [2, 100000], got {self.n_trials}")
        object.__setattr__(self, "methods", tuple(self.methods))
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise ValueError(f"methods must be a non-empty list of {', '.join(METHODS)}, got {list(self.methods)}")
        if not (math.isfinite(self.spike_filter_ms) and self.spike_filter_ms > 0):
            raise ValueError(f"spike_filter_ms must be a finite number > 0, got {self.spike_filter_ms}")
        if self.meanfield_starts < 0 or self.perturb_steps < 1:
            raise ValueError("need meanfield_starts >= 0 and perturb_steps >= 1")
        if not 0 <= self.topology_steps <= 1_000_000:
            raise ValueError(f"topology_steps must be in [0, 1000000] (0: no topology), got {self.topology_steps}")
        for name in ("topology_epsilon", "match_tol"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {getattr(self, name)}")


def exponential_filter(spikes: torch.Tensor, tau_ms: float, dt_ms: float) -> torch.Tensor:
    """Causal filter ``r[t] = e^{−dt/τ} r[t−1] + (1 − e^{−dt/τ}) s[t]/dt`` of spike counts per step, in spikes/s."""
    decay = math.exp(-dt_ms / tau_ms)
    s = spikes.to(torch.float64) * (1000.0 / dt_ms)
    out = torch.empty_like(s)
    r = torch.zeros_like(s[:, 0])
    for t in range(s.shape[1]):
        r = decay * r + (1 - decay) * s[:, t]
        out[:, t] = r
    return out


@torch.no_grad()
def model_states(ctx: RunContext, name: str, inputs: torch.Tensor) -> tuple[np.ndarray, object]:
    """``[B,T,D]`` states of ``name`` on ``inputs`` (module docstring) and the model."""
    model = ctx.load_model(name)
    if name == "lif":
        rollout = model(inputs, generator=ctx.generator(ANALYSIS_NOISE, ctx.device))
        return to_numpy(rollout.states, np.float64), model
    if name == "lsnn":
        rollout = model(inputs)
        return to_numpy(exponential_filter(rollout.spikes, ctx.section.spike_filter_ms, ctx.task.dt_ms)), model
    rollout = model(inputs)
    states = rollout.rates if rollout.rates is not None else rollout.states
    return to_numpy(states, np.float64), model


def similarity_matrices(states: dict[str, np.ndarray], methods, log) -> dict:
    names = list(states)
    out = {}
    for method in methods:
        m = np.eye(len(names)) if HIGHER_IS_SIMILAR[method] else np.zeros((len(names), len(names)))
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                try:
                    m[i, j] = m[j, i] = similarity(states[names[i]], states[names[j]], method)
                except ValueError as err:  # e.g. a silent spiking network: no correlation is defined
                    m[i, j] = m[j, i] = np.nan
                    log(f"compare: {method} of {names[i]} and {names[j]} is undefined: {err}")
        out[method] = {"models": names, "matrix": [[None if np.isnan(v) else round(float(v), 6) for v in row]
                                                   for row in m],
                       "kind": "similarity (1 = same)" if HIGHER_IS_SIMILAR[method] else "distance (0 = same)"}
        log(f"compare: {method} done")
    return out


def heatmap_figure(sim: dict) -> Figure:
    methods = list(sim)
    fig = Figure(figsize=(4.2 * len(methods), 4.2))
    for k, method in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), k + 1)
        names, m = sim[method]["models"], np.asarray(sim[method]["matrix"], dtype=float)
        higher = HIGHER_IS_SIMILAR[method]
        im = ax.imshow(m, cmap="viridis" if higher else "viridis_r", vmin=0, vmax=1 if higher else None)
        for i in range(len(names)):
            for j in range(len(names)):
                bright = (m[i, j] > 0.6) if higher else (m[i, j] < 0.4 * np.nanmax(m))
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7, color="k" if bright else "w")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_title(f"{method}: {sim[method]['kind']}", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("similarity of state trajectories on the same held-out trials (dimensionless)", fontsize=10)
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.25, wspace=0.5)
    return fig


def _mds(seed: int) -> MDS:
    """Metric MDS of a precomputed distance matrix (scikit-learn renamed the arguments in 1.8)."""
    if "metric_mds" in inspect.signature(MDS).parameters:
        return MDS(n_components=2, metric="precomputed", init="classical_mds", random_state=seed)
    return MDS(n_components=2, dissimilarity="precomputed", random_state=seed, n_init=4, normalized_stress="auto")


def mds_figure(sim: dict, seed: int) -> Figure:
    methods = list(sim)
    fig = Figure(figsize=(3.6 * len(methods), 3.6))
    for k, method in enumerate(methods):
        ax = fig.add_subplot(1, len(methods), k + 1)
        names, m = sim[method]["models"], np.asarray(sim[method]["matrix"], dtype=float)
        dist = 1.0 - m if HIGHER_IS_SIMILAR[method] else m.copy()
        np.fill_diagonal(dist, 0.0)
        if not np.isfinite(dist).all():
            ax.set_title(f"{method}: undefined for some pair (see the log)", fontsize=9)
            continue
        xy = _mds(seed).fit_transform(np.clip(dist, 0, None))
        ax.scatter(xy[:, 0], xy[:, 1], c=range(len(names)), cmap="tab10", vmin=0, vmax=9)
        for (x, y), name in zip(xy, names):
            ax.annotate(name, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"MDS of {method} distance", fontsize=9)
        ax.set_xlabel("MDS 1 (distance units)", fontsize=8)
        ax.set_ylabel("MDS 2", fontsize=8)
        ax.margins(0.25)
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.18, wspace=0.4)
    return fig


def aligned_pcs(states: dict[str, np.ndarray], reference: str, n_components: int = 3):
    """Each model's own first PCs, aligned to ``reference``'s by orthogonal Procrustes with a scale (fit on the
    shared trials); returns ``{name: (scores [B,T,k], transform)}`` with ``transform(x [M,D]) -> [M,k]``."""
    ref = states[reference]
    k = min(n_components, *(s.shape[-1] for s in states.values()))
    ref_pca = PCA(k).fit(ref.reshape(-1, ref.shape[-1]))
    target = ref_pca.transform(ref.reshape(-1, ref.shape[-1]))
    out = {}
    for name, s in states.items():
        flat = s.reshape(-1, s.shape[-1])
        pca = PCA(k).fit(flat)
        z = pca.transform(flat)
        u, sv, vt = np.linalg.svd(z.T @ target)
        rot = u @ vt
        scale = sv.sum() / max((z ** 2).sum(), 1e-300)

        def transform(x, pca=pca, rot=rot, scale=scale):
            return scale * pca.transform(np.asarray(x, dtype=np.float64)) @ rot

        out[name] = (transform(flat).reshape(s.shape[0], s.shape[1], k), transform)
    return out


def trajectories_figure(aligned: dict, points: dict, n_trials: int = 4) -> Figure:
    names = list(aligned)
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig = Figure(figsize=(3.8 * cols, 3.5 * rows))
    for k, name in enumerate(names):
        ax = fig.add_subplot(rows, cols, k + 1)
        z = aligned[name][0]
        for trial in z[:n_trials]:
            ax.plot(trial[:, 0], trial[:, 1], lw=0.6, alpha=0.7)
        if name in points:
            stable, pts = points[name]
            ax.scatter(pts[stable, 0], pts[stable, 1], c="k", s=18, label="stable")
            ax.scatter(pts[~stable, 0], pts[~stable, 1], c="r", marker="x", s=18, label="unstable")
            ax.legend(fontsize=7, loc="best")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("PC 1 (rate-net units)", fontsize=8)
        ax.set_ylabel("PC 2 (rate-net units)", fontsize=8)
    fig.suptitle("trajectories in the rate network's PC space (each model's PCs aligned by Procrustes)", fontsize=10)
    fig.subplots_adjust(hspace=0.45, wspace=0.35)
    return fig


def lif_mean_field(ctx: RunContext, lif, batch, lif_states: np.ndarray) -> tuple[dict, object]:
    """Fixed points of the LIF network's mean field at zero input (Newton from ``meanfield_starts`` simulated
    states), checked against the simulation (``spiking.meanfield``)."""
    sec = ctx.section
    mf = lif.mean_field()
    rates = torch.as_tensor(lif_states)
    flat = rates.reshape(-1, rates.shape[-1])
    rows = torch.randperm(len(flat), generator=torch.Generator().manual_seed(ctx.cfg.seed))[:sec.meanfield_starts]
    fps = mean_field_fixed_points(mf, flat[rows])
    settled = settled_memory_steps(batch).cpu()
    check = validate_mean_field(fps, rates, settled, batch.targets.cpu().to(torch.float64), mf.readout)
    check.update(perturbation_return(lif, mf, fps, sec.perturb_steps,
                                     generator=ctx.generator(ANALYSIS_NOISE + 1)))
    entry = {"n": len(fps), "by_index": fps.by_index(),
             "max_residual_hz": float(fps.residual.max()) if len(fps) else None, "sigma_mv": mf.sigma_mv,
             "validation": check, "analysed": "LIF mean field (Siegert rate with refractory period, "
                                              "spiking/meanfield.py), Newton from simulated states"}
    return entry, fps


def stored_fixed_points_of(ctx: RunContext) -> dict:
    """``{model: FixedPoints}`` for every model whose fixed points (at least one) the ``fixedpoints`` stage stored
    in ``results.h5`` (the LIF network has none of its own: it shares the rate network's map)."""
    out = {}
    for name, entry in ctx.summary.get("fixed_points", {}).items():
        fps = None if "same_map_as" in entry else stored_fixed_points(ctx.h5, name, ctx.task.n_inputs)
        if fps is not None and len(fps):
            out[name] = fps
    return out


def model_topologies(ctx: RunContext, fixed: dict, models: dict) -> dict:
    """``{model: topology_summary}`` for every model of ``fixed`` (``stored_fixed_points_of``), each with
    ``same_graph_as_rate`` (its saddle → attractor graph isomorphic to the rate network's) when the rate network
    has one. ``models``: those already loaded (others are loaded from their checkpoints)."""
    sec = ctx.section
    out = {}
    for name, fps in fixed.items():
        model, _ = analysed_form(models[name]) if name in models else analysed_model(ctx, name)
        topo = topology(model, fps, epsilon=sec.topology_epsilon, max_steps=sec.topology_steps,
                        match_tol=sec.match_tol)
        out[name] = topology_summary(fps, topo)
        ctx.log(f"compare: {name}: saddle → attractor graph: {out[name]['graph']}")
    if "rate" in out:
        for entry in out.values():
            entry["same_graph_as_rate"] = entry["graph_class"] == out["rate"]["graph_class"]
    return out


def points_in_state_space(models: dict, fixed: dict, names) -> dict:
    """``{name: (stable [K], points [K,D])}`` of the models ``names`` among ``fixed``, in the space of the states
    compared here (a model with ``rates(x)``, the rate network, maps its points through it)."""
    out = {}
    for name in (n for n in names if n in fixed):
        xstar, model = fixed[name].xstar, models[name]
        with torch.no_grad():
            if hasattr(model, "rates"):
                xstar = model.rates(xstar.to(next(model.parameters()).device, torch.float32))
        out[name] = (to_numpy(fixed[name].stable).astype(bool), to_numpy(xstar, np.float64))
    return out


def run(ctx: RunContext) -> None:
    sec = ctx.section
    names = [n for n in ctx.summary["models"] if n not in SKIPPED]
    if len(names) < 1:
        raise RunError("compare: no model of this run has results to compare; run a model stage first")
    batch = ctx.task.held_out().sample(sec.n_trials, ctx.generator()).to(ctx.device)
    states, models = {}, {}
    for name in names:
        states[name], models[name] = model_states(ctx, name, batch.inputs)
    if sec.untrained and "rate" in models:
        rate = models["rate"]
        fresh = type(rate)(rate.cfg, seed=ctx.cfg.seed + 1).to(ctx.device).eval()
        with torch.no_grad():
            states[UNTRAINED] = to_numpy(fresh(batch.inputs).rates, np.float64)
    ctx.summary["similarity"] = similarity_matrices(states, sec.methods, ctx.log)
    ctx.summary["compare"] = {"n_trials": sec.n_trials, "skipped": {n: SKIPPED[n] for n in ctx.summary["models"]
                                                                     if n in SKIPPED},
                              "states": "rate: φ(x); lif: own filtered spikes (Hz); lsnn: spikes filtered "
                                        f"exp({sec.spike_filter_ms:g} ms) (Hz); others: rates or states"}
    ctx.writer.figure("similarity_heatmaps", heatmap_figure(ctx.summary["similarity"]))
    if len(states) >= 3:
        ctx.writer.figure("similarity_mds", mds_figure(ctx.summary["similarity"], ctx.cfg.seed))
    fixed = stored_fixed_points_of(ctx)
    if sec.topology_steps:
        ctx.summary["compare"]["topology"] = model_topologies(ctx, fixed, models)
    points = {}
    if "lif" in models and sec.meanfield_starts:
        entry, fps = lif_mean_field(ctx, models["lif"], batch.to("cpu"), states["lif"])
        ctx.summary["compare"]["lif_mean_field"] = entry
        points["lif"] = (to_numpy(fps.stable).astype(bool), to_numpy(fps.xstar, np.float64))
        ctx.log(f"compare: LIF mean field: {len(fps)} points, by index {fps.by_index()}, validation "
                f"{entry['validation']}")
    own_space = [n for n in states if n not in ("lif", "lsnn", "force", UNTRAINED)]  # points in these states' space
    points.update(points_in_state_space(models, fixed, own_space))
    if "rate" in states:
        aligned = aligned_pcs(states, "rate")
        projected = {n: (st, aligned[n][1](x)) for n, (st, x) in points.items() if len(x)}
        ctx.writer.figure("compare_trajectories", trajectories_figure(aligned, projected))


def _num(x, digits=2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "–"


def report(ctx: RunContext) -> list[str]:
    sim = ctx.summary.get("similarity", {})
    lines = ["## Comparison", "", "Every model on the same held-out trials "
             f"({ctx.summary.get('compare', {}).get('n_trials', '–')}); states: "
             f"{ctx.summary.get('compare', {}).get('states', '')}.", ""]
    for method, entry in sim.items():
        names, m = entry["models"], entry["matrix"]
        lines += [f"**{method}** ({entry['kind']})", "", "| | " + " | ".join(names) + " |",
                  "| --- " * (len(names) + 1) + "|"]
        lines += [f"| {a} | " + " | ".join(_num(v) for v in row) + " |" for a, row in zip(names, m)]
        lines.append("")
    mf = ctx.summary.get("compare", {}).get("lif_mean_field")
    if mf:
        v = mf.get("validation", {})
        lines += [f"LIF mean field (σ = {_num(mf.get('sigma_mv'))} mV membrane noise): {mf.get('n', 0)} points, "
                  f"by index {mf.get('by_index')}; {v.get('n_stable', 0)} stable, holding "
                  f"{v.get('n_memories_held', 0)} distinct memories. Simulated LIF states during held memories: "
                  f"{_num(v.get('fraction_nearest_matching_point'))} of {v.get('n_settled_steps', 0)} settled "
                  "steps lie nearest the stable point holding the same bits (median distance "
                  f"{_num(v.get('median_distance_over_spacing'))}× the spacing between points); after a "
                  f"{_num(v.get('kick_hz'), 0)} Hz kick the network returned to "
                  f"{_num(v.get('fraction_returned'))} of the stable points.", ""]
    topo = ctx.summary.get("compare", {}).get("topology") or {}
    if topo:
        lines += ["**Dynamics**: each model's saddle → attractor graph (attractors and index-1 saddles, each saddle "
                  "linked to the attractors its unstable directions reach; Maheswaranathan et al. 2019).", "",
                  "| model | stable points | index-1 saddles | graph | same graph as rate |",
                  "| --- | --- | --- | --- | --- |"]
        for name, t in topo.items():
            same = {True: "yes", False: "no"}.get(t.get("same_graph_as_rate"), "–")
            lines.append(f"| {name} | {t.get('n_stable', '–')} | {t.get('n_index1', '–')} | {t.get('graph', '–')} "
                         f"| {same} |")
        lines.append("")
    for name, why in ctx.summary.get("compare", {}).get("skipped", {}).items():
        lines.append(f"{name}: not compared ({why}).")
    return lines


STAGE = register(Stage("compare", order=50, run=run, section=CompareSection,
                       needs=("rate", "transfer", "lsnn", "baselines", "force", "fixedpoints", "lfads"),
                       summary_keys=("similarity", "compare"), report=report,
                       description="every model compared on the same trials: similarity, LIF mean field"))
