"""Compare two models' fixed-point structure (Maheswaranathan et al. 2019): how many points of each index, and
whether their saddle → attractor graphs (from ``fixedpoints.topology``) have the same shape.

The graph of a model has one node per fixed point, labelled with its index (number of unstable directions),
and an edge saddle → attractor for every unstable mode that leads there (``Topology.graph``; a mode that
reaches none of the listed attractors adds no edge). Two models are topologically alike when these graphs are
isomorphic with indices matched (networkx's VF2). The distance is the graph edit distance with unit costs
(node or edge inserted, deleted or relabelled; networkx), an upper bound when the search hits ``timeout_s``.

``saddle_graph`` is Maheswaranathan et al.'s coarser graph (attractors and index-1 saddles only, undirected), and
``graph_class`` a label that isomorphic such graphs share: what a run's fixed-point stage and a sweep record per
model (``topology_summary``) to say which models share a topology.
"""

from __future__ import annotations

import networkx as nx

from .result import FixedPoints
from .topology import Topology


def topology_graph(fps: FixedPoints, topo: Topology | None = None) -> nx.DiGraph:
    """Nodes = points of ``fps`` (attribute ``index``), edges saddle → attractor from ``topo`` (none if
    ``topo`` is None: then only the counts by index are compared)."""
    graph = nx.DiGraph()
    for k in range(len(fps)):
        graph.add_node(k, index=int(fps.n_unstable[k]))
    if topo is not None:
        for saddle, attractors in topo.graph().items():
            for attractor in attractors:
                if attractor >= 0:
                    graph.add_edge(saddle, attractor)
    return graph


def _same_index(a: dict, b: dict) -> bool:
    return a["index"] == b["index"]


def compare_topology(fps_a: FixedPoints, fps_b: FixedPoints, topo_a: Topology | None = None,
                     topo_b: Topology | None = None, timeout_s: float = 2.0) -> dict:
    """``{"by_index": [a's counts, b's counts], "same_counts": bool, "n_edges": [a, b], "isomorphic": bool,
    "graph_distance": float}`` for two models' fixed points (and, when given, their ``topology`` results).
    ``graph_distance`` is 0 exactly when the graphs are isomorphic."""
    for name, fps in (("fps_a", fps_a), ("fps_b", fps_b)):
        if not isinstance(fps, FixedPoints):
            raise ValueError(f"{name} must be a fixedpoints.FixedPoints, got {type(fps).__name__}")
    ga, gb = topology_graph(fps_a, topo_a), topology_graph(fps_b, topo_b)
    counts = [{str(k): v for k, v in sorted(f.by_index().items())} for f in (fps_a, fps_b)]
    isomorphic = nx.is_isomorphic(ga, gb, node_match=_same_index)
    if isomorphic:
        distance = 0.0
    else:
        distance = nx.graph_edit_distance(ga, gb, node_match=_same_index, timeout=timeout_s)
        if distance is None:  # nothing found in time: deleting one graph and inserting the other always works
            distance = ga.number_of_nodes() + ga.number_of_edges() + gb.number_of_nodes() + gb.number_of_edges()
    return {"by_index": counts, "same_counts": counts[0] == counts[1],
            "n_edges": [ga.number_of_edges(), gb.number_of_edges()], "isomorphic": bool(isomorphic),
            "graph_distance": float(distance)}


def saddle_graph(fps, topo, max_index: int = 1):
    """The saddle -> attractor graph as an undirected ``networkx.Graph``: the stable points, the saddles of index
    1..``max_index`` (Maheswaranathan et al.'s graph: index-1 saddles between attractors; higher-index saddles, whose
    many unstable directions land wherever their arbitrary eigenvector signs point, are left out), an edge from
    each saddle to every attractor its unstable directions reach, and a node ``none`` for ends at no attractor.
    Nodes are labelled by their index; points on no edge are left out."""
    g = nx.Graph()
    for saddle, attractor in sorted({(s, a) for s, _, _, a in topo.edges}):
        if int(fps.n_unstable[saddle]) > max_index:
            continue
        g.add_node(saddle, label=f"i{int(fps.n_unstable[saddle])}")
        end = "none" if attractor < 0 else attractor
        g.add_node(end, label="none" if attractor < 0 else "i0")
        g.add_edge(saddle, end)
    return g


def graph_class(fps, topo, max_index: int = 1) -> str:
    """An isomorphism-invariant label of ``saddle_graph`` (its Weisfeiler-Lehman hash; isomorphic graphs always
    share it, and for graphs this small and regular different ones practically never do)."""
    return nx.weisfeiler_lehman_graph_hash(saddle_graph(fps, topo, max_index), node_attr="label", iterations=4)[:12]


def describe_graph(g) -> str:
    """``8 attractors, 12 saddles, attractor degrees [3x8]`` (each index-1 saddle one link between two memories)."""
    if g.number_of_nodes() == 0:
        return "no saddle of index 1 (no attractor linked to another)"
    attractors = [n for n, d in g.nodes(data=True) if d["label"] == "i0"]
    saddles = [n for n, d in g.nodes(data=True) if d["label"].startswith("i") and d["label"] != "i0"]
    degrees: dict[int, int] = {}
    for a in attractors:
        degrees[g.degree(a)] = degrees.get(g.degree(a), 0) + 1
    text = ", ".join(f"{k}x{v}" for k, v in sorted(degrees.items(), reverse=True))
    extra = ", some ends at no attractor" if "none" in g else ""
    return f"{len(attractors)} attractors, {len(saddles)} saddles, attractor degrees [{text}]{extra}"


def topology_summary(fps: FixedPoints, topo: Topology) -> dict:
    """What a run or a sweep records of a model's topology: counts by index, the ``saddle_graph``'s class
    (``graph_class``) and description (``describe_graph``), how many index-1 saddles link two attractors, and
    how many unstable directions ended at none of the listed attractors."""
    graph = topo.graph()
    index_1 = [s for s in graph if int(fps.n_unstable[s]) == 1]
    return {
        "n_points": len(fps),
        "n_stable": int(fps.stable.sum()),
        "by_index": {str(k): v for k, v in sorted(fps.by_index().items())},
        "graph_class": graph_class(fps, topo),
        "graph": describe_graph(saddle_graph(fps, topo)),
        "n_saddles_linked": len(graph),
        "index1_saddles_to_two_attractors": sum(1 for s in index_1 if len([a for a in graph[s] if a >= 0]) == 2),
        "n_index1": len(index_1),
        "ends_at_no_attractor": sum(1 for e in topo.edges if e[3] < 0),
    }
