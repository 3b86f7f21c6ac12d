"""Stage ``lfads``: LFADS (``baselines.lfads``) fitted to spikes whose truth is known, then the fixed points of
its generator at zero inferred input.

Sources (``sources``): ``lif`` and ``lsnn``, the run's own spiking networks, simulated on held-out trials
(their spike counts summed into bins of ``bin_steps`` task steps; ``n_neurons`` units drawn at random are
fitted), scored against each network's own filtered rates (the traces its readout reads: the LIF
network's synaptic filter, the LSNN's readout filter) in spikes per bin; ``rate``, the positive control: the
rate network (whose map has its attractors, found by the fixedpoints stage) read out as Poisson spikes at
``rate_max_hz`` times its units' rates, scored against those expected counts; ``lorenz`` and ``chaotic_rnn``,
the synthetic datasets of ``baselines.lfads_data``, scored against their true rates and (after an affine
fit) latents. Trials are split into training, validation and held-out parts (``split``); every score is on
the held-out part.

For the networks, a linear readout of the inferred factors is fitted to the task's targets on the training
trials; each stable fixed point of the generator is read out through it to the bits it holds, so the
summary says how many stable points there are and which memories they stand for (8 distinct 3-bit memories
for a network that solved the 3-bit flip-flop through 8 attractors)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch

from baselines.lfads import LFADSConfig, LFADSFitConfig, LFADSTrainConfig, fit, plot_fit, plot_rates
from baselines.lfads_data import affine_r_squared, chaotic_rnn_dataset, lorenz_dataset, pooled_r_squared, r_squared
from fixedpoints import find, summarize
from ratenets.seeds import ANALYSIS_NOISE, HELD_OUT

from ..context import RunContext
from ..evaluation import N_SAVED_TRIALS
from ..registry import Stage, register
from .fixedpoints import fixed_points_figure

SOURCES = ("lif", "lsnn", "rate", "lorenz", "chaotic_rnn")
NETWORKS = {"lif": "transfer", "lsnn": "lsnn", "rate": "rate"}  # source -> the stage that makes it
LFADS_OFFSET = 40_000  # this stage's own stream (trial split, neuron choice), apart from ratenets.seeds'


@dataclass(frozen=True)
class SyntheticSection:
    """Size of the synthetic datasets: conditions x trials each, neurons (the chaotic RNN's units), bins."""

    n_conditions: int = 65
    trials_per_condition: int = 20
    n_neurons: int = 30
    n_bins: int = 100

    def __post_init__(self):
        for name in ("n_conditions", "trials_per_condition", "n_neurons", "n_bins"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise ValueError(f"{name} must be in [1, 1000000], got {getattr(self, name)}")


@dataclass(frozen=True)
class LFADSSection:
    """``sources``: any of lif, lsnn, rate, lorenz, chaotic_rnn. For the networks: ``n_trials`` held-out trials
    simulated, ``n_neurons`` of their units fitted, ``bin_steps`` task steps per bin. ``split``: fractions of
    trials for training, validation and scoring. ``model`` and ``train``: LFADS (its neurons, bins and bin width
    come from the data). ``fp_starts``, ``fp_noise`` (relative to the generator states' spread): the fixed-point
    search of the generator. ``rate_max_hz``: the Poisson rate of a rate unit at r = 1 (source ``rate``)."""

    sources: tuple[str, ...] = ("lif", "lsnn")
    n_trials: int = 300
    n_neurons: int = 100
    bin_steps: int = 4
    split: tuple[float, ...] = (0.7, 0.1, 0.2)
    model: LFADSConfig = field(default_factory=lambda: LFADSConfig(gen_dim=64, fac_dim=10, co_dim=3, con_dim=32,
                                                                   ci_enc_dim=32, ic_enc_dim=32, dropout=0.1),
                               metadata={"derived": ("n_neurons", "n_bins", "dt_ms")})
    train: LFADSTrainConfig = field(default_factory=lambda: LFADSTrainConfig(
        n_steps=300, batch_size=32, lr=0.008, kl_ramp_steps=100, checkpoint_every=50))
    synthetic: SyntheticSection = field(default_factory=SyntheticSection)
    fp_starts: int = 512
    fp_noise: float = 0.01
    rate_max_hz: float = 100.0

    def __post_init__(self):
        if not (math.isfinite(self.rate_max_hz) and 0 < self.rate_max_hz <= 1000):
            raise ValueError(f"rate_max_hz must be in (0, 1000] Hz, got {self.rate_max_hz}")
        if not self.sources:
            raise ValueError(f"sources is empty; name at least one of: {', '.join(SOURCES)}")
        for s in self.sources:
            if s not in SOURCES:
                raise ValueError(f"sources: unknown source {s!r}; known: {', '.join(SOURCES)}")
        if len(set(self.sources)) != len(self.sources):
            raise ValueError(f"sources lists one twice: {list(self.sources)}")
        for name, value, high in (("n_trials", self.n_trials, 1_000_000), ("n_neurons", self.n_neurons, 100_000),
                                  ("bin_steps", self.bin_steps, 10_000), ("fp_starts", self.fp_starts, 1_000_000)):
            if not 1 <= value <= high:
                raise ValueError(f"{name} must be in [1, {high}], got {value}")
        if len(self.split) != 3 or any(not f > 0 for f in self.split) or sum(self.split) > 1 + 1e-9:
            raise ValueError(f"split must be three fractions > 0 summing to at most 1, got {list(self.split)}")
        if not (math.isfinite(self.fp_noise) and self.fp_noise >= 0):
            raise ValueError(f"fp_noise must be a finite number >= 0, got {self.fp_noise}")

    def check_with_task(self, task) -> None:
        if any(s in NETWORKS for s in self.sources) and task.n_steps < self.bin_steps:
            raise ValueError(f"bin_steps {self.bin_steps} exceeds the task's {task.n_steps} steps per trial")


def _split(n: int, fractions, gen: torch.Generator):
    order = torch.randperm(n, generator=gen)
    cuts = [0, round(n * fractions[0]), round(n * (fractions[0] + fractions[1])),
            round(n * sum(fractions))]
    parts = [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    if any(len(p) == 0 for p in parts):
        raise ValueError(f"{n} trials are too few to split into {list(fractions)}; raise lfads.n_trials")
    return parts


def _bin(x: torch.Tensor, k: int, reduce: str) -> torch.Tensor:
    """Sum (counts) or mean over consecutive groups of ``k`` steps; a remainder at the end is dropped."""
    b, t = x.shape[:2]
    x = x[:, : t // k * k].reshape(b, t // k, k, *x.shape[2:])
    return x.sum(2) if reduce == "sum" else x.mean(2)


@torch.no_grad()
def network_data(ctx: RunContext, source: str, sec: LFADSSection) -> dict:
    """Spikes and the network's own filtered rates (spikes per bin) on held-out trials, binned."""
    model = ctx.load_model(source)
    task = ctx.task.held_out()
    gen, noise = ctx.generator(HELD_OUT), ctx.generator(ANALYSIS_NOISE, ctx.device)
    spikes, rates, targets, inputs = [], [], [], []
    for start in range(0, sec.n_trials, 100):
        batch = task.sample(min(100, sec.n_trials - start), gen).to(ctx.device)
        kwargs = {"generator": noise} if source == "lif" else {}
        roll = model(batch.inputs, **kwargs)
        # per step: LIF filtered rates are in Hz, the LSNN's readout trace in spikes per step, a rate unit's
        # r in [0, 1] is a Poisson rate of r·rate_max_hz
        if source == "rate":
            per_step = roll.rates * (sec.rate_max_hz * ctx.task.dt_ms / 1000.0)
            spikes.append(torch.poisson(per_step, generator=noise).cpu())
        else:
            per_step = roll.rates * (ctx.task.dt_ms / 1000.0) if source == "lif" else roll.rates
            spikes.append(roll.spikes.cpu())
        rates.append(per_step.cpu())
        targets.append(batch.targets.cpu())
        inputs.append(batch.inputs.cpu())
    spikes, rates = torch.cat(spikes), torch.cat(rates)
    n_units = spikes.shape[-1]
    pick = torch.randperm(n_units, generator=ctx.generator(LFADS_OFFSET))[: min(sec.n_neurons, n_units)]
    pick = pick.sort().values
    k = sec.bin_steps
    return {"spikes": _bin(spikes[..., pick], k, "sum").round().to(torch.int64),
            "rates": _bin(rates[..., pick], k, "mean") * k,
            "targets": torch.cat(targets)[:, k - 1:: k][:, : spikes.shape[1] // k],
            "inputs": _bin(torch.cat(inputs), k, "mean"),
            "dt_ms": ctx.task.dt_ms * k, "n_units": n_units, "neurons": pick}


def synthetic_data(ctx: RunContext, source: str, sec: LFADSSection) -> dict:
    s = sec.synthetic
    if source == "lorenz":
        d = lorenz_dataset(s.n_conditions, s.trials_per_condition, n_neurons=s.n_neurons, n_bins=s.n_bins,
                           seed=ctx.cfg.seed)
    else:
        d = chaotic_rnn_dataset(s.n_conditions, s.trials_per_condition, n_units=s.n_neurons, n_bins=s.n_bins,
                                seed=ctx.cfg.seed)
    return {"spikes": d.spikes, "rates": d.rates, "latents": d.latents, "dt_ms": d.dt_ms}


def memory_readout(factors_train, targets_train, factors_test, targets_test):
    """Least-squares readout of the targets from the factors (training trials, steps with a memory held), and
    the fraction of held bits it gets right on the test trials."""
    held = (targets_train != 0).all(-1)
    f = factors_train[held].double()
    design = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)
    coef = torch.linalg.lstsq(design, targets_train[held].double()).solution  # [F+1, O]
    held_test = (targets_test != 0).all(-1)
    ft = factors_test[held_test].double()
    pred = torch.cat([ft, torch.ones(len(ft), 1, dtype=ft.dtype)], 1) @ coef
    accuracy = float((torch.sign(pred) == torch.sign(targets_test[held_test])).double().mean())
    return coef, accuracy


def _bits(values: torch.Tensor) -> str:
    return "".join("+" if v > 0 else "-" for v in values.tolist())


def run(ctx: RunContext) -> None:
    sec = ctx.section
    results = ctx.summary.setdefault("lfads", {})
    for source in sec.sources:
        data = network_data(ctx, source, sec) if source in NETWORKS else synthetic_data(ctx, source, sec)
        train_i, valid_i, test_i = _split(len(data["spikes"]), sec.split, ctx.generator(LFADS_OFFSET + 1))
        spikes = data["spikes"]
        cfg = LFADSFitConfig(model=LFADSConfig(**{**asdict(sec.model), "dt_ms": data["dt_ms"]}), train=sec.train)
        name = f"lfads_{source}"
        result = fit(spikes[train_i], cfg, valid_spikes=spikes[valid_i], device=ctx.device, seed=ctx.cfg.seed,
                     checkpoint=ctx.checkpoint(name), progress=True)
        test = result.infer(spikes[test_i])
        entry = {"source": source, "n_trials": {"train": len(train_i), "valid": len(valid_i), "test": len(test_i)},
                 "n_neurons": spikes.shape[-1], "n_bins": spikes.shape[1], "bin_ms": data["dt_ms"],
                 "train_steps": result.history["step"][-1] if result.history["step"] else 0,
                 "rate_r2": r_squared(test.rates, data["rates"][test_i]),
                 "rate_r2_pooled": pooled_r_squared(test.rates, data["rates"][test_i]),
                 "mean_count_per_bin": float(spikes.double().mean())}
        if "latents" in data:
            entry["latent_r2"] = affine_r_squared(test.factors, data["latents"][test_i])
        else:
            entry["n_units_in_network"] = data["n_units"]
            entry["rates_compared_with"] = "the network's own filtered rates, spikes per bin"
        # fixed points of the generator at zero inferred input
        model = result.model.eval()
        states = test.generator_states
        fps = find(model, states.to(ctx.device), None, n_starts=sec.fp_starts,
                   noise=sec.fp_noise * float(states.std()), seed=ctx.cfg.seed)
        entry["fixed_points"] = {**summarize(fps), "n_stable": int(fps.stable.sum())}
        if "targets" in data:
            train_out = result.infer(spikes[train_i])
            coef, accuracy = memory_readout(train_out.factors, data["targets"][train_i], test.factors,
                                            data["targets"][test_i])
            stable = fps[fps.stable]
            with torch.no_grad():
                f = model.factors_of(stable.xstar.to(model.fac_weight)).double().cpu()
                bits = torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1) @ coef
            memories = [_bits(b) for b in bits]
            entry["fixed_points"].update(memories=memories, n_distinct_memories=len(set(memories)),
                                         memory_decoding_accuracy=accuracy)
        results[source] = entry
        k = N_SAVED_TRIALS
        ctx.writer.h5_group(name, {"rates": test.rates[:k], "true_rates": data["rates"][test_i][:k],
                                   "factors": test.factors[:k], "generator_states": states[:k],
                                   "spikes": spikes[test_i][:k].to(torch.int32)},
                            {"": {"bin_ms": data["dt_ms"], "source": source,
                                  "shapes": "trial, bin, neuron (rates in spikes per bin)"}})
        ctx.writer.h5_group(f"{name}/fixed_points", {"xstar": fps.xstar, "q": fps.q, "eigvals": fps.eigvals,
                                                     "n_unstable": fps.n_unstable, "stable": fps.stable}, {})
        ctx.writer.figure(f"{name}_training", plot_fit(result.history, title=f"LFADS on {source}"))
        ctx.writer.figure(f"{name}_rates", plot_rates(test.rates, data["rates"][test_i], spikes[test_i],
                                                      dt_ms=data["dt_ms"],
                                                      title=f"LFADS on {source}: held-out R² {entry['rate_r2']:.3f}"))
        inputs = data["inputs"][test_i][:k] if "inputs" in data else torch.zeros(*states[:k].shape[:2], 1)
        ctx.writer.figure(f"{name}_fixed_points", fixed_points_figure(fps.to("cpu"), states[:k].cpu(), inputs,
                                                                      f"LFADS generator ({source})"))
        extra = f", latents R² {entry['latent_r2']:.3f}" if "latent_r2" in entry else ""
        mem = entry["fixed_points"].get("memories")
        mem_text = f", memories {sorted(set(mem))}" if mem is not None else ""
        ctx.log(f"lfads: {source}: {entry['train_steps']} updates, held-out rate R² {entry['rate_r2']:.3f} (pooled "
                f"{entry['rate_r2_pooled']:.3f}){extra}; "
                f"generator: {len(fps)} fixed points, {entry['fixed_points']['n_stable']} stable{mem_text}")


def report(ctx: RunContext) -> list[str]:
    lines = ["## LFADS fitted to spikes", "",
             "Rates inferred on held-out trials against the true rates (synthetic data) or the network's own "
             "filtered rates; fixed points of the generator at zero inferred input, each stable point read out "
             "through a linear map of the factors fitted to the task's targets.", "",
             "Rate R²: the mean of the neurons' own R²; pooled: weighted by their variance (a neuron that barely "
             "fires cannot swing it).", "",
             "| source | neurons | rate R² | pooled | latent R² | fixed points | stable | distinct memories |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for source, e in ctx.summary.get("lfads", {}).items():
        fp = e.get("fixed_points", {})
        lat = f"{e['latent_r2']:.3f}" if "latent_r2" in e else "–"
        pooled = f"{e['rate_r2_pooled']:.3f}" if "rate_r2_pooled" in e else "–"
        lines.append(f"| {source} | {e.get('n_neurons')} | {e.get('rate_r2', float('nan')):.3f} | {pooled} | {lat} | "
                     f"{fp.get('n', '–')} | {fp.get('n_stable', '–')} | {fp.get('n_distinct_memories', '–')} |")
    return lines


STAGE = register(Stage("lfads", order=45, run=run, section=LFADSSection, needs=tuple(NETWORKS.values()),
                       summary_keys=("lfads",), report=report,
                       description="LFADS fitted to the spiking networks' spikes (or synthetic data), its generator's "
                                   "fixed points"))
