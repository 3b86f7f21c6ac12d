"""The spiking API as a user meets it from a notebook (issue 12): one raster function drawing on the caller's axes,
one name per time step, rates from the model's own step, the LIF network's per-step API, full-resolution spikes
and repr, NIR exports that load in snntorch at the defaults, result tuples whose docstrings list their fields,
width checks in ``train`` and progress lines in logs."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

import spiking
import spiking.plots
import tasks
import transfer
import transfer.plots
from ratenets import RateRNN, RateRNNConfig, TrainConfig, train
from ratenets.rollout import Rollout
from spiking import LSNN, LIFNetwork, LIFParams, LSNNConfig, mean_rate_hz, plot_raster
from spiking.nir_io import NIRApproximationWarning, export_lif_network, export_lsnn
from transfer import rate_to_lif, search_scale

ROOT = Path(__file__).resolve().parents[1]
SMALL_LSNN = LSNNConfig(n_lif=4, n_alif=4, n_inputs=3, n_outputs=3, input_scale=1.0, rec_scale=0.5)


def tiny_lif(n_units=12, noise=0.0, warmup_ms=0.0) -> LIFNetwork:
    net = RateRNN(RateRNNConfig(n_units=n_units, n_inputs=2, n_outputs=2), seed=1)
    return rate_to_lif(net, 20.0, LIFParams(noise_std_mv=noise, lif_dt_ms=0.5), warmup_ms=warmup_ms)


# --- one raster function; every figure on the caller's axes -------------------------------------------------


def test_there_is_one_raster_function_and_every_caller_uses_it():
    defs, imports = [], []
    for folder in ("spiking", "transfer", "pipeline", "bench", "baselines", "ratenets", "fixedpoints"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            defs += [str(path.relative_to(ROOT)) for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef) and n.name == "plot_raster"]
            imports += [(str(path.relative_to(ROOT)), n.module) for n in ast.walk(tree)
                        if isinstance(n, ast.ImportFrom) and any(a.name == "plot_raster" for a in n.names)]
    assert defs == ["spiking/plots.py"]
    assert all(module in ("spiking", "spiking.plots", "plots") for _, module in imports), imports
    assert spiking.plot_raster is spiking.plots.plot_raster and not hasattr(transfer.plots, "plot_raster")


def test_the_raster_draws_exactly_the_given_spikes_on_the_callers_axes(tmp_path):
    spikes = np.zeros((2, 10, 4), dtype=np.uint8)
    spikes[1, [0, 3, 3, 9], [2, 0, 1, 3]] = 1  # trial 1: (step, unit) = (0, 2), (3, 0), (3, 1), (9, 3)
    fig = Figure()
    ax = fig.subplots()
    out = plot_raster(torch.as_tensor(spikes), tmp_path / "r.png", dt_ms=0.5, trial=1, ax=ax)
    assert out is fig and (tmp_path / "r.png").stat().st_size > 1000
    points = np.concatenate([c.get_offsets() for c in ax.collections])
    assert sorted(map(tuple, points.tolist())) == [(0.0, 2.0), (1.5, 0.0), (1.5, 1.0), (4.5, 3.0)]
    # groups colour units by kind; with outputs it takes two axes (raster, output) and says so otherwise
    fig2 = Figure()
    axes = fig2.subplots(2, 1)
    assert plot_raster(spikes, dt_ms=0.5, groups={"LIF": range(2), "ALIF": range(2, 4)}, outputs=np.ones((2, 5, 1)),
                       output_dt_ms=1.0, ax=axes) is fig2
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["LIF", "ALIF"]
    assert np.allclose(axes[1].lines[0].get_xdata(), [1, 2, 3, 4, 5])  # output steps of output_dt_ms
    with pytest.raises(ValueError, match="pass ax as a sequence of 2 Axes"):
        plot_raster(spikes, dt_ms=0.5, outputs=np.ones((2, 5, 1)), ax=ax)


@pytest.mark.parametrize("module", [spiking.plots, transfer.plots])
def test_every_plot_function_takes_ax_and_path_and_returns_its_figure(module, tmp_path):
    data = {"plot_raster": (np.eye(4),), "plot_output_vs_target": (np.zeros((6, 1)), np.ones((6, 1))),
            "plot_rate_histogram": (np.arange(8.0),), "plot_scale_scan": ([[20, 0.5], [25, 0.9]],)}
    functions = [(n, f) for n, f in vars(module).items() if n.startswith("plot_") and inspect.isfunction(f)]
    assert functions
    for name, fn in functions:
        assert {"ax", "path"} <= set(inspect.signature(fn).parameters), name
        kwargs = {"dt_ms": 1.0} if "dt_ms" in inspect.signature(fn).parameters else {}
        fig = Figure()
        ax = fig.subplots()
        assert fn(*data[name], ax=ax, path=tmp_path / f"{name}.png", **kwargs) is fig, name
        assert ax.has_data() and (tmp_path / f"{name}.png").exists(), name
        assert isinstance(fn(*data[name], **kwargs), Figure)


# --- time steps: one name each; rates from the model's own step ------------------------------------------


def test_each_time_step_has_one_name():
    folders = ("spiking", "transfer", "pipeline", "configs", "baselines", "bench")
    sources = [p for folder in folders for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".yaml")]
    legacy = [str(p.relative_to(ROOT)) for p in sources if "rate_dt_ms" in p.read_text()]
    # only where files written before the rename are read: NIR files and LIF checkpoints
    assert sorted(legacy) == ["spiking/lif_network.py", "spiking/nir_io.py"]
    lif = tiny_lif()
    assert lif.dt_ms == lif.cfg.dt_ms == 5.0 and lif.params.lif_dt_ms == 0.5
    assert "dt_ms" in {f.name for f in dataclasses.fields(lif.cfg)}
    assert {"dt_ms", "lif_dt_ms"} <= set(transfer.TransferTrials._fields)
    assert LSNN(SMALL_LSNN).dt_ms == SMALL_LSNN.dt_ms


def test_mean_rate_takes_the_step_from_the_model():
    # 8 spikes over 2 trials x 4 units in 10 steps of 5 ms (50 ms): 1 spike per unit and trial in 0.05 s = 20 Hz
    spikes = torch.zeros(2, 10, 4)
    spikes[0, :4, 0] = spikes[1, 5:9, 3] = 1
    rollout = Rollout(torch.zeros(2, 10, 1), torch.zeros(2, 10, 4), spikes=spikes)
    model = LSNN(dataclasses.replace(SMALL_LSNN, dt_ms=5.0))
    assert mean_rate_hz(rollout, model) == pytest.approx(20.0) == model.mean_rate_hz(rollout)
    assert mean_rate_hz(rollout, 5.0) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="need a model with a dt_ms"):
        mean_rate_hz(rollout, object())
    # a LIF network: the same rate from counts per step and from full-resolution spikes
    lif = tiny_lif(noise=0.5)
    x = torch.full((2, 6, 2), 0.5)
    counts = lif(x, generator=torch.Generator().manual_seed(3))
    full = lif(x, generator=torch.Generator().manual_seed(3), full_resolution=True)
    assert counts.spikes.sum() > 0
    assert lif.mean_rate_hz(counts) == pytest.approx(lif.mean_rate_hz(full))
    expected = float(counts.spikes.sum()) / (2 * 12) / (6 * 5.0 / 1000)
    assert lif.mean_rate_hz(counts) == pytest.approx(expected)


# --- LIFNetwork: per-step API, full-resolution spikes, repr --------------------------------------------------


def test_step_of_a_single_unit_fires_when_the_analytic_membrane_crosses_threshold():
    # One unit, no recurrence, no noise, v0 = v_reset, constant drive bias + c: v_n = V + (v0 - V)(1 - a)^n with
    # V = bias + c, a = dt/τm, so the first spike is at the first n with v_n >= θ.
    p = LIFParams(noise_std_mv=0.0)
    c = 5.0
    net = LIFNetwork.from_weights(torch.zeros(1, 1), torch.tensor([[c]]), torch.ones(1, 1), torch.tensor([20.0]), p,
                                  dt_ms=5.0, scale_factor=1.0)
    a, v_inf = p.lif_dt_ms / p.tau_m_ms, p.bias_mv + c
    first = next(n for n in range(1, 10_000) if v_inf + (p.v_reset_mv - v_inf) * (1 - a) ** n >= p.v_threshold_mv)
    state = net.initial_state(1)._replace(v=torch.full((1, 1), p.v_reset_mv))
    fired = []
    for n in range(1, first + 5):
        spikes, state = net.step(torch.ones(1, 1), state)
        fired += [n] if spikes.item() else []
    assert fired[0] == first and state.v.shape == (1, 1)


def test_stepping_a_trial_gives_forwards_full_resolution_spikes_and_outputs():
    lif = tiny_lif(noise=0.3)
    x = 5 * torch.rand(2, 20, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    full = lif(x, generator=torch.Generator().manual_seed(5), full_resolution=True, kernel="dense",
               dtype=torch.float64)
    counts = lif(x, generator=torch.Generator().manual_seed(5), kernel="dense", dtype=torch.float64)
    substeps = lif.params.substeps(lif.dt_ms)
    assert full.spikes.shape == (2, 20 * substeps, 12) and full.spikes.sum() > 50
    assert torch.equal(full.spikes.reshape(2, 20, substeps, 12).sum(dim=2), counts.spikes.to(full.spikes))
    g = torch.Generator().manual_seed(5)
    state, spikes, outputs = lif.initial_state(2, g, torch.float64), [], []
    for t in range(20):
        for _ in range(substeps):
            s, state = lif.step(x[:, t], state, generator=g)
            spikes.append(s)
        outputs.append(lif.readout(state))
    assert torch.equal(torch.stack(spikes, dim=1).to(full.spikes), full.spikes)
    assert torch.allclose(torch.stack(outputs, dim=1), full.outputs)
    with pytest.raises(ValueError, match=r"input_t must be \[batch, 2\]"):
        lif.step(torch.zeros(2, 3))


def test_repr_shows_size_scaling_factor_and_time_constants():
    text = repr(tiny_lif())
    tau = tiny_lif().tau_d_ms
    assert text.startswith("LIFNetwork(") and "n_units=12" in text and "scale_factor=20" in text
    assert f"tau_d_ms={float(tau.min()):.3g}..{float(tau.max()):.3g}" in text
    assert "tau_m_ms=10" in text and "tau_rise_ms=2" in text and "dt_ms=5" in text and "lif_dt_ms=0.5" in text


# --- NIR: the default export loads in snntorch ------------------------------------------------------------


def test_default_nir_exports_load_in_snntorch(capsys):
    from snntorch import import_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRApproximationWarning)
        graphs = [export_lsnn(LSNN(SMALL_LSNN)), export_lif_network(tiny_lif())]
    for graph in graphs:
        assert "readout_filter" not in graph.nodes
        net = import_nir.import_from_nir(graph)
        out, _ = net(torch.randn(3, graph.nodes["w_in"].weight.shape[1]))
        assert out.shape == (3, graph.nodes["readout"].weight.shape[0])
    capsys.readouterr()


# --- result tuples say what they hold -----------------------------------------------------------------------


def result_types():
    """Every named tuple, and every dataclass named ``*Result``, defined in the spiking and transfer modules and the
    training loop (``spiking.simulate`` is also a function's name, hence ``import_module``)."""
    names = ("spiking.alif", "spiking.lif", "spiking.simulate", "spiking.lif_network", "spiking.lsnn",
             "transfer.search", "transfer.xcheck", "ratenets.training", "ratenets.rollout")
    for module in map(importlib.import_module, names):
        for name, cls in vars(module).items():
            if inspect.isclass(cls) and cls.__module__ == module.__name__:
                if hasattr(cls, "_fields") or (dataclasses.is_dataclass(cls) and name.endswith("Result")):
                    yield cls


@pytest.mark.parametrize("cls", list(result_types()), ids=lambda c: c.__name__)
def test_every_result_tuple_lists_its_fields_in_its_docstring(cls):
    names = cls._fields if hasattr(cls, "_fields") else [f.name for f in dataclasses.fields(cls)]
    doc = inspect.getdoc(cls) or ""
    missing = [n for n in names if not re.search(rf"``{n}``|``{n} \[|``{n}\b", doc)]
    assert not missing, f"{cls.__name__} docstring lacks {missing}"


# --- train(): widths checked; progress lines in a log --------------------------------------------------------


def test_train_names_a_width_mismatch_in_one_line():
    task = tasks.make("flipflop", n_bits=3, n_steps_total=20)
    cfg = TrainConfig(n_steps=2, batch_size=2, eval_every=2, eval_batch_size=2)
    with pytest.raises(ValueError, match=r"RateRNN has n_inputs=2 but task 'flipflop' has n_inputs=3: build the "
                                         r"model with n_inputs=3"):
        train(RateRNN(RateRNNConfig(n_units=8, n_inputs=2, n_outputs=3)), task, cfg)
    with pytest.raises(ValueError, match=r"n_outputs=1 but task 'flipflop' has n_outputs=3"):
        train(LSNN(dataclasses.replace(SMALL_LSNN, n_outputs=1)), task, cfg)


def test_training_in_a_log_prints_a_line_every_five_percent(capsys):
    task = tasks.make("flipflop", n_bits=3, n_steps_total=20)
    cfg = TrainConfig(n_steps=20, batch_size=2, eval_every=10, eval_batch_size=2)
    train(LSNN(SMALL_LSNN), task, cfg, progress=True)
    out = capsys.readouterr()
    lines = [ln for ln in out.out.splitlines() if ln.startswith("train LSNN: ")]
    assert [re.search(r"\((\d+)%\)", ln).group(1) for ln in lines] == [str(p) for p in range(5, 101, 5)]
    assert lines[0].startswith("train LSNN: 1/20 steps (5%)") and "score" in lines[-1]
    assert out.err == ""  # stderr stays for the one line of an error
    train(LSNN(SMALL_LSNN), task, cfg)  # progress off: silent
    assert capsys.readouterr() == ("", "")


def test_scale_search_in_a_log_prints_progress_lines(capsys):
    net = RateRNN(RateRNNConfig(n_units=10, n_inputs=1, n_outputs=1), seed=0)
    task = tasks.make("gonogo", n_steps_total=20, stim_on=5, stim_off=10)
    search_scale(net, task, [20.0, 40.0], n_trials=2, lif_params=LIFParams(lif_dt_ms=0.5), progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("scale search")]
    assert len(lines) == 20 and "20/20 steps (100%)" in lines[-1]  # one line every 5 % of the trial


def test_progress_is_a_bar_on_a_terminal_and_resumes_at_the_next_mark():
    import io

    from ratenets.training import ProgressLog

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    bar = ProgressLog(10, "train X", stream=term)
    bar.update_to(10)
    bar.close()
    assert bar.mode == "bar" and "train X: 100%" in term.getvalue() and "steps (" not in term.getvalue()
    log = io.StringIO()
    resumed = ProgressLog(20, "train X", initial=10, stream=log)  # resumed at 50 %: the next line is at 55 %
    resumed.update(1)
    resumed.update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("train X: 11/20 steps (55%)")
