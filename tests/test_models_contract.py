"""Every registered model keeps the model contract: it builds from its config, runs a batch into a ``Rollout``,
and its checkpoint (loaded with ``weights_only=True``) rebuilds a model with the same outputs. A model
registered without an example below fails here, so no model escapes the check."""

import pytest
import torch

import spiking  # noqa: F401
from baselines import BaselineRNNConfig, ForceConfig, SpikingForceConfig
from baselines.lfads import LFADSConfig
from ratenets import DiscreteRNNConfig, RateRNNConfig, Rollout, load_model, save_checkpoint
from ratenets.checkpoint import _MODEL_CLASSES
from spiking import LIFParams, LSNNConfig
from spiking.lif_network import LIFNetworkConfig

EXAMPLES = {
    "ForceRNN": ForceConfig(n_units=12, n_inputs=2, n_outputs=3),
    "SpikingForce": SpikingForceConfig(n_units=12, n_inputs=2, n_outputs=3, p_connect=0.5),
    "BaselineRNN": BaselineRNNConfig(architecture="lstm", n_units=12, n_inputs=2, n_outputs=3),
    "RateRNN": RateRNNConfig(n_units=12, n_inputs=2, n_outputs=3),
    "DiscreteRNN": DiscreteRNNConfig(n_units=12, n_inputs=2, n_outputs=3),
    "LSNN": LSNNConfig(n_lif=6, n_alif=6, n_inputs=2, n_outputs=3),
    "LFADS": LFADSConfig(n_neurons=2, n_bins=8, ic_enc_dim=4, ci_enc_dim=4, con_dim=4, co_dim=2, gen_dim=12,
                         fac_dim=3),  # outputs: the factors
    "LIFNetwork": LIFNetworkConfig(n_units=12, n_inputs=2, n_outputs=3, params=LIFParams(lif_dt_ms=0.5),
                                   dt_ms=5.0, scale_factor=20.0, warmup_ms=10.0),
}


def test_every_registered_model_has_an_example():
    assert set(_MODEL_CLASSES) <= set(EXAMPLES), f"add an example config for {set(_MODEL_CLASSES) - set(EXAMPLES)}"


def run(model, inputs):
    kwargs = {"generator": torch.Generator().manual_seed(3)} if type(model).__name__ == "LIFNetwork" else {}
    with torch.no_grad():
        return model.eval()(inputs, **kwargs)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_build_run_save_reload_same_outputs(name, tmp_path):
    cls = _MODEL_CLASSES[name]
    model = cls(EXAMPLES[name], seed=1)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():  # weights of no particular value, so that a reload that drops any of them shows
        for key, t in [*model.named_parameters(), *model.named_buffers()]:
            if "tau" in key and t.is_floating_point() and not t.any():  # time constants built as placeholders
                t.copy_(20.0 + 80.0 * torch.rand(t.shape, generator=g, dtype=t.dtype))
            elif t.is_floating_point():
                t.add_(0.1 * torch.randn(t.shape, generator=g, dtype=t.dtype))
    inputs = torch.rand(3, 8, 2, generator=g)
    out = run(model, inputs)
    assert isinstance(out, Rollout) and out.outputs.shape == (3, 8, 3) and out.states.shape[:2] == (3, 8)
    assert torch.isfinite(out.outputs).all()
    save_checkpoint(tmp_path / "m.pt", model)
    loaded = load_model(tmp_path / "m.pt")  # torch.load(weights_only=True) inside
    assert type(loaded) is cls and loaded.config_dict() == model.config_dict()
    again = run(loaded, inputs)
    assert torch.equal(out.outputs, again.outputs) and torch.equal(out.states, again.states)
