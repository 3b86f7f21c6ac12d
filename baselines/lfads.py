"""LFADS, latent factor analysis via dynamical systems (Sussillo et al. 2016; Pandarinath et al. 2018), our own
lean PyTorch version of the architecture of lfads-torch (Sedler & Pandarinath 2023), which cannot be a
dependency (it pins torch 1.13 and numpy < 2).

For spike counts ``x [B,T,N]`` of one trial batch:

    ic encoder  : bidirectional GRU over x; its two final states -> q(g0) = N(μ, σ²)
    ci encoder  : bidirectional GRU over x, its outputs e_t feed the controller (only when co_dim > 0)
    controller  : c_t = GRU(c_{t-1}, [e_t, f_{t-1}]);  q(u_t) = N(μ_t, σ_t²) from c_t
    generator   : g_t = clip(GRU(g_{t-1}, u_t), ±cell_clip),  g_0 ~ q(g0)
    factors     : f_t = W_f g_t, each row of W_f of unit norm, no bias
    log-rates   : log λ_t = W_r f_t + b_r;  x_t ~ Poisson(λ_t)  (λ in spikes per bin)

Loss (per trial): Poisson negative log-likelihood + w_kl(step) · (KL(q(g0) ‖ N(m, ic_prior_var)) +
KL(q(u) ‖ AR(1))), the prior mean ``m`` learned, the AR(1) prior of the inferred inputs with learned time
constant and variance (started at ``co_prior_tau_bins``, ``co_prior_var``); ``w_kl`` ramps linearly from 0
to 1 over ``kl_ramp_steps``. Coordinated dropout (Keshtkaran & Pandarinath 2019): each step a fraction
``cd_rate`` of the input entries is zeroed (the rest scaled by ``1/(1 - cd_rate)``) and the likelihood is
counted only on the zeroed entries, so the model cannot learn to copy its input to its output.

The ``LFADS`` module keeps the project's model contract: ``model(spikes) -> Rollout(outputs = factors,
states = generator states, rates = rates)`` (eval mode: posterior means, no sampling), and ``step(g, u)``
is the generator's map, so ``fixedpoints.find(model, generator_states)`` finds the fixed points of the
generator at zero inferred input. ``fit`` trains it by the project's conventions (resumable weights-only
checkpoints, a NaN guard, explicit generators); ``LFADSResult.infer`` runs it on new trials.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from ratenets import Rollout, TrainingDiverged, _validate, register_model, resolve_device, seeds
from ratenets.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

MAX_WIDTH = 100_000


@dataclass(frozen=True)
class LFADSConfig:
    """Sizes and priors. Defaults are lfads-torch's for NLB MC_Maze (gen 200, factors 100, encoders 64,
    controller 64, co_dim 4, dropout 0.3, cell clip 5); ``co_dim = 0`` drops the controller and its encoder
    (an autonomous generator, enough for the Lorenz data). ``n_neurons`` and ``n_bins`` come from the data."""

    n_neurons: int = 100
    n_bins: int = 100
    dt_ms: float = 10.0
    ic_enc_dim: int = 64
    ci_enc_dim: int = 64
    con_dim: int = 64
    co_dim: int = 4
    gen_dim: int = 200
    fac_dim: int = 100
    dropout: float = 0.3
    cell_clip: float = 5.0
    ic_prior_var: float = 0.1
    co_prior_tau_bins: float = 10.0
    co_prior_var: float = 0.1

    def __post_init__(self) -> None:
        for name in ("n_neurons", "n_bins", "ic_enc_dim", "ci_enc_dim", "con_dim", "gen_dim", "fac_dim"):
            _validate.integer(name, getattr(self, name), 1, MAX_WIDTH)
        _validate.integer("co_dim", self.co_dim, 0, MAX_WIDTH)
        _validate.real("dt_ms", self.dt_ms, 0, open_low=True)
        _validate.real("dropout", self.dropout, 0, 1, open_high=True)
        for name in ("cell_clip", "ic_prior_var", "co_prior_tau_bins", "co_prior_var"):
            _validate.real(name, getattr(self, name), 0, open_low=True)


@dataclass(frozen=True)
class LFADSTrainConfig:
    """AdamW (lfads-torch: lr 4e-3), ``n_steps`` updates on random batches of ``batch_size`` training trials,
    the learning rate times ``lr_decay`` every ``lr_decay_every`` steps; the KL weight ramps in over
    ``kl_ramp_steps``; the validation loss is computed every ``eval_every`` steps, a checkpoint written every
    ``checkpoint_every``."""

    n_steps: int = 2000
    batch_size: int = 64
    lr: float = 4e-3
    lr_decay: float = 1.0
    lr_decay_every: int = 1000
    weight_decay: float = 0.0
    grad_clip: float = 200.0
    cd_rate: float = 0.3
    kl_ramp_steps: int = 500
    kl_scale: float = 1.0
    l2_gen_scale: float = 0.0
    eval_every: int = 50
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        for name in ("n_steps", "batch_size", "lr_decay_every", "eval_every", "checkpoint_every"):
            _validate.integer(name, getattr(self, name), 1, 10_000_000)
        _validate.integer("kl_ramp_steps", self.kl_ramp_steps, 0, 10_000_000)
        _validate.real("lr", self.lr, 0, open_low=True)
        _validate.real("lr_decay", self.lr_decay, 0, 1, open_low=True)
        for name in ("weight_decay", "grad_clip", "kl_scale", "l2_gen_scale"):
            _validate.real(name, getattr(self, name), 0)
        _validate.real("cd_rate", self.cd_rate, 0, 1, open_high=True)


@dataclass(frozen=True)
class LFADSFitConfig:
    """What ``fit`` takes: the model (``n_neurons``, ``n_bins`` set from the data) and its training."""

    model: LFADSConfig = field(default_factory=LFADSConfig)
    train: LFADSTrainConfig = field(default_factory=LFADSTrainConfig)

    @classmethod
    def from_dict(cls, d: dict | None) -> LFADSFitConfig:
        """From a plain dict (a YAML file's ``{model: {...}, train: {...}}``); an unknown key or a bad value is
        one ``ValueError`` line naming it."""
        d = dict(d or {})
        unknown = set(d) - {"model", "train"}
        if unknown:
            raise ValueError(f"LFADS config: unknown key {sorted(unknown)[0]!r}; allowed: model, train")
        parts = {}
        for key, klass in (("model", LFADSConfig), ("train", LFADSTrainConfig)):
            sub = d.get(key) or {}
            if not isinstance(sub, dict):
                raise ValueError(f"LFADS config key {key} must be a mapping, got {sub!r}")
            allowed = {f.name for f in fields(klass)}
            bad = set(sub) - allowed
            if bad:
                raise ValueError(f"LFADS config key {key}.{sorted(bad)[0]} is unknown; "
                                 f"allowed: {', '.join(sorted(allowed))}")
            try:
                parts[key] = klass(**sub)
            except ValueError as e:
                raise ValueError(f"LFADS config key {key}: {e}") from None
        return cls(**parts)


def _gru_step(x, h, w_ih, w_hh, b_ih, b_hh):
    """One GRU step, PyTorch's (cuDNN) form: r multiplies ``W_hn h + b_hn``."""
    i_r, i_z, i_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
    return torch.lerp(torch.tanh(i_n + r * h_n), h, z)


def _kl_diag_normal(mean, logvar, prior_mean, prior_logvar) -> torch.Tensor:
    """KL(N(mean, e^logvar) ‖ N(prior_mean, e^prior_logvar)), summed over the last axis."""
    return 0.5 * (prior_logvar - logvar + (logvar.exp() + (mean - prior_mean) ** 2) / prior_logvar.exp()
                  - 1).sum(-1)


@register_model
class LFADS(nn.Module):
    """The LFADS model (equations in the module docstring); parameters only, no state kept between calls.

    ``forward(spikes [B,T,N], generator=None) -> Rollout(outputs = factors [B,T,F], states = generator
    states [B,T,G], rates = λ [B,T,N] in spikes per bin)``; in training mode the posterior is sampled with
    ``generator``, in eval mode its means are used. ``step(g [..,G], u [..,co_dim or 1]) -> g'`` is the
    generator (``n_state = gen_dim``; ``n_inputs`` its input width, 1 and ignored when ``co_dim = 0``)."""

    config_class = LFADSConfig

    def __init__(self, cfg: LFADSConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        c = cfg
        u_dim = max(c.co_dim, 1)
        # Built on the meta device and filled from our own generator: stock constructors would draw from the
        # global RNG.
        with torch.device("meta"):
            self.ic_enc = nn.GRU(c.n_neurons, c.ic_enc_dim, batch_first=True, bidirectional=True)
            self.ic_linear = nn.Linear(2 * c.ic_enc_dim, 2 * c.gen_dim)
            if c.co_dim > 0:
                self.ci_enc = nn.GRU(c.n_neurons, c.ci_enc_dim, batch_first=True, bidirectional=True)
                self.con = nn.GRUCell(2 * c.ci_enc_dim + c.fac_dim, c.con_dim)
                self.co_linear = nn.Linear(c.con_dim, 2 * c.co_dim)
            self.gen = nn.GRU(u_dim, c.gen_dim, batch_first=True)
            self.readout = nn.Linear(c.fac_dim, c.n_neurons)
        self.to_empty(device="cpu")
        self.fac_weight = nn.Parameter(torch.empty(c.fac_dim, c.gen_dim))
        self.ic_prior_mean = nn.Parameter(torch.zeros(c.gen_dim))
        self.con_h0 = nn.Parameter(torch.zeros(c.con_dim)) if c.co_dim > 0 else None
        if c.co_dim > 0:
            self.co_prior_log_tau = nn.Parameter(torch.full((c.co_dim,), math.log(c.co_prior_tau_bins)))
            self.co_prior_log_var = nn.Parameter(torch.full((c.co_dim,), math.log(c.co_prior_var)))
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name in ("ic_prior_mean", "con_h0", "co_prior_log_tau", "co_prior_log_var"):
                    continue
                if name.startswith("bias") or ".bias" in name:
                    p.zero_()
                else:  # PyTorch's default scale, U(±1/√fan_in), drawn from our generator
                    p.copy_((2 * torch.rand(p.shape, generator=g) - 1) / math.sqrt(p.shape[-1]))
            self.fac_weight.copy_(torch.randn(c.fac_dim, c.gen_dim, generator=g))
            self.readout.bias.fill_(math.log(0.1))  # a typical count per bin; learnt from there

    @property
    def n_state(self) -> int:
        return self.cfg.gen_dim

    @property
    def n_inputs(self) -> int:
        return max(self.cfg.co_dim, 1)

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def factors_of(self, g: torch.Tensor) -> torch.Tensor:
        """Factors of generator states: rows of ``W_f`` normalised to unit length, no bias."""
        return F.linear(g, F.normalize(self.fac_weight, dim=1))

    def log_rates_of(self, factors: torch.Tensor) -> torch.Tensor:
        return self.readout(factors)

    def step(self, g: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """The generator's next state (input ``u`` ignored when ``co_dim = 0``), clipped at ``±cell_clip``."""
        if self.cfg.co_dim == 0:
            u = torch.zeros_like(u[..., :1])
        gen = self.gen
        h = _gru_step(u, g, gen.weight_ih_l0, gen.weight_hh_l0, gen.bias_ih_l0, gen.bias_hh_l0)
        return h.clamp(-self.cfg.cell_clip, self.cfg.cell_clip)

    def _drop(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Dropout in training mode, its mask drawn from ``generator`` (the global RNG only when None)."""
        p = self.cfg.dropout
        if not self.training or p == 0:
            return x
        if generator is None:
            return F.dropout(x, p, training=True)
        keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= p
        return x * keep / (1 - p)

    def _sample(self, mean, logvar, generator):
        if not self.training:
            return mean
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + (0.5 * logvar).exp() * eps

    def encode_ic(self, spikes: torch.Tensor, generator: torch.Generator | None = None):
        _, h_n = self.ic_enc(self._drop(spikes, generator))  # h_n [2,B,E]: forward and backward final states
        h = self._drop(torch.cat([h_n[0], h_n[1]], dim=-1), generator)
        mean, logvar = self.ic_linear(h).chunk(2, dim=-1)
        return mean, logvar.clamp(-10, 10)

    def run(self, spikes: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Everything of one pass: ``g0`` posterior, generator states, factors, log-rates, inferred inputs and
        their posterior (``co_mean``, ``co_logvar`` ``[B,T,co_dim]``)."""
        c = self.cfg
        spikes = spikes.to(self.fac_weight.dtype)
        batch, n_bins = spikes.shape[:2]
        ic_mean, ic_logvar = self.encode_ic(spikes, generator)
        g0 = self._sample(ic_mean, ic_logvar, generator).clamp(-c.cell_clip, c.cell_clip)
        out = {"ic_mean": ic_mean, "ic_logvar": ic_logvar, "g0": g0}
        if c.co_dim == 0:
            # An autonomous GRU from |g0| <= clip never leaves [-clip, clip] (each step mixes g with tanh in
            # (-1, 1)), so the fused kernel equals the clipped cell.
            zeros = spikes.new_zeros(batch, n_bins, 1)
            states, _ = self.gen(zeros, g0.unsqueeze(0).contiguous())
            inputs = spikes.new_zeros(batch, n_bins, 0)
            co_mean = co_logvar = inputs
        else:
            ci, _ = self.ci_enc(self._drop(spikes, generator))
            ci = self._drop(ci, generator).unbind(dim=1)
            gen = self.gen
            con_h = self.con_h0.expand(batch, -1)
            w_fac = F.normalize(self.fac_weight, dim=1)  # once per pass, not once per bin
            g, f = g0, F.linear(self._drop(g0, generator), w_fac)
            states, inputs, means, logvars = [], [], [], []
            for t in range(n_bins):
                con_h = self.con(torch.cat([ci[t], f], dim=-1), con_h).clamp(-c.cell_clip, c.cell_clip)
                mean, logvar = self.co_linear(self._drop(con_h, generator)).chunk(2, dim=-1)
                logvar = logvar.clamp(-10, 10)
                u = self._sample(mean, logvar, generator)
                g = _gru_step(u, g, gen.weight_ih_l0, gen.weight_hh_l0, gen.bias_ih_l0, gen.bias_hh_l0)
                g = g.clamp(-c.cell_clip, c.cell_clip)
                f = F.linear(self._drop(g, generator), w_fac)
                states.append(g)
                inputs.append(u)
                means.append(mean)
                logvars.append(logvar)
            states, inputs = torch.stack(states, dim=1), torch.stack(inputs, dim=1)
            co_mean, co_logvar = torch.stack(means, dim=1), torch.stack(logvars, dim=1)
        factors = self.factors_of(self._drop(states, generator))
        out.update(states=states, factors=factors, log_rates=self.log_rates_of(factors), inputs=inputs,
                   co_mean=co_mean, co_logvar=co_logvar)
        return out

    def forward(self, spikes: torch.Tensor, generator: torch.Generator | None = None) -> Rollout:
        out = self.run(spikes, generator)
        return Rollout(out["factors"], out["states"], rates=out["log_rates"].exp())

    def kl(self, out: dict) -> torch.Tensor:
        """KL of the posteriors against the priors, per trial ``[B]``."""
        c = self.cfg
        prior_logvar = torch.full_like(self.ic_prior_mean, math.log(c.ic_prior_var))
        kl = _kl_diag_normal(out["ic_mean"], out["ic_logvar"], self.ic_prior_mean, prior_logvar)
        if c.co_dim > 0:
            kl = kl + self._kl_ar1(out)
        return kl

    def _kl_ar1(self, out: dict) -> torch.Tensor:
        """Monte-Carlo KL of the inferred inputs against the AR(1) prior ``u_t = a u_{t-1} + ε``, ``a =
        exp(-1/τ)``, stationary variance ``v`` (so ``ε ~ N(0, v(1 - a²))``, ``u_1 ~ N(0, v)``)."""
        u, mean, logvar = out["inputs"], out["co_mean"], out["co_logvar"]
        a = torch.exp(-1.0 / self.co_prior_log_tau.exp())
        log_v = self.co_prior_log_var
        log_p = torch.empty_like(u)
        log_p[:, :1] = -0.5 * (math.log(2 * math.pi) + log_v + u[:, :1] ** 2 / log_v.exp())
        innov_logvar = log_v + torch.log1p(-a**2)
        resid = u[:, 1:] - a * u[:, :-1]
        log_p[:, 1:] = -0.5 * (math.log(2 * math.pi) + innov_logvar + resid**2 / innov_logvar.exp())
        log_q = -0.5 * (math.log(2 * math.pi) + logvar + (u - mean) ** 2 / logvar.exp())
        return (log_q - log_p).sum(dim=(1, 2))


@dataclass
class LFADSOutput:
    """Inferred on a set of trials: ``rates [trials,bins,neurons]`` (spikes per bin), ``factors``,
    ``generator_states``, ``inputs`` (the inferred inputs, ``[trials,bins,co_dim]``)."""

    rates: torch.Tensor
    factors: torch.Tensor
    generator_states: torch.Tensor
    inputs: torch.Tensor


@dataclass
class LFADSResult:
    """A fitted model and what it infers on the training trials (eval mode: posterior means)."""

    model: LFADS
    history: dict
    rates: torch.Tensor
    factors: torch.Tensor
    generator_states: torch.Tensor
    inputs: torch.Tensor
    seconds: float = 0.0
    resumed_from: int | None = None

    def infer(self, spikes, batch_size: int = 256) -> LFADSOutput:
        """Rates, factors, generator states and inputs of new trials ``spikes [trials,bins,neurons]``."""
        return infer(self.model, spikes, batch_size)


def check_spikes(spikes, name: str = "spikes", n_bins: int | None = None, n_neurons: int | None = None
                 ) -> torch.Tensor:
    """``spikes`` as a float tensor of counts; anything else is one ``ValueError`` line."""
    try:
        x = torch.as_tensor(spikes)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{name} must be an array of spike counts [trials, bins, neurons] ({e})") from None
    if x.ndim != 3:
        raise ValueError(f"{name} must be [trials, bins, neurons], got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} holds no trials")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer spike counts, got dtype {x.dtype}")
    xf = x.double()
    if not torch.isfinite(xf).all():
        raise ValueError(f"{name} holds {int((~torch.isfinite(xf)).sum())} NaN or infinite entries")
    if (xf < 0).any():
        raise ValueError(f"{name} holds negative counts (minimum {float(xf.min())}); spike counts are >= 0")
    if (xf != xf.round()).any():
        raise ValueError(f"{name} holds non-integer counts (e.g. {float(xf[xf != xf.round()][0])}); "
                         "LFADS fits Poisson counts per bin")
    if n_bins is not None and x.shape[1] != n_bins:
        raise ValueError(f"{name} has {x.shape[1]} bins; the model was fitted to {n_bins}")
    if n_neurons is not None and x.shape[2] != n_neurons:
        raise ValueError(f"{name} has {x.shape[2]} neurons; the model was fitted to {n_neurons}")
    return x.float()


@torch.no_grad()
def infer(model: LFADS, spikes, batch_size: int = 256) -> LFADSOutput:
    """Run a fitted ``model`` (eval mode, posterior means) on ``spikes``, in batches; results on the CPU."""
    x = check_spikes(spikes, n_bins=model.cfg.n_bins, n_neurons=model.cfg.n_neurons)
    was_training = model.training
    model.eval()
    device = model.fac_weight.device
    parts = []
    try:
        for chunk in x.split(batch_size):
            out = model.run(chunk.to(device))
            parts.append({k: out[k].cpu() for k in ("log_rates", "factors", "states", "inputs")})
    finally:
        model.train(was_training)
    cat = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    return LFADSOutput(cat["log_rates"].exp(), cat["factors"], cat["states"], cat["inputs"])


def _as_fit_config(cfg) -> LFADSFitConfig:
    if cfg is None:
        return LFADSFitConfig()
    if isinstance(cfg, LFADSFitConfig):
        return cfg
    if isinstance(cfg, dict):
        return LFADSFitConfig.from_dict(cfg)
    raise TypeError(f"cfg must be an LFADSFitConfig, a dict or None, got {type(cfg).__name__}")


def loss_terms(model: LFADS, spikes: torch.Tensor, cd_rate: float, generator: torch.Generator) -> dict:
    """Poisson NLL (on the coordinated-dropout entries when ``cd_rate > 0``) and KL, each per trial."""
    if cd_rate > 0:
        keep = torch.rand(spikes.shape, generator=generator, device=spikes.device) >= cd_rate
        out = model.run(spikes * keep / (1 - cd_rate), generator)
        weight = (~keep).to(spikes.dtype) / cd_rate  # unbiased for the full likelihood
    else:
        out = model.run(spikes, generator)
        weight = torch.ones_like(spikes)
    nll = F.poisson_nll_loss(out["log_rates"], spikes, log_input=True, full=False, reduction="none")
    return {"nll": (weight * nll).sum(dim=(1, 2)), "kl": model.kl(out), "out": out}


@torch.no_grad()
def validation_nll(model: LFADS, spikes: torch.Tensor, batch_size: int = 256) -> float:
    """Poisson NLL per trial of ``spikes`` under the posterior-mean rates (eval mode, no dropout)."""
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for chunk in spikes.split(batch_size):
            out = model.run(chunk)
            nll = F.poisson_nll_loss(out["log_rates"], chunk, log_input=True, full=False, reduction="sum")
            total += float(nll)
    finally:
        model.train(was_training)
    return total / len(spikes)


def fit(spikes, cfg=None, *, valid_spikes=None, device="auto", seed: int = 0, checkpoint=None,
        progress: bool = False, callback=None) -> LFADSResult:
    """Fit LFADS to ``spikes [trials, bins, neurons]`` (integer counts).

    ``cfg``: an ``LFADSFitConfig``, its dict form, or None (defaults); the model's ``n_neurons``/``n_bins``
    are set from ``spikes``. ``valid_spikes``: trials whose loss is tracked in ``history["valid_nll"]`` (they
    choose nothing). ``checkpoint``: a path; an unfinished fit there is resumed, a finished one loaded, one of
    other settings refused. ``callback(step, model) -> bool`` runs at each evaluation; True stops the fit.
    Random batches, dropout masks and posterior samples come from ``seeds.stream(seed, seeds.TRAINING)``.
    """
    started = time.perf_counter()
    fit_cfg = _as_fit_config(cfg)
    x = check_spikes(spikes)
    tc = fit_cfg.train
    model_cfg = replace(fit_cfg.model, n_bins=x.shape[1], n_neurons=x.shape[2])
    if x.shape[0] < tc.batch_size:
        raise ValueError(f"spikes hold {x.shape[0]} trials, fewer than the batch size {tc.batch_size}; "
                         "lower train.batch_size or give more trials")
    valid = None
    if valid_spikes is not None:
        valid = check_spikes(valid_spikes, "valid_spikes", n_bins=x.shape[1], n_neurons=x.shape[2])
    dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model = LFADS(model_cfg, seed=seed)
    with torch.no_grad():  # start the rates at each neuron's mean count (a checkpoint, if any, replaces it)
        model.readout.bias.copy_(x.mean(dim=(0, 1)).clamp_min(1e-3).log())
    model = model.to(dev).train()
    x = x.to(dev)
    valid = valid.to(dev) if valid is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, tc.lr_decay_every, gamma=tc.lr_decay)
    gen = seeds.stream(seed, seeds.TRAINING, dev)
    history = {"step": [], "loss": [], "nll": [], "kl": [], "eval_step": [], "valid_nll": []}
    step, resumed_from = 0, None
    path = Path(checkpoint) if checkpoint is not None else None

    if path is not None and path.exists():
        ckpt = load_checkpoint(path)
        _check_same_fit(ckpt, model, tc, seed, path)
        model.load_state_dict(ckpt["model_state"])
        history, step = ckpt["history"], ckpt["step"]
        if not (ckpt.get("done") and step >= tc.n_steps):
            opt.load_state_dict(ckpt["optimizer_state"])
            sched.load_state_dict(ckpt["scheduler_state"])
            if ckpt.get("rng_device") == gen.device.type:
                gen.set_state(ckpt["rng"])
        resumed_from = step

    def save(done: bool) -> None:
        if path is not None:
            save_checkpoint(path, model, optimizer_state=opt.state_dict(), scheduler_state=sched.state_dict(),
                            step=step, done=done, history=history, rng=gen.get_state(), rng_device=gen.device.type,
                            train_config=asdict(tc), seed=seed)

    bar = tqdm(total=tc.n_steps, initial=step, disable=None if progress else True, desc="fit LFADS")
    stop = False
    while step < tc.n_steps and not stop:
        index = torch.randint(x.shape[0], (tc.batch_size,), generator=gen, device=dev)
        terms = loss_terms(model, x[index], tc.cd_rate, gen)
        kl_weight = tc.kl_scale * (min(1.0, step / tc.kl_ramp_steps) if tc.kl_ramp_steps else 1.0)
        nll, kl = terms["nll"].mean(), terms["kl"].mean()
        loss = nll + kl_weight * kl
        if tc.l2_gen_scale > 0:
            loss = loss + tc.l2_gen_scale * model.gen.weight_hh_l0.pow(2).sum()
        value = float(loss.detach())
        if not math.isfinite(value):
            bar.close()
            kept = f"last good checkpoint kept: {path}" if path is not None and path.exists() else \
                "no checkpoint was written yet"
            raise TrainingDiverged(f"LFADS loss became {value} at step {step + 1}; {kept}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        history["step"].append(step)
        history["loss"].append(value)
        history["nll"].append(float(nll.detach()))
        history["kl"].append(float(kl.detach()))
        if step % tc.eval_every == 0 or step == tc.n_steps:
            if valid is not None:
                history["eval_step"].append(step)
                history["valid_nll"].append(validation_nll(model, valid))
                bar.set_postfix(loss=f"{value:.1f}", valid_nll=f"{history['valid_nll'][-1]:.1f}")
            if callback is not None:
                stop = bool(callback(step, model))
        if stop or step == tc.n_steps:
            save(done=True)
        elif step % tc.checkpoint_every == 0:
            save(done=False)
    bar.close()
    model.eval()
    out = infer(model, x)
    return LFADSResult(model, history, out.rates, out.factors, out.generator_states, out.inputs,
                       seconds=time.perf_counter() - started, resumed_from=resumed_from)


def _check_same_fit(ckpt: dict, model: LFADS, tc: LFADSTrainConfig, seed: int, path) -> None:
    """Resuming continues one fit: same model class and sizes (the data's bins and neurons included), same
    training settings (longer ``n_steps`` or other ``checkpoint_every`` allowed) and seed."""
    if ckpt.get("model_class") != "LFADS":
        raise CheckpointError(f"checkpoint {path} holds a {ckpt.get('model_class')}, not an LFADS model")
    saved = ckpt.get("model_config", {})
    for key in ("n_bins", "n_neurons"):
        if saved.get(key) != getattr(model.cfg, key):
            raise ValueError(f"spikes have {getattr(model.cfg, key)} {key[2:]}, but the saved model in {path} "
                             f"was fitted to {saved.get(key)}")
    theirs = {**saved, **ckpt.get("train_config", {}), "seed": ckpt.get("seed")}
    ours = {**model.config_dict(), **asdict(tc), "seed": seed}
    changed = [k for k in ours if k in theirs and k not in ("n_steps", "checkpoint_every") and theirs[k] != ours[k]]
    if changed:
        k = changed[0]
        raise CheckpointError(f"checkpoint {path} was written with other settings ({k}: {theirs[k]!r} -> "
                              f"{ours[k]!r}); delete it or fit with the same settings")


def load(path) -> LFADS:
    """A fitted LFADS model from its checkpoint (``weights_only=True``), in eval mode."""
    from ratenets.checkpoint import build_model

    model = build_model(load_checkpoint(path), path)
    if not isinstance(model, LFADS):
        raise CheckpointError(f"checkpoint {path} holds a {type(model).__name__}, not an LFADS model")
    return model.eval()


# --- figures (matplotlib Figure objects: no pyplot, no global state) ---------------------------------------


def plot_fit(history: dict, title: str = "LFADS"):
    """Training loss (Poisson NLL + weighted KL, per trial) and the validation NLL."""
    from matplotlib.figure import Figure

    from ratenets.arrays import to_numpy

    fig = Figure(figsize=(9, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.plot(to_numpy(history["step"]), to_numpy(history["loss"]), lw=0.6, color="0.5")
    ax1.set(xlabel="update", ylabel="loss per trial", title=f"{title}: training loss")
    if history.get("valid_nll"):
        ax2.plot(to_numpy(history["eval_step"]), to_numpy(history["valid_nll"]), "o-", ms=3)
    ax2.set(xlabel="update", ylabel="NLL per trial", title="validation (posterior means)")
    fig.tight_layout()
    return fig


def plot_rates(inferred, true, spikes=None, *, dt_ms: float = 10.0, trial: int = 0, neurons=(0, 1, 2, 3),
               title: str = ""):
    """Inferred against true rates (spikes per bin) of a few neurons on one trial, spikes as ticks."""
    from matplotlib.figure import Figure

    from ratenets.arrays import to_numpy

    inferred, true = to_numpy(inferred)[trial], to_numpy(true)[trial]
    neurons = [n for n in neurons if n < inferred.shape[-1]]
    t = (to_numpy(range(inferred.shape[0])) + 0.5) * dt_ms
    fig = Figure(figsize=(9, 1.6 * len(neurons) + 0.6))
    axes = fig.subplots(len(neurons), 1, sharex=True, squeeze=False)[:, 0]
    for ax, n in zip(axes, neurons):
        ax.plot(t, true[:, n], color="k", lw=1.2, label="true")
        ax.plot(t, inferred[:, n], color="C3", lw=1.2, label="LFADS")
        if spikes is not None:
            counts = to_numpy(spikes)[trial][:, n]
            hit = counts > 0
            ax.plot(t[hit], 0 * t[hit], "|", color="0.5", ms=6)
        ax.set_ylabel(f"n{n}")
    axes[0].legend(loc="upper right", fontsize=8, frameon=False)
    axes[0].set_title(title or "rates (spikes per bin)", fontsize=10)
    axes[-1].set_xlabel("time (ms)")
    fig.tight_layout()
    return fig
