"""Train the small networks the fixed-point tests and ``bench/fixedpoints.py`` analyse, and save them here.

    python tests/data/make_fixedpoint_nets.py            # all of them (a few minutes on 2 CPU cores)
    python tests/data/make_fixedpoint_nets.py gru64      # one of them

Each file holds the stock module's state dict, its readout, the training score and a few held-out
trajectories (``states [16,T/4,D]``, ``inputs [16,T/4,I]``, every 4th step) to sample starts from; it loads with
``torch.load(weights_only=True)``. Training uses the project's loop (``ratenets.training.train``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

import tasks
from ratenets.rollout import Rollout
from ratenets.training import TrainConfig, train

HERE = Path(__file__).resolve().parent


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
    "rnn32": ("rnn", 32, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=2000, batch_size=64, lr=0.005), 0),
    "gru16": ("gru", 16, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=2000, batch_size=64, lr=0.01), 0),
    "gru64": ("gru", 64, "flipflop", {"n_bits": 3}, TrainConfig(n_steps=1500, batch_size=64, lr=0.01), 0),
}


def make(name: str) -> Path:
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
    for name in sys.argv[1:] or list(NETS):
        make(name)
