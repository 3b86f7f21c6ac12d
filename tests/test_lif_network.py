"""The transferred LIF network as a registered model: config validation and round trip, checkpoints rebuilt by
``ratenets.load_model``, and the module layout of ``spiking`` (imports go one way, no lazy imports)."""

from __future__ import annotations

import ast
import dataclasses
import math
from pathlib import Path

import pytest
import torch

import tasks
from ratenets import RateRNN, RateRNNConfig, load_checkpoint, load_model, save_checkpoint
from spiking import LIFNetwork, LIFNetworkConfig, LIFParams
from transfer import rate_to_lif

SPIKING = Path(__file__).resolve().parents[1] / "spiking"


def tiny_lif(warmup_ms: float = 10.0, keep_readout_bias: bool = True) -> LIFNetwork:
    net = RateRNN(RateRNNConfig(n_units=12, n_inputs=2, n_outputs=2), seed=1)
    with torch.no_grad():
        net.b_out.fill_(0.2)
    return rate_to_lif(net, 20.0, LIFParams(noise_std_mv=0.2, refractory_ms=1.0), keep_readout_bias,
                       warmup_ms=warmup_ms)


def test_checkpoint_of_a_transferred_network_rebuilds_with_load_model(tmp_path):
    lif = tiny_lif()
    save_checkpoint(tmp_path / "lif.pt", lif, done=True, scale_factor=lif.scale_factor)
    back = load_model(tmp_path / "lif.pt")
    assert type(back) is LIFNetwork and back.cfg == lif.cfg and back.rate_net is None
    assert load_checkpoint(tmp_path / "lif.pt")["model_config"] == lif.config_dict()
    buffers, rebuilt = dict(lif.named_buffers()), dict(back.named_buffers())
    assert buffers.keys() == rebuilt.keys() == {"w_rec", "w_in", "w_out", "tau_d_ms", "b_out"}
    for name, tensor in buffers.items():
        assert torch.equal(tensor, rebuilt[name]) and tensor.dtype == rebuilt[name].dtype, name
    assert torch.count_nonzero(back.b_out) == 2  # the kept readout bias survives
    x = torch.rand(3, 8, 2, generator=torch.Generator().manual_seed(0))
    a = lif(x, generator=torch.Generator().manual_seed(7))
    b = back(x, generator=torch.Generator().manual_seed(7))
    assert a.spikes.sum() > 0
    for field in ("outputs", "states", "spikes"):
        assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_checkpoint_written_before_the_step_rename_still_loads(tmp_path):
    """Checkpoints from before the step names were unified stored ``rate_dt_ms``; a run directory made then must
    still open (its LIF network is not thrown away)."""
    lif = tiny_lif()
    save_checkpoint(tmp_path / "lif.pt", lif, done=True, scale_factor=lif.scale_factor)
    payload = torch.load(tmp_path / "lif.pt", weights_only=True)
    payload["model_config"]["rate_dt_ms"] = payload["model_config"].pop("dt_ms")
    torch.save(payload, tmp_path / "old.pt")
    back = load_model(tmp_path / "old.pt")
    assert back.cfg == lif.cfg and back.dt_ms == lif.dt_ms


def test_config_dict_round_trips_and_params_come_back_from_a_dict():
    cfg = tiny_lif().cfg
    data = cfg.config_dict()
    assert isinstance(data["params"], dict) and data["warmup_ms"] == 10.0 and data["dt_ms"] == 5.0
    assert LIFNetworkConfig(**data) == cfg
    assert isinstance(LIFNetworkConfig(**data).params, LIFParams)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.scale_factor = 3.0


def test_model_built_from_its_config_has_the_right_shapes():
    cfg = tiny_lif().cfg
    shapes = {name: tuple(t.shape) for name, t in LIFNetwork(cfg).named_buffers()}
    assert shapes == {"w_rec": (12, 12), "w_in": (12, 2), "w_out": (2, 12), "tau_d_ms": (12,), "b_out": (2,)}


