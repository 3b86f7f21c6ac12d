"""Issue 5 acceptance figures for the LSNN, trained by the project's one training loop.

    python bench/lsnn_scores.py [--which flipflop|digits|both] [--threads 1] [--mnist PATH]

1. ``flipflop`` (3 bits, 200 steps of 5 ms; the LSNN runs at the task's 5 ms step): bit accuracy on
   held-out trials, and the mean firing rate (aim: score >= 0.95, rate in 5-40 Hz).
2. ``seq_digits`` (sklearn 8x8 digits fed pixel by pixel, 64 steps; the LSNN holds each pixel for one
   5 ms step): accuracy on the whole test split, and the wall and CPU time of training (aim: >= 0.85
   within 10 minutes on a 2-core CPU). ``--mnist``
   runs the same code path on a real MNIST file (784 steps; much longer).

Training validates and early-stops on ``task.validation()`` (for the digits a split carved out of the
training images); the test split is touched once, after training. Each task reports, in separate fields,
``val_score`` (the score that stopped training: the training loop's fixed validation batch), ``val_split_score``
(the whole validation split, where the task has one) and ``test_score`` (the whole test split, or held-out
trials), plus ``rate_hz`` on the test trials.

Prints one line per task and a JSON line last.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import tasks
from ratenets.training import TrainConfig, train
from spiking.lsnn import LSNN, LSNNConfig


def flipflop_setup() -> tuple[LSNN, tasks.Task, TrainConfig]:
    task = tasks.make("flipflop")
    cfg = LSNNConfig(n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms)
    train_cfg = TrainConfig(
        n_steps=1500,
        batch_size=64,
        lr=0.01,
        lr_decay=0.5,
        lr_decay_every=500,
        eval_every=50,
        eval_batch_size=256,
        target_score=0.98,
    )
    return LSNN(cfg, seed=0), task, train_cfg


def digits_setup(path: str | None = None) -> tuple[LSNN, tasks.Task, TrainConfig]:
    """Bellec's sMNIST network size (120 LIF + 100 ALIF). Each pixel is held for one LSNN step of 5 ms
    (τm = 4 steps), a learned input bias gives a threshold-crossing code of the one pixel channel, and the
    readout filter (160 ms) spans the second half of the sequence, which ends in blank pixels."""
    task = tasks.make("seq_digits", path=path)
    cfg = LSNNConfig(
        n_lif=120, n_alif=100, n_inputs=task.n_inputs, n_outputs=10, dt_ms=5.0, tau_a_ms=200.0,
        refractory_steps=1, input_scale=1.0, rec_scale=0.3, input_bias=True, tau_out_ms=160.0, target_rate_hz=20.0,
    )  # fmt: skip
    train_cfg = TrainConfig(
        n_steps=6000, batch_size=128, lr=0.003, lr_decay=0.7, lr_decay_every=1200, eval_every=100,
        eval_batch_size=512, target_score=0.92,
    )  # fmt: skip
    return LSNN(cfg, seed=0), task, train_cfg


@torch.no_grad()
def held_out_figures(model: LSNN, task: tasks.Task, n_trials: int = 512) -> tuple[float, float]:
    """Score and mean rate (Hz) on held-out trials: the whole test split where the task has one."""
    model.eval()
    test = task.held_out()
    batch = (
        test.all_examples()
        if hasattr(test, "all_examples")
        else test.sample(n_trials, torch.Generator().manual_seed(123))
    )
    rollout = model(batch.inputs)
    return test.score(rollout.outputs, batch), model.mean_rate_hz(rollout)


@torch.no_grad()
def validation_split_score(model: LSNN, task: tasks.Task) -> float | None:
    """Accuracy on the whole validation split, where the task has a finite one (else None)."""
    validation = task.validation()
    if validation is task or not hasattr(validation, "all_examples"):
        return None
    model.eval()
    batch = validation.all_examples()
    return validation.score(model(batch.inputs).outputs, batch)


def run(name: str, model: LSNN, task: tasks.Task, train_cfg: TrainConfig) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(model, task, train_cfg, seed=0)  # validates on task.validation(), never on the test split
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    val_split = validation_split_score(model, task)
    score, rate = held_out_figures(model, task)  # the first and only look at the test split
    val_text = f"validation {result.score:.4f}" + ("" if val_split is None else f" (whole split {val_split:.4f})")
    print(
        f"{name}: {val_text}  test {score:.4f}  mean rate {rate:.1f} Hz  train {seconds:.0f} s wall, "
        f"{cpu_seconds:.0f} s CPU ({result.step} steps)"
    )
    return {
        "val_score": round(result.score, 4),
        "val_split_score": None if val_split is None else round(val_split, 4),
        "test_score": round(score, 4),
        "rate_hz": round(rate, 2),
        "train_s": round(seconds, 1),
        "train_cpu_s": round(cpu_seconds, 1),
        "steps": result.step,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--which", choices=["flipflop", "digits", "both"], default="both")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mnist", default=None, help="real MNIST .npz or IDX folder for the digits run")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    figures = {}
    if args.which in ("flipflop", "both"):
        figures["flipflop"] = run("flipflop", *flipflop_setup())
    if args.which in ("digits", "both"):
        figures["seq_digits"] = run("seq_digits", *digits_setup(args.mnist))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
