"""Train the small networks the fixed-point tests and ``bench/find_fixed_points.py`` analyse, and save them here.

    python tests/data/make_fixedpoint_nets.py            # all of them (a few minutes on 2 CPU cores)
    python tests/data/make_fixedpoint_nets.py gru64      # one of them

``rnn16`` is FixedPointFinder's own example network (a 16-unit tanh ``nn.RNN`` on the 3-bit flip-flop);
``lsnn`` is the default run's LSNN (``configs/flipflop.yaml``: its ``task`` and ``lsnn`` sections, seed 0),
saved as the LSNN's state dict and config (no trajectories: a test runs it on held-out trials).

Each stock-module file holds the stock module's state dict, its readout, the training score and a few held-out
trajectories (``states [16,T/4,D]``, ``inputs [16,T/4,I]``, every 4th step) to sample starts from; it loads with
``torch.load(weights_only=True)``. Training uses the project's loop (``ratenets.training.train``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch
import yaml
from torch import nn

import tasks
from ratenets.rollout import Rollout
from ratenets.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parents[1] / "configs" / "flipflop.yaml"


class StockNet(nn.Module):
    """A stock ``nn.RNN``/``nn.GRU`` (batch first) with a linear readout, returning a ``Rollout``."""

    def __init__(self, kind: str, n_inputs: int, n_units: int, n_outputs: int):
        super().__init__()
        module = {"rnn": nn.RNN, "gru": nn.GRU}[kind]
        self.rnn = module(n_inputs, n_units, batch_first=True)
        if kind == "rnn":  # an orthogonal recurrent matrix keeps memory alive from the start of training
            nn.init.orthogonal_(self.rnn.weight_hh_l0)
        self.readout = nn.Linear(n_units, n_outputs)

    def forward(self, inputs: torch.Tensor) -> Rollout:
        states, _ = self.rnn(inputs)
        return Rollout(self.readout(states), states)


# name: (architecture, units, task name, task params, training config, seed)
NETS = {
    "rnn16": ("rnn", 16, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=2000, batch_size=64, lr=0.005), 0),
    "rnn32": ("rnn", 32, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=2000, batch_size=64, lr=0.005), 0),
    "gru16": ("gru", 16, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=2000, batch_size=64, lr=0.01), 0),
    "gru64": ("gru", 64, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=1500, batch_size=64, lr=0.01), 0),
}


def make_lsnn() -> Path:
    """The default run's LSNN, trained as the pipeline's ``lsnn`` stage trains it (same config and seed)."""
    from spiking import LSNN, LSNNConfig

    with open(CONFIG) as f:
        cfg = yaml.safe_load(f)
    task = tasks.make(cfg["task"]["name"], **cfg["task"]["params"])
    seed = int(cfg["seed"])
    model_cfg = dataclasses.replace(LSNNConfig(**cfg["lsnn"]["model"]), n_inputs=task.n_inputs,
                                    n_outputs=task.n_outputs, dt_ms=task.dt_ms)
    net = LSNN(model_cfg, seed=seed)
    result = train(net, task, TrainConfig(**cfg["lsnn"]["train"]), seed=seed)
    net.eval()
    batch = task.held_out().sample(64, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        held_out = float(task.score(net(batch.inputs).outputs, batch))
    payload = {"config": dataclasses.asdict(model_cfg), "state_dict": net.state_dict(), "task": cfg["task"],
               "score": float(result.score), "held_out_score": held_out, "steps": int(result.step)}
    path = HERE / "fixedpoints_lsnn.pt"
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    print(f"lsnn: {result.step} steps, score {result.score:.4f} held-out {held_out:.4f} -> {path}")
    return path


def load_lsnn():
    """The LSNN saved by ``make_lsnn`` (eval mode) and its payload."""
    from spiking import LSNN, LSNNConfig

    payload = torch.load(HERE / "fixedpoints_lsnn.pt", weights_only=True)
    net = LSNN(LSNNConfig(**payload["config"]))
    net.load_state_dict(payload["state_dict"])
    return net.eval(), payload


def make(name: str) -> Path:
    if name == "lsnn":
        return make_lsnn()
    kind, n_units, task_name, task_params, cfg, seed = NETS[name]
    torch.manual_seed(seed)
    task = tasks.make(task_name, **task_params)
    net = StockNet(kind, task.n_inputs, n_units, task.n_outputs)
    result = train(net, task, cfg, seed=seed)
    net.eval()
    batch = task.sample(32, torch.Generator().manual_seed(seed + 1))
    with torch.no_grad():
        rollout = net(batch.inputs)
    path = HERE / f"fixedpoints_{name}.pt"
    payload = {
        "kind": kind,
        "task": task_name,
        "n_inputs": task.n_inputs,
        "n_units": n_units,
        "n_outputs": task.n_outputs,
        "rnn": net.rnn.state_dict(),
        "readout": net.readout.state_dict(),
        "score": float(result.score),
        "held_out_score": float(task.score(rollout.outputs, batch)),
        # every 4th step of 16 trials: plenty of starts, a small file
        "states": rollout.states[:16, ::4].contiguous(),
        "inputs": batch.inputs[:16, ::4].contiguous(),
    }
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    print(f"{name}: score {result.score:.4f} held-out {payload['held_out_score']:.4f} -> {path}")
    return path


def load(name: str) -> tuple[nn.Module, dict]:
    """The stock module (``nn.RNN``/``nn.GRU``, batch first) saved under ``name`` and the payload."""
    payload = torch.load(HERE / f"fixedpoints_{name}.pt", weights_only=True)
    module = {"rnn": nn.RNN, "gru": nn.GRU}[payload["kind"]]
    rnn = module(payload["n_inputs"], payload["n_units"], batch_first=True)
    rnn.load_state_dict(payload["rnn"])
    return rnn, payload


if __name__ == "__main__":
    torch.set_num_threads(1)
    for name in sys.argv[1:] or [*NETS, "lsnn"]:
        make(name)