@pytest.mark.parametrize("changes, message", [
    ({"n_units": 0}, "n_units must be an integer >= 1"),
    ({"n_inputs": 2.0}, "n_inputs must be an integer >= 1"),
    ({"dt_ms": math.nan}, "dt_ms must be a finite number > 0"),
    ({"dt_ms": 0.12}, "not a whole multiple of the LIF step"),
    ({"scale_factor": math.inf}, "scale_factor must be a finite number > 0"),
    ({"scale_factor": -2.0}, "scale_factor must be a finite number > 0"),
    ({"warmup_ms": 7.0}, "warmup_ms must be a whole number of steps of dt_ms 5.0 ms, got 7.0"),
    ({"warmup_ms": math.nan}, "warmup_ms must be a finite number"),
    ({"params": {"lif_dt_ms": math.nan}}, "LIFParams.lif_dt_ms must be finite"),
    ({"params": {"dt_ms": 0.05}}, "dt_ms"),
])  # fmt: skip
def test_bad_config_is_one_clear_error_on_construction(changes, message):
    base = dict(n_units=4, n_inputs=1, n_outputs=1, params=LIFParams(), dt_ms=5.0, scale_factor=20.0)
    with pytest.raises((ValueError, TypeError), match=message):
        LIFNetworkConfig(**{**base, **changes})


def test_from_weights_checks_shapes_and_keeps_device_and_dtype():
    n = 5
    w = dict(w_rec=torch.zeros(n, n, dtype=torch.float64), w_in=torch.zeros(n, 2, dtype=torch.float64),
             w_out=torch.zeros(1, n, dtype=torch.float64), tau_d_ms=torch.full((n,), 20.0, dtype=torch.float64))
    net = LIFNetwork.from_weights(**w, params=LIFParams(), dt_ms=5.0, scale_factor=1.0)
    assert net.w_rec.dtype == torch.float64 and net.b_out.dtype == torch.float64 and net.n_units == n
    with pytest.raises(ValueError, match=r"tau_d_ms must have shape \(5,\)"):
        LIFNetwork.from_weights(**{**w, "tau_d_ms": torch.ones(4)}, params=LIFParams(), dt_ms=5.0,
                                scale_factor=1.0)
    with pytest.raises(ValueError, match=r"w_out must have shape \(1, 5\)"):
        LIFNetwork.from_weights(**{**w, "w_out": torch.ones(1, 4)}, params=LIFParams(), dt_ms=5.0,
                                scale_factor=1.0)


def test_forward_matches_a_task_run_and_respects_the_stored_warmup():
    task = tasks.make("gonogo", n_steps_total=20, stim_on=4, stim_off=8)
    net = RateRNN(RateRNNConfig(n_units=12, n_inputs=task.n_inputs, n_outputs=task.n_outputs), seed=0)
    x = task.sample(2, torch.Generator().manual_seed(0)).inputs
    cold = rate_to_lif(net, 20.0)(x, generator=torch.Generator().manual_seed(3))
    warm = rate_to_lif(net, 20.0, warmup_ms=25.0)(x, generator=torch.Generator().manual_seed(3))
    assert cold.outputs.shape == warm.outputs.shape == (2, 20, 1)
    assert not torch.equal(cold.states, warm.states)


def _imports(path: Path) -> tuple[set[str], list[int]]:
    """Project modules ``path`` imports, and the line numbers of imports that are not at module level."""
    tree = ast.parse(path.read_text())
    names, nested = set(), []
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            if id(node) not in top:
                nested.append(node.lineno)
            if isinstance(node, ast.ImportFrom):
                base = ("spiking." if node.level else "") + (node.module or "")
                names.add(base)
            else:
                names.update(alias.name for alias in node.names)
    return names, nested


def test_lif_modules_import_one_way_at_module_level():
    lif, lif_nested = _imports(SPIKING / "lif.py")
    sim, sim_nested = _imports(SPIKING / "simulate.py")
    net, net_nested = _imports(SPIKING / "lif_network.py")
    assert not lif_nested and not sim_nested and not net_nested  # no lazy imports hiding a cycle
    assert not {m for m in lif if m.startswith("spiking")}  # params, state and the pure step only
    assert {m for m in sim if m.startswith("spiking")} == {"spiking.lif"}
    assert {"spiking.lif", "spiking.simulate"} <= net


def test_spiking_never_imports_transfer_or_pipeline():
    for path in sorted(SPIKING.glob("*.py")):
        names, _ = _imports(path)
        upward = {m for m in names if m.split(".")[0] in ("transfer", "pipeline")}
        assert not upward, f"{path.name} imports {upward}"
