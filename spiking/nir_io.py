"""Export the LSNN and the transferred LIF network to NIR graphs (``nir`` package), and import them back.

NIR nodes are continuous-time; times are in seconds. Both exports use one graph shape, which snntorch's
importer (``snntorch.import_nir.import_from_nir``, needs ``nirtorch``) recognises as a recurrent layer:

    input → w_in (Linear) → lif (LIF | CubaLIF) ⇄ w_rec (Linear);  lif → [readout_filter →] readout → output

Representation choices (exact changes of variables, no approximation):

* ``r = τm / Δt_ref`` with ``Δt_ref = 1e-4 s`` (the step snntorch's importer assumes and checks) and every
  weight into the neuron divided by ``r``, so ``r·W`` equals our weights.
* LSNN voltages are divided by each unit's baseline threshold (NIR threshold 1, weights ÷ thr); Kim LIF
  voltages are measured from the bias potential (NIR ``v_leak = 0``, threshold θ − bias, reset
  v_reset − bias). snntorch's importer needs ``v_leak = 0`` and one threshold per layer.
* All arrays are written in float64, so float32 parameters come back bit for bit.

Approximations (each also raised as a ``NIRApproximationWarning`` at export). Our importer restores every
one of them exactly from the graph's ``metadata`` (``ratespike_*`` keys); other tools see the plain NIR:

* **adaptation** (ALIF ``τa``, ``β``): NIR's LIF has a fixed threshold; exported as LIF units.
* **reset by subtraction** (LSNN): NIR's LIF resets to ``v_reset``.
* **refractory period** (LSNN steps, Kim LIF 2 ms): NIR has none.
* **double-exponential synapse** (Kim LIF, rise τr, decay τd): exported as CubaLIF's single exponential
  with ``τ_syn = τd`` and the same area per spike (the rise time is dropped); the external input also
  passes through that synapse in NIR, while the simulator feeds it to the membrane directly.
* **voltage noise** (Kim LIF): NIR has none.
* **discrete time**: our models step with ``dt_ms`` (LSNN) and ``lif_dt_ms`` (Kim LIF; the LSNN holds each
  spike as a unit current for one step and integrates exactly over it); NIR leaves the discretisation to the
  simulator, and snntorch's importer runs at Δt_ref = 0.1 ms with its own Euler step and reset to zero, so
  it does not reproduce our spikes (REFERENCES: "lossy").

The default graph loads with snntorch's own importer (``snntorch.import_nir.import_from_nir``): its readout
reads the spikes directly, since snntorch knows neither NIR ``LI`` nor ``CubaLI``. The readout filter (a further
approximation for other tools, warned; our importer restores it from the metadata) is exported on request:
``readout_filter=True`` adds NIR ``LI`` (LSNN, exact) or ``CubaLI`` (Kim LIF double exponential, exact) between the
neurons and the readout, for NIR tools that know those nodes; snntorch then refuses it (``Unknown node type``).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import asdict
from pathlib import Path

import nir
import numpy as np
import torch

from .lif import LIFParams
from .lif_network import LIFNetwork, LIFNetworkConfig
from .lsnn import LSNN, LSNNConfig

REFERENCE_DT_S = 1e-4


class NIRApproximationWarning(UserWarning):
    """Something of the model that the exported NIR graph does not represent."""


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float64).numpy()


def _warn(what: str) -> None:
    warnings.warn(f"NIR export approximation: {what}", NIRApproximationWarning, stacklevel=3)


def read_graph(source: str | Path | nir.NIRGraph) -> nir.NIRGraph:
    """A ``NIRGraph`` from a graph or a NIR file; anything else is one ``ValueError``."""
    if isinstance(source, nir.NIRGraph):
        return source
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"NIR file not found: {path}")
    try:
        graph = nir.read(path)
    except Exception as e:  # h5py, KeyError or TypeError from a file that is not a NIR graph
        raise ValueError(f"{path} is not a NIR graph file ({type(e).__name__})") from None
    if not isinstance(graph, nir.NIRGraph):
        raise ValueError(f"{path} holds a single NIR {type(graph).__name__} node, not a graph")
    return graph


def write_graph(graph: nir.NIRGraph, path: str | Path) -> Path:
    """Write ``graph`` to ``path`` (HDF5), via a temporary name and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    nir.write(tmp, graph)
    tmp.replace(path)
    return path


