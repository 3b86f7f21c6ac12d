"""The project's one training loop, for every trainable model and task.

Batched Adam on masked MSE (or cross-entropy for classification tasks), plus the model's own
``regularizer(rollout)`` when it has one; gradient clipping; validation on a fixed batch of
``task.validation()`` (never the test split ``task.held_out()``) every ``eval_every`` steps with an
early stop at ``target_score``; checkpoints every ``checkpoint_every`` steps that hold everything needed
to resume bit-for-bit (weights, optimiser, step, RNG states, history). A non-finite loss stops training
with ``TrainingDiverged`` naming the step; the last good checkpoint is kept.

Kim et al. 2019 trained on one trial per update (loss ``sqrt(Σ(o-z)²)``, Adam lr 0.01); batching
trials is the main speed-up here (``bench/rate_training.py`` measures it).
"""

from __future__ import annotations

import inspect
import math
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from tasks import Task, TaskBatch

from . import _validate, seeds
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint

_DEVICE_NAME = re.compile(r"auto|cpu|cuda(:[0-9]+)?")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


MAX_STEPS = 10_000_000
MAX_BATCH = 1_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Knobs of the training loop. Validated on construction and frozen: change one with ``dataclasses.replace``."""

    n_steps: int = 2000
    batch_size: int = 32
    lr: float = 0.01
    lr_decay: float = 1.0
    lr_decay_every: int = 1000
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    eval_every: int = 50
    eval_batch_size: int = 256
    target_score: float = 1.01
    checkpoint_every: int = 100

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Range checks; run on construction (and by ``dataclasses.replace``), so a config that exists is valid."""
        for name in ("n_steps", "eval_every", "checkpoint_every", "lr_decay_every"):
            _validate.integer(name, getattr(self, name), 1, MAX_STEPS)
        for name in ("batch_size", "eval_batch_size"):
            _validate.integer(name, getattr(self, name), 1, MAX_BATCH)
        _validate.real("lr", self.lr, 0, open_low=True)
        _validate.real("lr_decay", self.lr_decay, 0, 1, open_low=True)
        _validate.real("weight_decay", self.weight_decay, 0)
        _validate.real("grad_clip", self.grad_clip, 0)
        _validate.real("target_score", self.target_score)  # above 1: never stop early


