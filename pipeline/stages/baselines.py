"""Stage ``baselines``: the discrete-time architectures of Maheswaranathan et al. 2019 (vanilla tanh RNN, GRU,
LSTM, UGRNN; ``baselines.BaselineRNN``) trained on the task by the one training loop, each scored on the same
held-out trials, its trajectories saved and drawn. Each architecture is a model of its own name (``gru``...), so
the fixed-point stage analyses it like every model."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from baselines import ARCHITECTURES, BaselineRNN, BaselineRNNConfig
from ratenets import TrainConfig, train
from ratenets.plots import plot_training, plot_trials

from ..context import RunContext
from ..errors import ConfigError
from ..evaluation import DERIVED, check_eval_trials, held_out_score, save_model_results
from ..outputs import to_numpy
from ..registry import Stage, register

# One recipe for every architecture on the 3-bit flip-flop (>= 0.99 on 1000 held-out trials for each; README).
RECIPE_MODEL = BaselineRNNConfig(n_units=64)
RECIPE_TRAIN = TrainConfig(n_steps=1500, batch_size=64, lr=0.003, lr_decay=0.5, lr_decay_every=500, eval_every=50,
                           target_score=0.999)


@dataclass(frozen=True)
class ArchitectureSection:
    """One architecture's network (its architecture comes from its key, its widths and dt from the task) and
    its training."""

    model: BaselineRNNConfig = field(default_factory=lambda: RECIPE_MODEL,
                                     metadata={"derived": (*DERIVED, "architecture")})
    train: TrainConfig = field(default_factory=lambda: RECIPE_TRAIN)

    def model_config(self, architecture: str, task) -> BaselineRNNConfig:
        return dataclasses.replace(self.model, architecture=architecture, n_inputs=task.n_inputs,
                                   n_outputs=task.n_outputs, dt_ms=task.dt_ms)


@dataclass(frozen=True)
class BaselinesSection:
    """``architectures``: which of vanilla, gru, lstm, ugrnn to train (each becomes the model of that name);
    one subsection of model and training settings per architecture; ``eval_trials`` held-out trials each."""

    architectures: tuple[str, ...] = ("gru",)
    vanilla: ArchitectureSection = field(default_factory=ArchitectureSection)
    gru: ArchitectureSection = field(default_factory=ArchitectureSection)
    lstm: ArchitectureSection = field(default_factory=ArchitectureSection)
    ugrnn: ArchitectureSection = field(default_factory=ArchitectureSection)
    eval_trials: int = 1000

    def __post_init__(self):
        if not self.architectures:
            raise ValueError(f"architectures is empty; name at least one of: {', '.join(ARCHITECTURES)}")
        for name in self.architectures:
            if name not in ARCHITECTURES:
                raise ValueError(f"architectures: unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}")
        if len(set(self.architectures)) != len(self.architectures):
            raise ValueError(f"architectures lists one twice: {list(self.architectures)}")
        check_eval_trials(self.eval_trials)

    def check_with_task(self, task) -> None:
        for name in ARCHITECTURES:
            try:
                getattr(self, name).model_config(name, task)
            except ValueError as e:
                raise ConfigError(f"config key baselines.{name}.model: {e}") from None


def trained_models(section: BaselinesSection) -> tuple[str, ...]:
    """The models a config's section makes: one per listed architecture, named after it."""
    return tuple(section.architectures)


def run(ctx: RunContext) -> None:
    sec, task = ctx.section, ctx.task
    for name in sec.architectures:
        arch = getattr(sec, name)
        model = BaselineRNN(arch.model_config(name, task), seed=ctx.cfg.seed)
        result = train(model, task, arch.train, ctx.checkpoint(name), ctx.device, seed=ctx.cfg.seed, progress=True)
        if result.resumed_from:
            ctx.log(f"baselines: {name}: resumed from the checkpoint at step {result.resumed_from}")
        score, batch, rollout = held_out_score(model, ctx, sec.eval_trials)  # the same trials for each
        ctx.summary["models"][name] = {
            "score": score,
            "n_trials": sec.eval_trials,
            "train_steps": result.step,
            "final_loss": result.history["loss"][-1] if result.history["loss"] else None,
            "architecture": name,
            "n_units": model.cfg.n_units,
            "n_state": model.n_state,
            "n_params": sum(p.numel() for p in model.parameters()),
        }
        save_model_results(ctx, name, batch, rollout)
        ctx.writer.figure(f"{name}_training", plot_training(result.history, title=name))
        ctx.writer.figure(f"{name}_trials", plot_trials(
            to_numpy(batch.inputs), to_numpy(rollout.outputs), to_numpy(batch.targets), to_numpy(batch.mask),
            task.dt_ms, title=f"{name} on {task.name}: held-out score {score:.3f}"))
        ctx.log(f"baselines: {name}: {result.step} updates, score {score:.4f} on {sec.eval_trials} held-out trials")


def report(ctx: RunContext) -> list[str]:
    lines = ["## Baselines (Maheswaranathan et al. 2019 architectures)", "",
             "Discrete-time networks trained by the same loop on the same task; the LSTM's state is `[h, c]`.", "",
             "| model | units | state | parameters | updates | held-out score |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name in ARCHITECTURES:
        m = ctx.summary["models"].get(name)
        if isinstance(m, dict) and m.get("architecture") == name:
            lines.append(f"| {name} | {m.get('n_units')} | {m.get('n_state')} | {m.get('n_params')} | "
                         f"{m.get('train_steps')} | {m.get('score', float('nan')):.3f} |")
    return lines


STAGE = register(Stage("baselines", order=35, run=run, section=BaselinesSection, models=ARCHITECTURES,
                       models_for=trained_models, report=report,
                       description="vanilla RNN, GRU, LSTM and UGRNN trained on the task"))
