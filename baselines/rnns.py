"""The discrete-time architectures compared by Maheswaranathan et al. 2019 (universality and individuality):
a vanilla tanh RNN, the GRU, the LSTM and the UGRNN, as one configurable model family with the project's model
contract (``model(inputs) -> Rollout``, a pure ``step(state, input)``, ``readout(state)``).

One step of each, ``u`` the input, ``h`` the hidden state, ``σ`` the logistic function:

    vanilla: h' = tanh(W_ih u + b_ih + W_hh h + b_hh)
    GRU    : r = σ(W_ir u + b_ir + W_hr h + b_hr),  z = σ(W_iz u + b_iz + W_hz h + b_hz)
             n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn)),  h' = (1 - z) ⊙ n + z ⊙ h
    LSTM   : i, f, g, o = σ, σ, tanh, σ of (W_ih u + b_ih + W_hh h + b_hh), split in four
             c' = f ⊙ c + i ⊙ g,  h' = o ⊙ tanh(c')
    UGRNN  : g = σ(W_ig u + W_hg h + b_g),  c = tanh(W_ic u + W_hc h + b_c)          (Collins et al. 2017)
             h' = g ⊙ h + (1 - g) ⊙ c

The vanilla RNN, GRU and LSTM are PyTorch's (``nn.RNN``, ``nn.GRU``, ``nn.LSTM``, same gate order; the GRU is the
cuDNN variant, where r multiplies ``W_hn h + b_hn`` rather than h before its product): ``forward`` runs the fused
kernels and ``step`` writes the same map out (they agree to float rounding). The UGRNN is written out.
**State**: ``h`` (``D = n_units``), and for the LSTM the concatenation ``[h, c]`` (``D = 2·n_units``), both in
``Rollout.states`` and in ``step``; the readout ``o = W_out h + b_out`` reads ``h``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ratenets import Rollout, _validate, register_model
from ratenets.rate_rnn import MAX_CHANNELS, MAX_UNITS

ARCHITECTURES = ("vanilla", "gru", "lstm", "ugrnn")
N_GATES = {"vanilla": 1, "gru": 3, "lstm": 4, "ugrnn": 2}  # N-row blocks of the input and recurrent weights
RECURRENT_INITS = ("orthogonal", "normal", "uniform")
_STOCK = {"vanilla": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def check_architecture(name) -> None:
    """One line naming the known architectures when ``name`` is not one of them."""
    if name not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {name!r}")


@dataclass(frozen=True)
class BaselineRNNConfig:
    """One network of the family. ``recurrent_init``: each ``N×N`` block of the recurrent weights orthogonal
    (scaled by ``recurrent_gain``; the default: memory survives from the first update), ``normal``
    (N(0, gain²/N)) or ``uniform`` (PyTorch's U(±1/√N), times the gain). Input weights are N(0, 1/n_inputs), the
    readout N(0, 1/N), biases zero except ``gate_bias`` on the gate that keeps the state (the LSTM's forget
    gate, the GRU's update gate z, the UGRNN's g; ignored by the vanilla RNN). ``dt_ms`` is the task's step:
    it labels time, the map itself is discrete."""

    architecture: str = "gru"
    n_units: int = 64
    n_inputs: int = 1
    n_outputs: int = 1
    dt_ms: float = 5.0
    recurrent_init: str = "orthogonal"
    recurrent_gain: float = 1.0
    gate_bias: float = 0.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Range checks; run on construction (and by ``dataclasses.replace``), so a config that exists is valid."""
        check_architecture(self.architecture)
        _validate.integer("n_units", self.n_units, 1, MAX_UNITS)
        _validate.integer("n_inputs", self.n_inputs, 1, MAX_CHANNELS)
        _validate.integer("n_outputs", self.n_outputs, 1, MAX_CHANNELS)
        _validate.real("dt_ms", self.dt_ms, 0, open_low=True)
        _validate.choice("recurrent_init", self.recurrent_init, RECURRENT_INITS)
        _validate.real("recurrent_gain", self.recurrent_gain, 0)
        _validate.real("gate_bias", self.gate_bias, -10, 10)


def _recurrent_block(cfg: BaselineRNNConfig, g: torch.Generator) -> torch.Tensor:
    n = cfg.n_units
    if cfg.recurrent_init == "orthogonal":
        q, r = torch.linalg.qr(torch.randn(n, n, generator=g))
        w = q * torch.sign(torch.diagonal(r))  # Haar-distributed (Mezzadri 2007)
    elif cfg.recurrent_init == "normal":
        w = torch.randn(n, n, generator=g) / math.sqrt(n)
    else:
        w = (2 * torch.rand(n, n, generator=g) - 1) / math.sqrt(n)
    return cfg.recurrent_gain * w


@register_model
class BaselineRNN(nn.Module):
    """A vanilla RNN, GRU, LSTM or UGRNN (``cfg.architecture``) with a linear readout of ``h``.

    ``forward(inputs [B,T,I], x0 [B,D] = zeros) -> Rollout(outputs [B,T,O], states [B,T,D])``;
    ``step(x [..,D], u [..,I]) -> x'`` is the same map one step at a time; ``n_state`` is ``D``."""

    config_class = BaselineRNNConfig

    def __init__(self, cfg: BaselineRNNConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        arch, n, k = cfg.architecture, cfg.n_units, N_GATES[cfg.architecture]
        g = torch.Generator().manual_seed(seed)
        w_ih = torch.randn(k * n, cfg.n_inputs, generator=g) / math.sqrt(cfg.n_inputs)
        w_hh = torch.cat([_recurrent_block(cfg, g) for _ in range(k)])
        bias = torch.zeros(k * n)
        keep = {"lstm": 1, "gru": 1, "ugrnn": 0}.get(arch)  # the block of the gate that keeps the state
        if keep is not None:
            bias[keep * n : (keep + 1) * n] = cfg.gate_bias
        if arch in _STOCK:
            # Built on the meta device: the stock constructor's own random init would draw from the global RNG.
            self.core = _STOCK[arch](cfg.n_inputs, n, batch_first=True, device="meta").to_empty(device="cpu")
            with torch.no_grad():
                self.core.weight_ih_l0.copy_(w_ih)
                self.core.weight_hh_l0.copy_(w_hh)
                self.core.bias_ih_l0.copy_(bias)
                self.core.bias_hh_l0.zero_()
        else:
            self.weight_ih = nn.Parameter(w_ih)
            self.weight_hh = nn.Parameter(w_hh)
            self.bias = nn.Parameter(bias)
        self.w_out = nn.Parameter(torch.randn(cfg.n_outputs, n, generator=g) / math.sqrt(n))
        self.b_out = nn.Parameter(torch.zeros(cfg.n_outputs))

    @property
    def n_state(self) -> int:
        return 2 * self.cfg.n_units if self.cfg.architecture == "lstm" else self.cfg.n_units

    def readout(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of states ``x [..,D]`` (the ``h`` part)."""
        return F.linear(x[..., : self.cfg.n_units], self.w_out, self.b_out)

    def _weights(self):
        if self.cfg.architecture == "ugrnn":
            return self.weight_ih, self.weight_hh, self.bias, None
        c = self.core
        return c.weight_ih_l0, c.weight_hh_l0, c.bias_ih_l0, c.bias_hh_l0

    def step(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The next state (equations in the module docstring); pure: nothing is kept on the module."""
        arch, n = self.cfg.architecture, self.cfg.n_units
        w_ih, w_hh, b_ih, b_hh = self._weights()
        h = x[..., :n]
        gi = F.linear(u, w_ih, b_ih)
        gh = F.linear(h, w_hh, b_hh)
        if arch == "vanilla":
            return torch.tanh(gi + gh)
        if arch == "gru":
            i_r, i_z, i_n = gi.chunk(3, dim=-1)
            h_r, h_z, h_n = gh.chunk(3, dim=-1)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            return torch.lerp(torch.tanh(i_n + r * h_n), h, z)  # (1 - z)·n + z·h
        if arch == "lstm":
            i, f, g, o = (gi + gh).chunk(4, dim=-1)
            c = torch.sigmoid(f) * x[..., n:] + torch.sigmoid(i) * torch.tanh(g)
            return torch.cat([torch.sigmoid(o) * torch.tanh(c), c], dim=-1)
        a_g, a_c = (gi + gh).chunk(2, dim=-1)
        return torch.lerp(torch.tanh(a_c), h, torch.sigmoid(a_g))  # g·h + (1 - g)·c

    def forward(self, inputs: torch.Tensor, x0: torch.Tensor | None = None) -> Rollout:
        arch, n = self.cfg.architecture, self.cfg.n_units
        batch = inputs.shape[0]
        x = inputs.new_zeros(batch, self.n_state) if x0 is None else x0
        if arch == "ugrnn":
            drive_in = F.linear(inputs, self.weight_ih, self.bias).unbind(dim=1)  # unbind: see RateRNN.forward
            h, states = x, []
            for t in range(inputs.shape[1]):
                a_g, a_c = torch.addmm(drive_in[t], h, self.weight_hh.T).chunk(2, dim=-1)
                h = torch.lerp(torch.tanh(a_c), h, torch.sigmoid(a_g))
                states.append(h)
            states = torch.stack(states, dim=1)
        elif arch == "lstm":
            h0, c0 = x[:, :n].unsqueeze(0).contiguous(), x[:, n:].unsqueeze(0).contiguous()
            hs, _ = self.core(inputs, (h0, c0))
            states = torch.cat([hs, self._lstm_cells(inputs, hs, x[:, :n], x[:, n:])], dim=-1)
        else:
            states, _ = self.core(inputs, x.unsqueeze(0).contiguous())
        return Rollout(self.readout(states), states)

    def _lstm_cells(self, inputs, hs, h0, c0) -> torch.Tensor:
        """The fused LSTM returns every ``h`` but only the last ``c``: the gates of all steps follow from the
        ``h`` of the step before in one batched product, and then ``c' = f ⊙ c + i ⊙ g`` is elementwise."""
        w_ih, w_hh, b_ih, b_hh = self._weights()
        h_prev = torch.cat([h0.unsqueeze(1), hs[:, :-1]], dim=1)
        i, f, g, _ = (F.linear(inputs, w_ih, b_ih) + F.linear(h_prev, w_hh, b_hh)).chunk(4, dim=-1)
        forget, write = torch.sigmoid(f).unbind(dim=1), (torch.sigmoid(i) * torch.tanh(g)).unbind(dim=1)
        c, cells = c0, []
        for t in range(inputs.shape[1]):
            c = torch.addcmul(write[t], forget[t], c)
            cells.append(c)
        return torch.stack(cells, dim=1)

    def config_dict(self) -> dict:
        return asdict(self.cfg)
