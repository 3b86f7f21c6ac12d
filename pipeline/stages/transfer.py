"""Stage ``transfer``: Kim et al. 2019's rate→LIF transfer. Search the scaling factor λ on the grid (its own
trials), then score the chosen factor on fresh held-out trials that chose nothing; save the LIF network,
a raster, the scan and the firing-rate histogram."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ratenets import save_checkpoint
from ratenets.seeds import HELD_OUT
from spiking import LIFParams, plot_raster, plot_rate_histogram
from transfer import rate_to_lif, search_scale, simulate_trials
from transfer.plots import plot_scale_scan

from ..context import RunContext
from ..evaluation import N_SAVED_TRIALS, check_eval_trials
from ..registry import Stage, register

MAX_SEARCH_TRIALS = 100_000


@dataclass(frozen=True)
class TransferSection:
    """The scaling-factor grid, trials per factor in the search, fresh held-out trials to score the chosen
    factor on, and the LIF parameters. ``keep_readout_bias`` keeps the rate readout's bias in the LIF output
    (the paper drops it; sigmoid networks whose outputs must swing to -1 rely on it). ``warmup_ms``: zero-input
    time the LIF network runs before each trial, unrecorded (0 in the paper; a whole number of the task's steps)."""

    scales: tuple[float, ...] = tuple(float(s) for s in range(20, 80, 5))
    n_trials: int = 100
    eval_trials: int = 200
    raster_trials: int = 2
    keep_readout_bias: bool = False
    warmup_ms: float = 0.0
    lif: LIFParams = field(default_factory=LIFParams)

    def __post_init__(self):
        if not self.scales or not all(math.isfinite(s) and s > 0 for s in self.scales):
            raise ValueError(f"scales must be a non-empty list of finite factors > 0, got {list(self.scales)}")
        if len(self.scales) > 1000:
            raise ValueError(f"scales holds {len(self.scales)} factors; at most 1000")
        if not 1 <= self.n_trials <= MAX_SEARCH_TRIALS or not 1 <= self.raster_trials <= self.eval_trials:
            raise ValueError(f"need 1 <= n_trials <= {MAX_SEARCH_TRIALS} and 1 <= raster_trials <= eval_trials")
        check_eval_trials(self.eval_trials)
        if not 0 <= self.warmup_ms <= 1e6:
            raise ValueError(f"warmup_ms must be in [0, 1e6], got {self.warmup_ms}")

    def check_with_task(self, task) -> None:
        steps = self.warmup_ms / task.dt_ms
        if not math.isclose(steps, round(steps), abs_tol=1e-9):
            raise ValueError(f"warmup_ms {self.warmup_ms} is not a whole number of the task's {task.dt_ms} ms steps")
        try:
            self.lif.substeps(task.dt_ms)
        except ValueError as e:
            raise ValueError(f"lif: {e}") from None


def run(ctx: RunContext) -> None:
    sec = ctx.section
    rate_net = ctx.load_model("rate")
    common = dict(lif_params=sec.lif, warmup_ms=sec.warmup_ms, device=ctx.device,
                  keep_readout_bias=sec.keep_readout_bias)
    search = search_scale(rate_net, ctx.task.validation(), sec.scales, sec.n_trials, seed=ctx.cfg.seed, progress=True,
                          **common)
    held = search_scale(rate_net, ctx.task.held_out(), [search.best_scale], sec.eval_trials,
                        seed=ctx.cfg.seed + HELD_OUT, **common)
    lif = rate_to_lif(rate_net, search.best_scale, sec.lif, keep_readout_bias=sec.keep_readout_bias,
                      warmup_ms=sec.warmup_ms)
    save_checkpoint(ctx.checkpoint("lif"), lif, done=True)
    trials = simulate_trials(lif, ctx.task.held_out(), N_SAVED_TRIALS, seed=ctx.cfg.seed + HELD_OUT,
                             raster_trials=sec.raster_trials)
    ctx.summary["models"]["lif"] = {
        "score": held.best_score,
        "n_trials": sec.eval_trials,
        "search_score": search.best_score,
        "search_trials": search.n_trials,
        "scale_factor": search.best_scale,
        "n_units": lif.n_units,
        "mean_rate_hz": float(trials.firing_rates_hz.mean()),
        "search_seconds": round(search.seconds, 2),
    }
    ctx.summary["transfer"] = {"scale": search.best_scale, "scan": search.table,
                               "scan_rates_hz": search.firing_rates_hz, "n_trials": search.n_trials}
    b = trials.batch
    ctx.writer.h5_group("lif", {  # the arrays every model group has (save_model_results), then the LIF's own
        "trajectories": trials.lif_states, "outputs": trials.lif_outputs, "inputs": b.inputs, "targets": b.targets,
        "mask": b.mask, "rate_outputs": trials.rate_outputs, "spikes": trials.raster,
        "firing_rates_hz": trials.firing_rates_hz,
    }, {
        "": {"dt_ms": ctx.task.dt_ms, "task": ctx.task.name, "lif_dt_ms": trials.lif_dt_ms,
             "scale_factor": search.best_scale},
        "trajectories": {"shape": "trial, step, unit", "units": "filtered spike trains (Hz), the LIF state"},
        "outputs": {"shape": "trial, step, output"},
        "spikes": {"shape": "event, (trial, LIF step, unit)", "units": "LIF steps of lif_dt_ms"},
        "firing_rates_hz": {"shape": "trial, unit", "units": "Hz"},
    })
    ctx.writer.figure("transfer_scan", plot_scale_scan(search.table, best_scale=search.best_scale))
    ctx.writer.figure("lif_raster", plot_raster(
        trials.spikes(0), dt_ms=trials.lif_dt_ms, outputs={"LIF network": trials.lif_outputs,
                                                           "rate network": trials.rate_outputs},
        targets=b.targets, output_dt_ms=trials.dt_ms, title="LIF spikes"))
    ctx.writer.figure("lif_rates", plot_rate_histogram(trials.firing_rates_hz, title="LIF firing rates"))
    ctx.log(f"transfer: best scaling factor {search.best_scale:g} (search score {search.best_score:.3f} on "
            f"{search.n_trials} trials); LIF score {held.best_score:.4f} on {sec.eval_trials} fresh held-out trials")


def report(ctx: RunContext) -> list[str]:
    t = ctx.summary["transfer"]
    lif = ctx.summary["models"].get("lif", {})
    lines = ["## Rate → LIF transfer", "",
             f"Best scaling factor {t['scale']:g}, chosen on {t.get('n_trials', '?')} search trials "
             f"(score {lif.get('search_score', float('nan')):.3f} there); the LIF score in the table above is on "
             f"{lif.get('n_trials', '?')} fresh held-out trials that chose nothing.", "",
             "| scale | LIF score (search trials) |", "| --- | --- |"]
    lines += [f"| {a:g} | {b:.3f} |" for a, b in t["scan"] if a is not None and b is not None]
    return lines


STAGE = register(Stage("transfer", order=20, run=run, section=TransferSection, needs=("rate",), models=("lif",),
                       summary_keys=("transfer",), report=report,
                       description="rate→LIF transfer and the scaling-factor search"))