def _graph(n_in: int, n_out: int, w_in, neuron, w_rec, readout_filter, readout, metadata) -> nir.NIRGraph:
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "w_in": w_in if isinstance(w_in, nir.NIRNode) else nir.Linear(weight=w_in),
        "lif": neuron,
        "w_rec": nir.Linear(weight=w_rec),
        "readout": readout,
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("readout", "output")]
    if readout_filter is not None:
        nodes["readout_filter"] = readout_filter
        edges += [("lif", "readout_filter"), ("readout_filter", "readout")]
    else:
        edges.append(("lif", "readout"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _nodes(graph: nir.NIRGraph, neuron_type: type, kind: str) -> dict:
    """The named nodes of a graph in the shape this module writes, or one ValueError."""
    need = {"w_in": (nir.Linear, nir.Affine), "lif": neuron_type, "w_rec": nir.Linear}
    for key, cls in need.items():
        if not isinstance(graph.nodes.get(key), cls):
            names = " or ".join(c.__name__ for c in (cls if isinstance(cls, tuple) else (cls,)))
            raise ValueError(f"NIR graph is not an exported {kind}: node {key!r} must be a {names}")
    readout = graph.nodes.get("readout")
    if not isinstance(readout, (nir.Affine, nir.Linear)):
        raise ValueError(f"NIR graph is not an exported {kind}: node 'readout' must be an Affine or Linear")
    return graph.nodes


# --- LSNN --------------------------------------------------------------------------------------------


def export_lsnn(model: LSNN, readout_filter: bool = False) -> nir.NIRGraph:
    """The LSNN as a NIR graph (module docstring: shape, scaling, approximations). The default loads in snntorch;
    ``readout_filter=True`` adds the readout's NIR ``LI`` filter (exact, but snntorch's importer refuses it)."""
    cfg, p = model.cfg, model.neurons.parameters_tuple()
    tau_m_s = _f64(p.tau_m_ms) / 1000.0
    r = tau_m_s / REFERENCE_DT_S
    thr = _f64(p.threshold)
    scale = (thr * r)[:, None]  # NIR weight = ours / (thr·r), row = post-synaptic unit
    neuron = nir.LIF(tau=tau_m_s, r=r, v_leak=np.zeros_like(r), v_threshold=np.ones_like(r), v_reset=np.zeros_like(r))
    li = None
    if readout_filter:
        n = cfg.n_units
        li = nir.LI(tau=np.full(n, cfg.tau_out_ms / 1000.0), r=np.ones(n), v_leak=np.zeros(n))
    readout = nir.Affine(weight=_f64(model.w_out), bias=_f64(model.b_out))
    metadata = {
        "ratespike_model": "LSNN",
        "ratespike_config": json.dumps(asdict(cfg)),
        "ratespike_threshold": thr,
        "ratespike_beta": _f64(p.beta),
        "ratespike_tau_a_ms": _f64(p.tau_a_ms),
        "ratespike_signs": _f64(model.signs),
        "ratespike_reset": "subtract",
        "ratespike_dt_ms": float(cfg.dt_ms),
    }
    if cfg.n_alif and cfg.beta > 0:
        _warn(f"adaptation of the {cfg.n_alif} ALIF units (tau_a {cfg.tau_a_ms} ms, beta {cfg.beta}) is not in NIR")
    _warn("reset by subtraction exported as NIR's reset to v_reset = 0")
    if cfg.refractory_steps:
        _warn(f"refractory period of {cfg.refractory_steps} steps is not in NIR")
    _warn(f"discrete step of {cfg.dt_ms} ms (spikes held for one step) is left to the simulator")
    if not readout_filter:
        _warn(f"readout filter (tau {cfg.tau_out_ms} ms) left out so that snntorch loads the graph: the readout "
              "reads the spikes (readout_filter=True adds NIR LI)")
    w_in = _f64(model.w_in) / scale
    if model.b_in is not None:  # a constant input current: the bias of an Affine input layer
        w_in = nir.Affine(weight=w_in, bias=_f64(model.b_in) / scale[:, 0])
    return _graph(
        cfg.n_inputs,
        cfg.n_outputs,
        w_in,
        neuron,
        _f64(model.w_rec()) / scale,
        li,
        readout,
        metadata,
    )


def import_lsnn(source: str | Path | nir.NIRGraph) -> LSNN:
    """An ``LSNN`` from a graph written by ``export_lsnn`` (or a file of one). With our metadata the
    model is restored exactly; a plain NIR LIF graph becomes a LIF-only LSNN (warned)."""
    graph = read_graph(source)
    nodes = _nodes(graph, nir.LIF, "LSNN")
    lif, meta = nodes["lif"], graph.metadata or {}
    tau_m_ms = np.asarray(lif.tau, dtype=np.float64) * 1000.0
    r = np.asarray(lif.r, dtype=np.float64)
    nir_thr = np.asarray(lif.v_threshold, dtype=np.float64)
    n = tau_m_ms.size
    if "ratespike_config" in meta:
        cfg = LSNNConfig(**json.loads(str(meta["ratespike_config"])))
        thr = np.asarray(meta["ratespike_threshold"], dtype=np.float64) * nir_thr
        beta, tau_a = np.asarray(meta["ratespike_beta"]), np.asarray(meta["ratespike_tau_a_ms"])
        signs = np.asarray(meta["ratespike_signs"])
    else:
        warnings.warn(
            "NIR graph has no ratespike metadata: imported as LIF units with reset by subtraction, "
            "no adaptation and no refractory period",
            NIRApproximationWarning,
            stacklevel=2,
        )
        w_in_shape = np.asarray(nodes["w_in"].weight).shape
        cfg = LSNNConfig(
            n_lif=n,
            n_alif=0,
            n_inputs=w_in_shape[1],
            n_outputs=np.asarray(nodes["readout"].weight).shape[0],
            tau_m_ms=float(tau_m_ms.mean()),
            input_bias=isinstance(nodes["w_in"], nir.Affine),
            refractory_steps=0,
            threshold_lif=float(nir_thr.mean()),
        )
        thr, beta, tau_a, signs = nir_thr, np.zeros(n), np.full(n, cfg.tau_a_ms), np.ones(n)
    filt = nodes.get("readout_filter")
    if isinstance(filt, nir.LI):
        cfg = dataclasses.replace(cfg, tau_out_ms=float(np.asarray(filt.tau, dtype=np.float64).flat[0] * 1000.0))
    if cfg.n_units != n:
        raise ValueError(f"NIR graph has {n} neurons but its metadata describes {cfg.n_units}")
    model = LSNN(cfg)
    scale = (thr * r)[:, None]
    w_rec = np.asarray(nodes["w_rec"].weight, dtype=np.float64) * scale
    as32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).to(torch.float32)  # noqa: E731
    with torch.no_grad():
        model.neurons.tau_m_ms.copy_(as32(tau_m_ms))
        model.neurons.threshold.copy_(as32(thr))
        model.neurons.beta.copy_(as32(beta))
        model.neurons.tau_a_ms.copy_(as32(tau_a))
        model.signs.copy_(as32(signs))
        model.w_in.copy_(as32(np.asarray(nodes["w_in"].weight, dtype=np.float64) * scale))
        if model.b_in is not None:
            bias = getattr(nodes["w_in"], "bias", np.zeros(n))
            model.b_in.copy_(as32(np.asarray(bias, dtype=np.float64) * scale[:, 0]))
        model.w_rec_raw.copy_(as32(w_rec * signs[None, :] if cfg.dale else w_rec))
        readout = nodes["readout"]
        model.w_out.copy_(as32(readout.weight))
        model.b_out.copy_(as32(getattr(readout, "bias", np.zeros(cfg.n_outputs))))
    return model


# --- transferred LIF network (spiking/lif_network.py, Kim et al. 2019) -------------------------------


def export_lif_network(net: LIFNetwork, readout_filter: bool = False) -> nir.NIRGraph:
    """A transferred ``spiking.LIFNetwork`` as a NIR graph of CubaLIF units (module docstring). The metadata
    holds the network's ``config_dict()`` (parameters, step ``dt_ms``, scaling factor, warm-up). The default loads
    in snntorch; ``readout_filter=True`` adds the ``CubaLI`` readout filter (exact; snntorch refuses it)."""
    p = net.params
    n = net.n_units
    tau_d_s = _f64(net.tau_d_ms) / 1000.0
    tau_m_s = np.full(n, p.tau_m_ms / 1000.0)
    r = tau_m_s / REFERENCE_DT_S
    neuron = nir.CubaLIF(
        tau_syn=tau_d_s, tau_mem=tau_m_s, r=r, v_leak=np.zeros(n),
        v_threshold=np.full(n, p.v_threshold_mv - p.bias_mv), v_reset=np.full(n, p.v_reset_mv - p.bias_mv),
        w_in=np.ones(n),
    )  # fmt: skip
    cuba_li = None
    if readout_filter:
        cuba_li = nir.CubaLI(
            tau_syn=np.full(n, p.tau_rise_ms / 1000.0), tau_mem=tau_d_s, r=np.ones(n), v_leak=np.zeros(n), w_in=1.0
        )
    metadata = {
        "ratespike_model": "LIFNetwork",
        "ratespike_config": json.dumps(net.config_dict()),
        "ratespike_tau_d_ms": _f64(net.tau_d_ms),
    }
    _warn(f"double-exponential synapse (rise {p.tau_rise_ms} ms) exported as CubaLIF's single exponential")
    _warn("external input passes through the synapse in NIR, straight to the membrane in the simulator")
    if p.refractory_ms:
        _warn(f"refractory period of {p.refractory_ms} ms is not in NIR")
    if p.noise_std_mv:
        _warn(f"voltage noise ({p.noise_std_mv} mV per step) is not in NIR")
    _warn(f"discrete step of {p.lif_dt_ms} ms is left to the simulator")
    if not readout_filter:
        _warn("readout filter (double exponential) left out so that snntorch loads the graph: the readout reads the "
              "spikes (readout_filter=True adds NIR CubaLI)")
    b_out = getattr(net, "b_out", None)
    readout = (
        nir.Linear(weight=_f64(net.w_out)) if b_out is None else nir.Affine(weight=_f64(net.w_out), bias=_f64(b_out))
    )
    scale = r[:, None]
    return _graph(
        net.w_in.shape[1],
        net.w_out.shape[0],
        _f64(net.w_in) / scale,
        neuron,
        _f64(net.w_rec) / scale,
        cuba_li,
        readout,
        metadata,
    )


def import_lif_network(source: str | Path | nir.NIRGraph, dt_ms: float | None = None) -> LIFNetwork:
    """A ``spiking.LIFNetwork`` from a graph written by ``export_lif_network`` (exact with our metadata; without
    it the Kim defaults fill what NIR does not hold, warned, and the step ``dt_ms`` of the inputs, which NIR does
    not hold either, must be given)."""
    graph = read_graph(source)
    nodes = _nodes(graph, nir.CubaLIF, "LIF network")
    lif, meta = nodes["lif"], graph.metadata or {}
    r = np.asarray(lif.r, dtype=np.float64)[:, None]
    as32 = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64)).to(torch.float32)  # noqa: E731
    w_rec = as32(np.asarray(nodes["w_rec"].weight, dtype=np.float64) * r)
    w_in = as32(np.asarray(nodes["w_in"].weight, dtype=np.float64) * r)
    readout = nodes["readout"]
    b_out = as32(readout.bias) if isinstance(readout, nir.Affine) else None
    if "ratespike_config" in meta:
        data = json.loads(str(meta["ratespike_config"]))
        if "rate_dt_ms" in data:  # written before the step had one name
            data["dt_ms"] = data.pop("rate_dt_ms")
        cfg = LIFNetworkConfig(**data)
        if dt_ms is not None and dt_ms != cfg.dt_ms:
            raise ValueError(f"dt_ms {dt_ms} differs from the graph's own step dt_ms {cfg.dt_ms}")
        tau_d_ms = np.asarray(meta["ratespike_tau_d_ms"], dtype=np.float64)
        params, scale_factor, warmup_ms = cfg.params, cfg.scale_factor, cfg.warmup_ms
        dt_ms = cfg.dt_ms
    else:
        if dt_ms is None:
            raise ValueError("the NIR graph has no ratespike metadata, so its step is unknown: pass dt_ms")
        warnings.warn(
            "NIR graph has no ratespike metadata: Kim et al.'s refractory period, noise, rise time and "
            "step are assumed",
            NIRApproximationWarning,
            stacklevel=2,
        )
        bias = LIFParams().bias_mv
        params = LIFParams(
            tau_m_ms=float(np.asarray(lif.tau_mem).flat[0] * 1000.0),
            v_threshold_mv=float(np.asarray(lif.v_threshold).flat[0] + bias),
            v_reset_mv=float(np.asarray(lif.v_reset).flat[0] + bias),
        )
        tau_d_ms = np.asarray(lif.tau_syn, dtype=np.float64) * 1000.0
        scale_factor, warmup_ms = 1.0, 0.0
    return LIFNetwork.from_weights(w_rec, w_in, as32(readout.weight), as32(tau_d_ms), params, dt_ms=dt_ms,
                                   scale_factor=scale_factor, b_out=b_out, warmup_ms=warmup_ms)
