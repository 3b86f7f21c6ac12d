"""NIR export/import (spiking/nir_io.py): round trips reproduce the same spikes, approximations are
warned, the graph loads with snntorch's own importer, bad files give one ValueError."""

import dataclasses
import warnings

import nir
import numpy as np
import pytest
import torch

from spiking.lif import LIFParams
from spiking.lif_network import LIFNetwork
from spiking.lsnn import LSNN, LSNNConfig
from spiking.nir_io import (
    NIRApproximationWarning,
    export_lif_network,
    export_lsnn,
    import_lif_network,
    import_lsnn,
    read_graph,
    write_graph,
)

SMALL = LSNNConfig(n_lif=6, n_alif=6, n_inputs=3, n_outputs=2, refractory_steps=2, input_scale=1.0, rec_scale=0.5)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRApproximationWarning)
        return fn(*args, **kwargs)


def tiny_lif_network(warmup_ms=0.0):
    g = torch.Generator().manual_seed(0)
    n = 8
    return LIFNetwork.from_weights(torch.randn(n, n, generator=g) * 0.5, torch.randn(n, 2, generator=g) * 10,
                                   torch.randn(1, n, generator=g), 20 + 80 * torch.rand(n, generator=g), LIFParams(),
                                   dt_ms=5.0, scale_factor=3.0, warmup_ms=warmup_ms)  # fmt: skip


def test_lsnn_export_warns_each_approximation():
    with pytest.warns(NIRApproximationWarning) as record:
        export_lsnn(LSNN(SMALL))
    text = " ".join(str(w.message) for w in record)
    for word in ("adaptation", "reset by subtraction", "refractory", "discrete step"):
        assert word in text


@pytest.mark.parametrize("cfg", [dataclasses.replace(SMALL, n_alif=0, refractory_steps=0), SMALL,
                                 dataclasses.replace(SMALL, dale=True, input_bias=True)])  # fmt: skip
def test_lsnn_round_trip_through_a_file_reproduces_the_spikes(cfg, tmp_path):
    model = LSNN(cfg, seed=2)
    path = write_graph(quiet(export_lsnn, model), tmp_path / "lsnn.nir")
    back = import_lsnn(path)
    x = torch.randn(4, 80, 3, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        a, b = model(x), back(x)
    assert a.spikes.sum() > 20
    assert torch.equal(a.spikes, b.spikes) and torch.equal(a.outputs, b.outputs)
    for name, tensor in model.state_dict().items():
        if name != "w_rec_raw":  # raw values under Dale's relu may differ; the effective weights may not
            assert torch.equal(tensor, back.state_dict()[name]), name
    assert torch.equal(model.w_rec(), back.w_rec())


def test_plain_nir_lif_graph_imports_as_lif_lsnn():
    model = LSNN(dataclasses.replace(SMALL, n_alif=0, refractory_steps=0), seed=4)
    graph = quiet(export_lsnn, model)
    graph.metadata = {}
    with pytest.warns(NIRApproximationWarning, match="no ratespike metadata"):
        back = import_lsnn(graph)
    x = torch.randn(2, 60, 3, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model(x), back(x)
    # same spikes up to rounding of the threshold normalisation: nearly all agree
    assert (a.spikes == b.spikes).float().mean() > 0.99


def test_lif_network_round_trip_reproduces_the_spikes(tmp_path):
    net = tiny_lif_network(warmup_ms=10.0)
    with pytest.warns(NIRApproximationWarning) as record:
        graph = export_lif_network(net)
    text = " ".join(str(w.message) for w in record)
    for word in ("double-exponential", "refractory", "noise"):
        assert word in text
    back = import_lif_network(write_graph(graph, tmp_path / "lif.nir"))
    x = torch.randn(2, 6, 2, generator=torch.Generator().manual_seed(0))
    a = net(x, generator=torch.Generator().manual_seed(5))
    b = back(x, generator=torch.Generator().manual_seed(5))
    assert a.spikes.sum() > 10 and torch.equal(a.spikes, b.spikes) and torch.equal(a.outputs, b.outputs)
    assert back.cfg == net.cfg


def test_plain_nir_lif_graph_needs_the_rate_step():
    graph = quiet(export_lif_network, tiny_lif_network())
    graph.metadata = {}
    with pytest.raises(ValueError, match="pass dt_ms"):
        import_lif_network(graph)
    with pytest.warns(NIRApproximationWarning, match="no ratespike metadata"):
        back = import_lif_network(graph, dt_ms=10.0)
    assert back.dt_ms == 10.0 and back.params.tau_m_ms == pytest.approx(LIFParams().tau_m_ms)


def test_exported_graphs_load_with_snntorchs_own_import(capsys):
    from snntorch import import_nir  # needs nirtorch, a core dependency
    for graph in (quiet(export_lsnn, LSNN(SMALL), readout_filter=False),
                  quiet(export_lif_network, tiny_lif_network(), readout_filter=False)):  # fmt: skip
        net = import_nir.import_from_nir(graph)
        out, _state = net(torch.randn(3, graph.nodes["w_in"].weight.shape[1]))
        assert out.shape == (3, graph.nodes["readout"].weight.shape[0])
    capsys.readouterr()  # snntorch's importer prints


def test_files_that_are_not_nir_graphs_raise_one_value_error(tmp_path):
    text = tmp_path / "notes.nir"
    text.write_text("not hdf5")
    with pytest.raises(ValueError, match="is not a NIR graph file"):
        import_lsnn(text)
    node = tmp_path / "node.nir"
    nir.write(node, nir.Linear(weight=np.eye(2)))
    with pytest.raises(ValueError, match="not a NIR graph"):
        read_graph(node)
    with pytest.raises(ValueError, match="not found"):
        read_graph(tmp_path / "missing.nir")
    other = nir.NIRGraph.from_list(nir.Linear(weight=np.eye(2)))
    with pytest.raises(ValueError, match="not an exported LSNN"):
        import_lsnn(other)
