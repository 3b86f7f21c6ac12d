"""Compare two models' fixed-point structure (Maheswaranathan et al. 2019): how many points of each index, and
whether their saddle → attractor graphs (from ``fixedpoints.topology``) have the same shape.

The graph of a model has one node per fixed point, labelled with its index (number of unstable directions),
and an edge saddle → attractor for every unstable mode that leads there (``Topology.graph``; a mode that
reaches none of the listed attractors adds no edge). Two models are topologically alike when these graphs are
isomorphic with indices matched (networkx's VF2). The distance is the graph edit distance with unit costs
(node or edge inserted, deleted or relabelled; networkx), an upper bound when the search hits ``timeout_s``.
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
