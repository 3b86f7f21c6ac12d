"""The transferred LIF network as a model (Kim et al. 2019): ``LIFNetworkConfig`` says what it is, ``LIFNetwork``
holds its weights and runs ``spiking.simulate`` on a batch. The physics is ``spiking.lif``; the mapping from a
rate network is ``transfer.rate_to_lif``. Registered with ``ratenets.register_model``, so a checkpoint written
with ``ratenets.save_checkpoint`` rebuilds with ``ratenets.load_model``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass

import torch
from torch import nn

from ratenets.checkpoint import register_model
from ratenets.rollout import Rollout

from .lif import LIFParams
from .simulate import simulate, warmup_steps


@dataclass(frozen=True)
class LIFNetworkConfig:
    """Shapes, neuron parameters and protocol of a transferred LIF network; validated on construction.

    ``rate_dt_ms`` is the rate network's step (one input value per rate step; a whole multiple of
    ``params.lif_dt_ms``), ``scale_factor`` is λ (the weights are already divided by it), ``warmup_ms`` the
    zero-input time run before each trial and not recorded (``spiking.simulate.warmup_steps``). ``params`` may be
    given as a dict (as a checkpoint stores it)."""

    n_units: int
    n_inputs: int
    n_outputs: int
    params: LIFParams
    rate_dt_ms: float
    scale_factor: float
    warmup_ms: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.params, dict):
            object.__setattr__(self, "params", LIFParams(**self.params))
        if not isinstance(self.params, LIFParams):
            raise ValueError(f"LIFNetworkConfig.params must be a LIFParams, got {type(self.params).__name__}")
        for name in ("n_units", "n_inputs", "n_outputs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LIFNetworkConfig.{name} must be an integer >= 1, got {value!r}")
        for name in ("rate_dt_ms", "scale_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"LIFNetworkConfig.{name} must be a finite number > 0, got {value!r}")
        self.params.substeps(self.rate_dt_ms)
        warmup_steps(self.warmup_ms, self.rate_dt_ms)

    def config_dict(self) -> dict:
        """Plain data (``params`` as a dict); ``LIFNetworkConfig(**cfg.config_dict()) == cfg``."""
        return {**asdict(self), "params": asdict(self.params)}


def _tensor(name: str, value, shape: tuple[int, ...]) -> torch.Tensor:
    if not torch.is_tensor(value):
        raise ValueError(f"{name} must be a tensor, got {type(value).__name__}")
    if tuple(value.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(value.shape)}")
    return value.detach().clone()


@register_model
class LIFNetwork(nn.Module):
    """A transferred LIF network (thin: weights and a config; the dynamics live in ``spiking.lif.lif_step`` and
    ``spiking.simulate.simulate``). Built by ``transfer.rate_to_lif`` through ``LIFNetwork.from_weights``.

    Buffers: ``w_rec [N,N]`` (post, pre) and ``w_out [O,N]`` already divided by ``scale_factor``,
    ``w_in [N,I]``, ``tau_d_ms [N]``, ``b_out [O]`` (zero unless the mapping kept the rate readout's bias).
    ``LIFNetwork(cfg)`` holds zeros of those shapes until ``load_state_dict`` fills them (checkpoints).
    ``rate_net`` is the source rate network when known (its smooth dynamics are the surrogate the fixed-point
    analyses use); it is not part of the module tree, so moving or saving the LIF net never touches it.
    """

    config_class = LIFNetworkConfig

    def __init__(self, cfg: LIFNetworkConfig, seed: int = 0):
        super().__init__()
        del seed  # nothing random to initialise; the argument is the registry's constructor contract
        self.cfg = cfg
        n, i, o = cfg.n_units, cfg.n_inputs, cfg.n_outputs
        self.register_buffer("w_rec", torch.zeros(n, n))
        self.register_buffer("w_in", torch.zeros(n, i))
        self.register_buffer("w_out", torch.zeros(o, n))
        self.register_buffer("tau_d_ms", torch.zeros(n))
        self.register_buffer("b_out", torch.zeros(o))
        self.__dict__["rate_net"] = None

    @classmethod
    def from_weights(
        cls,
        w_rec: torch.Tensor,
        w_in: torch.Tensor,
        w_out: torch.Tensor,
        tau_d_ms: torch.Tensor,
        params: LIFParams,
        rate_dt_ms: float,
        scale_factor: float,
        b_out: torch.Tensor | None = None,
        rate_net: nn.Module | None = None,
        warmup_ms: float = 0.0,
    ) -> LIFNetwork:
        """A network holding copies of the given weights (their device and dtype kept); shapes are checked."""
        if not torch.is_tensor(w_rec) or w_rec.dim() != 2 or not torch.is_tensor(w_in) or w_in.dim() != 2:
            raise ValueError("w_rec [N,N] and w_in [N,I] must be 2-D tensors")
        if not torch.is_tensor(w_out) or w_out.dim() != 2:
            raise ValueError("w_out [O,N] must be a 2-D tensor")
        cfg = LIFNetworkConfig(n_units=w_rec.shape[0], n_inputs=w_in.shape[1], n_outputs=w_out.shape[0],
                               params=params, rate_dt_ms=rate_dt_ms, scale_factor=float(scale_factor),
                               warmup_ms=warmup_ms)
        n, i, o = cfg.n_units, cfg.n_inputs, cfg.n_outputs
        net = cls(cfg)
        net.w_rec = _tensor("w_rec", w_rec, (n, n))
        net.w_in = _tensor("w_in", w_in, (n, i))
        net.w_out = _tensor("w_out", w_out, (o, n))
        net.tau_d_ms = _tensor("tau_d_ms", tau_d_ms, (n,))
        net.b_out = torch.zeros(o).to(w_out) if b_out is None else _tensor("b_out", b_out, (o,))
        net.__dict__["rate_net"] = rate_net
        return net

    @property
    def params(self) -> LIFParams:
        return self.cfg.params

    @property
    def rate_dt_ms(self) -> float:
        return self.cfg.rate_dt_ms

    @property
    def scale_factor(self) -> float:
        return self.cfg.scale_factor

    @property
    def warmup_ms(self) -> float:
        return self.cfg.warmup_ms

    @property
    def n_units(self) -> int:
        return self.cfg.n_units

    def forward(self, inputs: torch.Tensor, generator: torch.Generator | None = None, **kwargs) -> Rollout:
        """Simulate ``inputs [B,T,I]`` (one value per rate step, after ``warmup_ms`` of zero input). Returns
        ``Rollout(outputs [B,T,O], states [B,T,N] filtered rates in Hz, rates (same), spikes [B,T,N] spike
        counts per rate step)``. ``kwargs`` go to ``simulate`` (``kernel``, ``dtype``, ``noise_source``, ``v0``)."""
        res = simulate(self.w_rec, self.w_in, self.w_out, self.tau_d_ms, inputs, self.params,
                       rate_dt_ms=self.rate_dt_ms, warmup_ms=self.warmup_ms, generator=generator, record_rates=True,
                       record_counts=True, **kwargs)
        rates = res.rates[0]
        return Rollout(res.outputs[0] + self.b_out.to(res.outputs), rates, rates=rates, spikes=res.counts[0])

    def config_dict(self) -> dict:
        return self.cfg.config_dict()

    def smooth_surrogate(self) -> nn.Module:
        """The smooth map fixed-point analyses see this network through: the rate network its weights came from
        (Kim et al.'s mapping is linear, so fixed points correspond one to one). Declaring it here also marks
        the network as spiking for ``fixedpoints`` when no rate network is attached (rebuilt from a checkpoint):
        then this raises one ``TypeError`` instead of the spikes being differentiated."""
        if self.rate_net is None:
            raise TypeError(
                "LIFNetwork has no smooth surrogate: it holds no rate network (a network rebuilt from a checkpoint "
                "does not); analyse the rate network it was transferred from, or rebuild it with "
                "transfer.rate_to_lif(rate_net, scale_factor)"
            )
        return self.rate_net