class ProgressLog:
    """Progress of a long loop (training, the scaling-factor search): a tqdm bar on stderr when it is a terminal, or
    in a notebook; elsewhere (a log file, a cluster job) one plain line on stdout, the run's log, every
    ``every_percent`` percent, so that a log shows how far a stage has got, e.g. ``train RateRNN: 150/1500 steps
    (10%), 12 s, ~108 s left, loss 0.0123`` (stderr stays for the one line of an error). ``stream`` replaces both
    streams (tests). ``enabled=False`` shows nothing."""

    def __init__(self, total: int, desc: str, enabled: bool = True, initial: int = 0, unit: str = "steps",
                 every_percent: int = 5, stream=None):
        self.total, self.desc, self.unit, self.every = max(int(total), 1), desc, unit, every_percent
        self.n, self.start_n, self.t0, self.postfix = initial, initial, time.perf_counter(), ""
        self.next_percent = (100 * initial // self.total // every_percent + 1) * every_percent
        notebook = sys.modules.get("tqdm.notebook")  # imported by tqdm.auto only inside a Jupyter kernel
        in_notebook = notebook is not None and issubclass(tqdm, notebook.tqdm_notebook)
        terminal = stream if stream is not None else sys.stderr
        is_tty = bool(getattr(terminal, "isatty", lambda: False)())
        self.mode = "off" if not enabled else "bar" if is_tty or in_notebook else "lines"
        self.bar = None
        if self.mode == "bar":
            try:
                where = {} if in_notebook else {"file": terminal}
                self.bar = tqdm(total=total, initial=initial, desc=desc, **where)
            except ImportError:  # a notebook without ipywidgets: lines instead of a widget
                self.mode = "lines"
        self.stream = stream if stream is not None else sys.stdout

    def update(self, n: int = 1) -> None:
        self.update_to(self.n + n)

    def update_to(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n - self.n)
        self.n = n
        percent = 100 * n // self.total
        if self.mode == "lines" and percent >= self.next_percent:
            self.next_percent = (percent // self.every + 1) * self.every
            elapsed = time.perf_counter() - self.t0
            done = n - self.start_n
            left = f", ~{elapsed * (self.total - n) / done:.0f} s left" if 0 < done and n < self.total else ""
            tail = f", {self.postfix}" if self.postfix else ""
            print(f"{self.desc}: {n}/{self.total} {self.unit} ({percent}%), {elapsed:.0f} s{left}{tail}",
                  file=self.stream, flush=True)

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _width(model, name: str):
    """A model's declared input or output width (``cfg.n_inputs``, ``n_inputs``, ``input_size``), or None."""
    for source in (getattr(model, "cfg", None), model):
        value = getattr(source, name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return getattr(model, "input_size", None) if name == "n_inputs" else None


def check_widths(model, task: Task) -> None:
    """One ``ValueError`` naming both sides when ``model``'s declared input or output width differs from the
    task's (before any work; a model that declares none is checked on its first batch's outputs)."""
    have = {"n_inputs": _width(model, "n_inputs"), "n_outputs": _width(model, "n_outputs")}
    want = {"n_inputs": task.n_inputs, "n_outputs": task.n_outputs}
    bad = [k for k in have if have[k] is not None and have[k] != want[k]]
    if bad:
        name = getattr(task, "name", type(task).__name__)
        raise ValueError(
            f"{type(model).__name__} has {', '.join(f'{k}={have[k]}' for k in bad)} but task {name!r} has "
            f"{', '.join(f'{k}={want[k]}' for k in bad)}: build the model with "
            f"{', '.join(f'{k}={want[k]}' for k in bad)}")


@dataclass
class TrainResult:
    """What ``train`` returns. Fields: ``score`` the last validation score; ``step`` updates done; ``history``
    ``{"step", "loss", "eval_step", "eval_score"}`` lists; ``resumed_from`` the checkpoint's step when resumed."""

    score: float
    step: int
    history: dict = field(default_factory=dict)
    resumed_from: int | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; anything else, or a CUDA device
    this machine does not have, is a one-line ``ValueError``."""
    if not isinstance(name, str) or not _DEVICE_NAME.fullmatch(name):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here (use auto or cpu)")
    if ":" in name:
        index, count = int(name.split(":")[1]), torch.cuda.device_count()
        if index >= count:
            have = "none" if count == 0 else "cuda:0" if count == 1 else f"cuda:0 to cuda:{count - 1}"
            raise ValueError(f"device {name!r} asked for, but this machine's CUDA devices are {have}")
    return torch.device(name)


def task_loss(outputs: torch.Tensor, batch: TaskBatch, loss_kind: str) -> torch.Tensor:
    """Masked mean squared error, or cross-entropy over the masked steps (targets one-hot)."""
    if loss_kind == "xent":
        steps = batch.mask[..., 0] > 0
        return torch.nn.functional.cross_entropy(outputs[steps], batch.targets[steps].argmax(dim=-1))
    mask = batch.mask
    return (mask * (outputs - batch.targets) ** 2).sum() / mask.sum().clamp_min(1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, task: Task, batch: TaskBatch) -> float:
    was_training = model.training
    model.eval()
    try:
        return task.score(model(batch.inputs).outputs, batch)
    finally:
        model.train(was_training)


def _accepts_generator(model: torch.nn.Module) -> bool:
    """Whether ``model.forward`` takes a ``generator`` keyword (models that draw noise in training mode)."""
    try:
        return "generator" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # no signature to read (a C extension): call it the plain way
        return False


def _rng_state(task_gen: torch.Generator, noise_gen: torch.Generator) -> dict:
    return {"task": task_gen.get_state(), "noise": noise_gen.get_state(), "noise_device": noise_gen.device.type}


def _set_rng_state(state: dict, task_gen: torch.Generator, noise_gen: torch.Generator, path) -> None:
    device = noise_gen.device.type
    if "noise" in state:
        noise = state["noise"] if state.get("noise_device", "cpu") == device else None
    else:  # written before the noise had its own generator: the noise came from the global RNG of the device
        noise = state.get("torch") if device == "cpu" else state.get("cuda")
    try:
        task_gen.set_state(state["task"])
        # Resumed on another kind of device the noise cannot continue the same stream; it starts afresh.
        if noise is not None:
            noise_gen.set_state(noise)
    except (KeyError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"checkpoint {path} holds an unusable RNG state ({type(e).__name__})") from None


def _check_same_training(ckpt: dict, model, cfg: TrainConfig, seed: int, path) -> None:
    """Resuming is only exact for the same model, training settings and seed."""
    theirs = {**ckpt.get("model_config", {}), **ckpt.get("train_config", {}), "seed": ckpt.get("seed")}
    ours = {**model.config_dict(), **asdict(cfg), "seed": seed}
    free = ("n_steps", "checkpoint_every")  # training longer, or checkpointing more often, is still the same run
    changed = [k for k in ours if k in theirs and k not in free and theirs[k] != ours[k]]
    if ckpt.get("model_class") != type(model).__name__ or changed:
        what = f"{changed[0]}: {theirs[changed[0]]!r} -> {ours[changed[0]]!r}" if changed else "another model class"
        raise CheckpointError(f"checkpoint {path} was written with other settings ({what}); delete it or use --force")


def train(
    model: torch.nn.Module,
    task: Task,
    cfg: TrainConfig,
    checkpoint_path: Path | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` on ``task``; resume from ``checkpoint_path`` if it holds an unfinished run.

    Validation (and the early stop at ``cfg.target_score``) uses a fixed batch of ``task.validation()``;
    ``task.held_out()`` is never touched here, so a score on it afterwards is on data that chose nothing.

    The checkpoint is written every ``cfg.checkpoint_every`` steps and at the end (with ``done=True``). A
    finished checkpoint is loaded and returned without training if it stopped early (its score reached
    ``cfg.target_score``) or has at least ``cfg.n_steps`` steps. One that ran out of steps below a since
    raised ``cfg.n_steps`` trains on to the new ``n_steps``: the optimiser, the learning-rate schedule (it
    does not depend on ``n_steps``) and the random streams continue from the checkpoint, so on the same
    device the weights equal those of one run to the new ``n_steps``; the history then holds one more
    evaluation, at the old last step, where ``eval_every`` does not divide it.
    """
    check_widths(model, task)
    device = resolve_device(device) if isinstance(device, str) else torch.device(device)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_decay_every, gamma=cfg.lr_decay)
    # Explicit generators only: the caller's global RNG is neither read nor reseeded. Trial batches are drawn
    # on the CPU; the model's noise on its device. On CPU both draw what the old global reseed to seed gave.
    task_gen = seeds.stream(seed, seeds.TRAINING)
    noise_gen = seeds.stream(seed, seeds.TRAINING, device)
    forward_kwargs = {"generator": noise_gen} if _accepts_generator(model) else {}
    eval_task = task.validation()
    val_batch = eval_task.sample(cfg.eval_batch_size, seeds.stream(seed, seeds.VALIDATION)).to(device)
    history = {"step": [], "loss": [], "eval_step": [], "eval_score": []}
    step, score, resumed_from = 0, float("nan"), None

    if checkpoint_path is not None and Path(checkpoint_path).exists():
        ckpt = load_checkpoint(checkpoint_path)
        _check_same_training(ckpt, model, cfg, seed, checkpoint_path)
        model.load_state_dict(ckpt["model_state"])
        history = ckpt["history"]
        step, score = ckpt["step"], ckpt["score"]
        if ckpt.get("done") and (step >= cfg.n_steps or score >= cfg.target_score):
            return TrainResult(score, step, history, resumed_from=step)
        opt.load_state_dict(ckpt["optimizer_state"])
        sched.load_state_dict(ckpt["scheduler_state"])
        _set_rng_state(ckpt["rng"], task_gen, noise_gen, checkpoint_path)
        resumed_from = step

    def checkpoint(done: bool) -> None:
        if checkpoint_path is None:
            return
        save_checkpoint(
            checkpoint_path,
            model,
            optimizer_state=opt.state_dict(),
            scheduler_state=sched.state_dict(),
            step=step,
            score=score,
            done=done,
            history=history,
            rng=_rng_state(task_gen, noise_gen),
            train_config=asdict(cfg),
            seed=seed,
        )

    # A bar on a terminal or in a notebook; in a log file (a cluster job) a plain line every 5 %.
    bar = ProgressLog(cfg.n_steps, f"train {type(model).__name__}", enabled=progress, initial=step)
    loss_kind = getattr(task, "loss_kind", "mse")
    regularizer = getattr(model, "regularizer", None)
    while step < cfg.n_steps:
        batch = task.sample(cfg.batch_size, task_gen).to(device)
        rollout = model(batch.inputs, **forward_kwargs)
        if rollout.outputs.shape[-1] != batch.targets.shape[-1]:
            bar.close()
            raise ValueError(f"{type(model).__name__} gives {rollout.outputs.shape[-1]} outputs but the task has "
                             f"n_outputs={batch.targets.shape[-1]}: build the model with "
                             f"n_outputs={batch.targets.shape[-1]}")
        loss = task_loss(rollout.outputs, batch, loss_kind)
        if regularizer is not None:
            loss = loss + regularizer(rollout)
        value = float(loss.detach())
        if not math.isfinite(value):
            bar.close()
            kept = "no checkpoint was written yet"
            if checkpoint_path is not None and Path(checkpoint_path).exists():
                kept = f"last good checkpoint kept: {checkpoint_path}"
            raise TrainingDiverged(f"training loss became {value} at step {step + 1}; {kept}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        sched.step()
        step += 1
        history["step"].append(step)
        history["loss"].append(value)
        stop = False
        if step % cfg.eval_every == 0 or step == cfg.n_steps:
            score = evaluate(model, eval_task, val_batch)
            history["eval_step"].append(step)
            history["eval_score"].append(score)
            bar.set_postfix(loss=f"{value:.4f}", score=f"{score:.3f}")
            stop = score >= cfg.target_score
        bar.update(1)
        if stop or step == cfg.n_steps:
            checkpoint(done=True)
            break
        if step % cfg.checkpoint_every == 0:
            checkpoint(done=False)
    bar.close()
    return TrainResult(score, step, history, resumed_from)
