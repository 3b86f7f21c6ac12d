"""One time step of PyTorch's stock recurrent modules, written from their weights as a pure function.

Writing the cells out (instead of calling the cuDNN/ATen kernels) makes them usable under
``torch.func`` (``vmap``, ``jacrev``, ``jvp``) and lets a multi-layer stack be one map of one state.
Equations and gate order are PyTorch's (``torch.nn.RNN``, ``GRU``, ``LSTM`` documentation):

    RNN : h' = φ(W_ih u + b_ih + W_hh h + b_hh),  φ = tanh or relu
    GRU : r = σ(W_ir u + b_ir + W_hr h + b_hr),  z = σ(W_iz u + b_iz + W_hz h + b_hz)
          n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h
    LSTM: i, f, g, o = σ, σ, tanh, σ of (W_ih u + b_ih + W_hh h + b_hh) split in four
          c' = f ⊙ c + i ⊙ g,  h' = W_hr (o ⊙ tanh c')  (W_hr only when ``proj_size > 0``)

Layer k > 0 takes layer k-1's new h as its input, as the stock modules do in one time step.
**State layout**: ``[h_0 | h_1 | … | h_{L-1}]`` for RNN/GRU and ``[h_0 | … | h_{L-1} | c_0 | … | c_{L-1}]``
for LSTM, i.e. the per-sample flattening of the modules' ``h_n`` (and ``c_n``). Dropout between layers
is a training-time perturbation and is not part of the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

STOCK_LAYERS = (nn.RNN, nn.GRU, nn.LSTM)
STOCK_CELLS = (nn.RNNCell, nn.GRUCell, nn.LSTMCell)


@dataclass(frozen=True)
class StockLayout:
    """Widths of a stock module's state: ``n_layers`` layers of ``h`` (``h_size`` each) and, for LSTMs,
    of ``c`` (``c_size`` each)."""

    kind: str  # "rnn_tanh", "rnn_relu", "gru" or "lstm"
    n_layers: int
    h_size: int
    c_size: int
    n_inputs: int

    @property
    def n_state(self) -> int:
        return self.n_layers * (self.h_size + self.c_size)

    def describe(self) -> str:
        if self.kind == "lstm":
            return (f"{self.n_layers} layer(s) of h ({self.h_size}) then {self.n_layers} layer(s) of c "
                    f"({self.c_size}), i.e. torch.cat([h_n, c_n]) flattened per sample")
        return f"{self.n_layers} layer(s) of h ({self.h_size}), i.e. h_n flattened per sample"


def is_stock(model) -> bool:
    return isinstance(model, STOCK_LAYERS + STOCK_CELLS)


def _kind(module: nn.Module) -> str:
    if isinstance(module, (nn.GRU, nn.GRUCell)):
        return "gru"
    if isinstance(module, (nn.LSTM, nn.LSTMCell)):
        return "lstm"
    return "rnn_relu" if module.nonlinearity == "relu" else "rnn_tanh"


def layout(module: nn.Module) -> StockLayout:
    """The state layout of a stock module; bidirectional stacks are refused (they are not a causal map)."""
    kind = _kind(module)
    if isinstance(module, STOCK_CELLS):
        c_size = module.hidden_size if kind == "lstm" else 0
        return StockLayout(kind, 1, module.hidden_size, c_size, module.input_size)
    if module.bidirectional:
        raise TypeError("a bidirectional RNN reads the future; it has no state map x_t -> x_t+1 to analyse")
    proj = getattr(module, "proj_size", 0) or 0
    h_size = proj if proj > 0 else module.hidden_size
    c_size = module.hidden_size if kind == "lstm" else 0
    return StockLayout(kind, module.num_layers, h_size, c_size, module.input_size)


def _layer_weights(module: nn.Module, layer: int) -> dict:
    suffix = "" if isinstance(module, STOCK_CELLS) else f"_l{layer}"
    get = lambda name: getattr(module, name + suffix, None)  # noqa: E731
    return {"w_ih": get("weight_ih"), "w_hh": get("weight_hh"), "b_ih": get("bias_ih"),
            "b_hh": get("bias_hh"), "w_hr": get("weight_hr")}


def _affine(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return x @ w.T if b is None else x @ w.T + b


def stock_step(module: nn.Module, lay: StockLayout, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The next state ``[B, D]`` of a stock module from state ``x [B, D]`` and input ``u [B, I]``."""
    n_h = lay.n_layers * lay.h_size
    hs = x[:, :n_h].split(lay.h_size, dim=1)
    cs = x[:, n_h:].split(lay.c_size, dim=1) if lay.kind == "lstm" else [None] * lay.n_layers
    layer_input, new_h, new_c = u, [], []
    for k in range(lay.n_layers):
        w = _layer_weights(module, k)
        gi = _affine(layer_input, w["w_ih"], w["b_ih"])
        gh = _affine(hs[k], w["w_hh"], w["b_hh"])
        if lay.kind == "gru":
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * hs[k]
        elif lay.kind == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=1)
            c = torch.sigmoid(f) * cs[k] + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if w["w_hr"] is not None:
                h = h @ w["w_hr"].T
            new_c.append(c)
        else:
            pre = gi + gh
            h = torch.relu(pre) if lay.kind == "rnn_relu" else torch.tanh(pre)
        new_h.append(h)
        layer_input = h
    return torch.cat(new_h + new_c, dim=1)


def stock_states(module: nn.Module, h_n: torch.Tensor, c_n: torch.Tensor | None = None) -> torch.Tensor:
    """Convert a stock layer's final ``h_n [L, B, H]`` (and LSTM ``c_n``) to states ``[B, D]`` in this layout."""
    parts = [h_n.transpose(0, 1).flatten(1)]
    if c_n is not None:
        parts.append(c_n.transpose(0, 1).flatten(1))
    return torch.cat(parts, dim=1)
