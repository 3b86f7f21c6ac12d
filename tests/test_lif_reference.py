"""The LIF simulator against a golden trajectory of the published equations (Kim et al. 2019's reference
function, written out independently in tests/data/lif_reference/make_golden.py, with its provenance and the
three settings that make it deterministic). This anchor runs in the default test run, where Brian2 is absent."""

from pathlib import Path

import numpy as np
import pytest
import torch

from spiking import LIFParams, simulate

GOLDEN = Path(__file__).parent / "data" / "lif_reference" / "golden.npz"


@pytest.mark.parametrize("kernel", ["dense", "sparse"])
def test_spikes_and_rates_match_the_reference_equations(kernel):
    g = np.load(GOLDEN)
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    n = g["w"].shape[0]
    res = simulate(as_t(g["w"]), as_t(g["w_in"]), torch.zeros(1, n, dtype=torch.float64), as_t(g["td_ms"]),
                   as_t(g["u"].T)[None], LIFParams(noise_std_mv=0.0), dt_ms=5.0, dtype=torch.float64,
                   v0=as_t(g["v0"]), record_rates=True, raster_trials=1, kernel=kernel)
    events = res.raster.numpy()  # (network, trial, LIF step from 0, unit)
    ours = sorted(zip(events[:, 2] + 1, events[:, 3], strict=True))  # the reference counts steps from 1
    theirs = sorted(zip(g["spike_steps"], g["spike_units"], strict=True))
    assert len(theirs) > 50 and len(set(u for _, u in theirs)) > 4  # enough spikes, many units, to mean something
    assert ours == theirs
    np.testing.assert_allclose(res.rates[0, 0].numpy(), g["rates"], rtol=1e-9, atol=1e-9)


def test_the_golden_run_depends_on_the_recurrent_weights():
    # Without its recurrent weights the same network spikes otherwise: the check covers the synapses too.
    g = np.load(GOLDEN)
    n = g["w"].shape[0]
    as_t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    res = simulate(torch.zeros(n, n, dtype=torch.float64), as_t(g["w_in"]), torch.zeros(1, n, dtype=torch.float64),
                   as_t(g["td_ms"]), as_t(g["u"].T)[None], LIFParams(noise_std_mv=0.0), dt_ms=5.0,
                   dtype=torch.float64, v0=as_t(g["v0"]), raster_trials=1)
    assert len(res.raster) != len(g["spike_steps"])
