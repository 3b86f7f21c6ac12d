"""Aggregation over a sweep's finished networks (Maheswaranathan et al. 2019, "Universality and individuality
in neural dynamics across large populations of recurrent networks"):

- geometry: every network driven by the SAME held-out trials; SVCCA (and CKA) distance matrices between their
  state trajectories (``fixedpoints.similarity``; distance = 1 - similarity), an MDS embedding coloured by
  architecture, distances within an architecture against between architectures;
- topology: each network's fixed points (its run's ``fixedpoints`` stage), stable points and saddles by index,
  and the saddle -> attractor graph (``fixedpoints.topology``) reduced to an isomorphism class;
- per-architecture scores.

Writes ``sweep_summary.json``, ``sweep_report.md`` and ``figures/`` in the sweep folder. What each network
contributes (its states on the common trials, its topology) is cached under ``aggregate_cache/`` keyed by the
fingerprints of its run's stages, and every pairwise distance is cached by the pair's keys, so aggregating
again after adding networks computes only what is new.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from fixedpoints.compare import topology_summary
from ratenets import load_model
from ratenets.arrays import to_numpy
from ratenets.atomic import atomic_write, atomic_write_text
from ratenets.plots import save_figure
from ratenets.seeds import ANALYSIS_NOISE, HELD_OUT, stream

from ..outputs import OutputError, _jsonable, read_json
from ..stages.fixedpoints import analysed_form, stored_fixed_points
from .config import ARCHITECTURES, AggregateSection, Network, SweepConfig

CACHE = "aggregate_cache"
SUMMARY = "sweep_summary.json"
REPORT = "sweep_report.md"
PAIRS = "pairs.json"
COLOURS = {"rate_lif": "tab:red", "lsnn": "tab:purple", "vanilla": "tab:grey", "gru": "tab:blue",
           "lstm": "tab:green", "ugrnn": "tab:orange"}
SIMILARITY_METHODS = ("svcca", "cka")
FEATURES_VERSION = 2  # raised when what is cached per network changes


# --- one network --------------------------------------------------------------------------------------------

def _json_file(path: Path, data) -> None:
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2, sort_keys=True) + "\n")


def network_key(run: Path, agg: AggregateSection) -> str:
    """What a network's cached features depend on: its stages' recorded fingerprints and the settings."""
    summary = read_json(run / "summary.json")
    stages = {k: v.get("fingerprint") for k, v in summary.get("stages", {}).items() if isinstance(v, dict)}
    blob = json.dumps({"version": FEATURES_VERSION, "stages": stages, "aggregate": {k: getattr(agg, k) for k in (
        "trials", "seed", "topology_steps", "topology_epsilon", "match_tol")}}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def common_trials(net: Network, agg: AggregateSection):
    """The held-out trials every network of the task sees (one stream, independent of the networks' seeds)."""
    task = net.config.make_task()
    return task, task.held_out().sample(agg.trials, stream(agg.seed, HELD_OUT))


@torch.no_grad()
def network_states(run: Path, net: Network, agg: AggregateSection) -> np.ndarray:
    """``[trials, steps, D]``: the network's rates (rate/LIF networks, filtered spikes of an LSNN) or states
    (the discrete RNNs; an LSTM's ``[h, c]``) on the common held-out trials."""
    model = load_model(run / "checkpoints" / f"{net.model}.pt").eval()
    _, batch = common_trials(net, agg)
    if net.architecture == "rate_lif":
        rollout = model(batch.inputs, generator=stream(agg.seed, ANALYSIS_NOISE))
    else:
        rollout = model(batch.inputs)
    states = rollout.rates if rollout.rates is not None else rollout.states
    return to_numpy(states).astype(np.float32)


def _fixed_points(run: Path, net: Network):
    """The run's fixed points of the network's analysed model (``stored_fixed_points``) and the smooth model
    they belong to."""
    name = net.fixed_point_model
    fps = stored_fixed_points(run / "results.h5", name, net.config.make_task().n_inputs)
    if fps is None:
        raise OutputError(f"{run / 'results.h5'} holds no fixed points of {name}")
    model, _ = analysed_form(load_model(run / "checkpoints" / f"{name}.pt").eval())
    return fps, model


def network_topology(run: Path, net: Network, agg: AggregateSection) -> dict:
    from fixedpoints import topology

    fps, model = _fixed_points(run, net)
    topo = topology(model, fps, epsilon=agg.topology_epsilon, max_steps=agg.topology_steps,
                    match_tol=agg.match_tol)
    return topology_summary(fps, topo)


def network_features(folder: Path, net: Network, agg: AggregateSection, log=print) -> tuple[str, dict, np.ndarray]:
    """``(key, facts, states)`` of a finished network, from the cache when its key still holds."""
    run = folder / net.name
    key = network_key(run, agg)
    cache = folder / CACHE
    meta_path, states_path = cache / f"{net.name}.json", cache / f"{net.name}.npy"
    if meta_path.exists() and states_path.exists():
        try:
            meta = read_json(meta_path)
            if meta.get("key") == key:
                return key, meta["facts"], np.load(states_path, allow_pickle=False)
        except (OutputError, OSError, ValueError, KeyError):
            pass
    t0 = time.perf_counter()
    states = network_states(run, net, agg)
    facts = {"topology": network_topology(run, net, agg)}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save given a path would add ".npy" to the temporary name
            np.save(f, states, allow_pickle=False)

    atomic_write(states_path, write)
    _json_file(meta_path, {"key": key, "facts": facts})
    log(f"aggregate: {net.name}: states {list(states.shape)}, {facts['topology']['n_stable']} stable points, "
        f"graph {facts['topology']['graph_class']} ({time.perf_counter() - t0:.1f} s)")
    return key, facts, states


# --- the whole sweep ----------------------------------------------------------------------------------------

def _distance(method: str, value: float) -> float:
    return 1.0 - value if method in SIMILARITY_METHODS else value


def distance_matrices(names, keys, states, methods, agg, cache_path: Path, log=print) -> dict:
    """``method -> [n, n]`` distances (0 on the diagonal); pairs already computed are read from the cache,
    which is written again every minute while new pairs are computed (a killed aggregation keeps them). SVCCA
    reduces each network once (``svcca_basis``), so a pair costs one small product, not two PCAs."""
    from fixedpoints.similarity import similarity, svcca_basis, svcca_from_bases

    try:
        cache = read_json(cache_path) if cache_path.exists() else {}
    except OutputError:
        cache = {}
    n, new, saved = len(names), 0, time.monotonic()
    bases: dict[int, np.ndarray] = {}

    def svcca_distance(i: int, j: int) -> float:
        for k in (i, j):
            if k not in bases:
                bases[k] = svcca_basis(states[k], agg.svcca_keep, names[k])
        return _distance("svcca", svcca_from_bases(bases[i], bases[j]))

    out = {}
    for method in methods:
        tag = f"{method}@{agg.svcca_keep}" if method == "svcca" else method
        m = np.zeros((n, n))
        for i in range(n):
            for j in range(i + 1, n):
                pair = f"{tag}|" + "|".join(sorted((keys[i], keys[j])))
                if pair not in cache:
                    cache[pair] = (svcca_distance(i, j) if method == "svcca" else
                                   _distance(method, float(similarity(states[i], states[j], method))))
                    new += 1
                    if time.monotonic() - saved > 60:
                        _json_file(cache_path, cache)
                        saved = time.monotonic()
                m[i, j] = m[j, i] = cache[pair]
        out[method] = m
    if new:
        _json_file(cache_path, cache)
        log(f"aggregate: {new} new pairwise distances ({len(cache)} cached)")
    return out


def within_between(d: np.ndarray, archs: list[str]) -> dict:
    """Distances between networks of the same architecture against different ones (mean, std, count), and the
    fraction of networks whose nearest other network has the same architecture."""
    n = len(archs)
    within = [d[i, j] for i in range(n) for j in range(i + 1, n) if archs[i] == archs[j]]
    between = [d[i, j] for i in range(n) for j in range(i + 1, n) if archs[i] != archs[j]]

    def stats(x):
        return {"mean": float(np.mean(x)), "std": float(np.std(x)), "n": len(x)} if x else None

    nn_same = []
    for i in range(n):
        others = [j for j in range(n) if j != i]
        if others and archs.count(archs[i]) > 1:  # only where a neighbour of its own architecture exists
            j = min(others, key=lambda k: d[i, k])
            nn_same.append(archs[j] == archs[i])
    per_arch = {}
    for a in dict.fromkeys(archs):
        idx = [i for i in range(n) if archs[i] == a]
        w = [d[i, j] for i in idx for j in idx if i < j]
        b = [d[i, j] for i in idx for j in range(n) if archs[j] != a]
        per_arch[a] = {"within": stats(w), "to_others": stats(b)}
    return {"within": stats(within), "between": stats(between),
            "nearest_neighbour_same_architecture": float(np.mean(nn_same)) if nn_same else None,
            "per_architecture": per_arch}


def mds_embedding(d: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.manifold import MDS

    if len(d) < 3:
        return np.zeros((len(d), 2))
    mds = MDS(n_components=2, metric="precomputed", init="classical_mds", n_init=1, random_state=seed,
              normalized_stress="auto")
    return mds.fit_transform(d)


def mds_figure(xy: np.ndarray, archs: list[str], names: list[str], title: str) -> Figure:
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.add_subplot(1, 1, 1)
    for a in dict.fromkeys(archs):
        idx = [i for i, x in enumerate(archs) if x == a]
        ax.scatter(xy[idx, 0], xy[idx, 1], color=COLOURS.get(a), label=a, s=36, edgecolor="k", linewidth=0.4)
    ax.legend(fontsize=8, frameon=False)
    ax.set_xlabel("MDS 1")
    ax.set_ylabel("MDS 2")
    ax.set_title(title, fontsize=10)
    return fig


def matrix_figure(d: np.ndarray, names: list[str], title: str) -> Figure:
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(d, cmap="viridis")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return fig


def _expected_attractors(net: Network):
    n_bits = getattr(net.config.make_task(), "n_bits", None)
    return 2 ** n_bits if net.task == "flipflop" and isinstance(n_bits, int) else None


def aggregate_sweep(folder: Path, sweep: SweepConfig, networks: list[Network], state: dict, log=print,
                    methods=SIMILARITY_METHODS) -> dict:
    """Aggregate the finished networks of ``state`` (``pipeline.sweep.driver``); return the sweep summary."""
    t0 = time.perf_counter()
    agg = sweep.aggregate
    entries = state["networks"]
    done = [n for n in networks if entries.get(n.name, {}).get("status") == "done"]
    summary = {"name": sweep.name, "n_networks": len(networks), "n_done": len(done),
               "failed": {n: e.get("error") for n, e in entries.items() if e.get("status") == "failed"},
               "not_run": sorted(n for n, e in entries.items() if e.get("status") not in ("done", "failed")),
               "networks": {}, "geometry": {}, "architectures": {}}
    feats = {}
    for net in done:
        try:
            feats[net.name] = network_features(folder, net, agg, log)
        except (OSError, KeyError, ValueError, RuntimeError, OutputError) as e:
            log(f"aggregate: {net.name}: left out ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
            summary["failed"][net.name] = f"aggregation: {e}"
    for net in networks:
        e = entries.get(net.name, {})
        row = {**net.axes(), "model": net.model, "status": e.get("status"), "score": e.get("score"),
               "attempts": e.get("attempts")}
        if net.name in feats:
            row["topology"] = feats[net.name][1]["topology"]
            row["expected_attractors"] = _expected_attractors(net)
        summary["networks"][net.name] = row
    figures = folder / "figures"
    by_task: dict[str, list[Network]] = {}
    for net in done:
        if net.name in feats:
            by_task.setdefault(net.task, []).append(net)
    for task, nets in by_task.items():
        names = [n.name for n in nets]
        archs = [n.architecture for n in nets]
        d = distance_matrices(names, [feats[x][0] for x in names], [feats[x][2] for x in names], methods, agg,
                              folder / CACHE / PAIRS, log)
        geo = {"networks": names, "architectures": archs}
        suffix = "" if len(by_task) == 1 else f"_{task}"
        for method, m in d.items():
            xy = mds_embedding(m, agg.seed)
            geo[method] = {"matrix": m.round(6).tolist(), "mds": xy.round(6).tolist(), **within_between(m, archs)}
            save_figure(matrix_figure(m, names, f"{method.upper()} distance ({task})"),
                        figures / f"{method}_distance{suffix}.png")
            save_figure(mds_figure(xy, archs, names, f"MDS of {method.upper()} distances ({task})"),
                        figures / f"mds_{method}{suffix}.png")
        summary["geometry"][task] = geo
    summary["architectures"] = _per_architecture(networks, summary["networks"])
    summary["graph_classes"] = _class_names(summary["networks"])
    summary["aggregate_seconds"] = round(time.perf_counter() - t0, 2)
    _json_file(folder / SUMMARY, summary)
    atomic_write_text(folder / REPORT, "\n".join(report_lines(summary)) + "\n")
    log(f"aggregate: {len(feats)} networks compared; {folder / REPORT}")
    return summary


def _class_names(rows: dict) -> dict:
    """Short names for the graph classes, most frequent first: hash -> ``G1``, ``G2``..."""
    counts: dict[str, int] = {}
    for r in rows.values():
        c = r.get("topology", {}).get("graph_class")
        if c:
            counts[c] = counts.get(c, 0) + 1
    ordered = sorted(counts, key=lambda c: (-counts[c], c))
    described = {r["topology"]["graph_class"]: r["topology"].get("graph") for r in rows.values() if "topology" in r}
    return {c: {"name": f"G{i + 1}", "count": counts[c], "graph": described.get(c)} for i, c in enumerate(ordered)}


def _per_architecture(networks, rows: dict) -> dict:
    out = {}
    names = _class_names(rows)
    for arch in dict.fromkeys(n.architecture for n in networks):
        mine = [r for r in rows.values() if r["architecture"] == arch]
        scores = [r["score"] for r in mine if isinstance(r.get("score"), (int, float))]
        topo = [r for r in mine if "topology" in r]
        expected = [r for r in topo if r.get("expected_attractors")]
        classes: dict[str, int] = {}
        for r in topo:
            label = names[r["topology"]["graph_class"]]["name"]
            classes[label] = classes.get(label, 0) + 1
        out[arch] = {
            "n": len(mine), "done": sum(r["status"] == "done" for r in mine),
            "failed": sum(r["status"] == "failed" for r in mine),
            "score_mean": float(np.mean(scores)) if scores else None,
            "score_min": float(np.min(scores)) if scores else None,
            "score_max": float(np.max(scores)) if scores else None,
            "fraction_expected_stable_points": (sum(r["topology"]["n_stable"] == r["expected_attractors"]
                                                    for r in expected) / len(expected)) if expected else None,
            "stable_points": sorted(r["topology"]["n_stable"] for r in topo),
            "graph_classes": dict(sorted(classes.items())),
        }
    return out


def _fmt(x, spec=".3f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) and math.isfinite(x) else "–"


def report_lines(s: dict) -> list[str]:
    lines = [f"# Sweep {s['name']}", "",
             f"{s['n_done']} of {s['n_networks']} networks finished, {len(s['failed'])} failed, "
             f"{len(s['not_run'])} not run.", "", "## Architectures", "",
             "| architecture | done | failed | score mean | min | max | expected stable points | stable points "
             "| graph classes |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a, r in s["architectures"].items():
        frac = r["fraction_expected_stable_points"]
        classes = ", ".join(f"{k}×{v}" for k, v in r["graph_classes"].items()) or "–"
        lines.append(f"| {a} | {r['done']} | {r['failed']} | {_fmt(r['score_mean'], '.4f')} | "
                     f"{_fmt(r['score_min'], '.4f')} | {_fmt(r['score_max'], '.4f')} | "
                     f"{_fmt(frac, '.0%') if frac is not None else '–'} | {r['stable_points']} | {classes} |")
    for task, geo in s["geometry"].items():
        lines += ["", f"## Geometry ({task})", "",
                  "Distances between networks driven by the same held-out trials (1 - similarity).", "",
                  "| method | within architecture (mean ± std, pairs) | between architectures | nearest neighbour "
                  "same architecture |", "| --- | --- | --- | --- |"]
        for method in SIMILARITY_METHODS:
            g = geo.get(method)
            if not g:
                continue
            w, b = g["within"], g["between"]
            ws = f"{w['mean']:.3f} ± {w['std']:.3f} ({w['n']})" if w else "–"
            bs = f"{b['mean']:.3f} ± {b['std']:.3f} ({b['n']})" if b else "–"
            nn = _fmt(g["nearest_neighbour_same_architecture"], ".0%")
            lines.append(f"| {method.upper()} | {ws} | {bs} | {nn} |")
        suffix = "" if len(s["geometry"]) == 1 else f"_{task}"
        lines += ["", f"![MDS of SVCCA distances](figures/mds_svcca{suffix}.png)",
                  f"![SVCCA distances](figures/svcca_distance{suffix}.png)"]
    lines += ["", "## Networks", "", "| network | score | stable | by index | graph class |",
              "| --- | --- | --- | --- | --- |"]
    names = s.get("graph_classes", {})
    for n, r in s["networks"].items():
        t = r.get("topology", {})
        cls = names.get(t.get("graph_class"), {}).get("name", "–")
        lines.append(f"| {n} | {_fmt(r.get('score'), '.4f')} | {t.get('n_stable', '–')} | "
                     f"{t.get('by_index', '–')} | {cls} |")
    if names:
        lines += ["", "Graph classes (stable points and index-1 saddles, each saddle linked to the attractors its "
                  "unstable directions reach):", ""]
        lines += [f"- {v['name']} ({v['count']} networks): {v.get('graph') or '–'}" for v in names.values()]
    if s["failed"]:
        lines += ["", "## Failed", ""] + [f"- {n}: {e}" for n, e in s["failed"].items()]
    return lines


__all__ = ["ARCHITECTURES", "aggregate_sweep", "within_between"]
