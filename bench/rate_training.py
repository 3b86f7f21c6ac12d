"""Time to criterion on Go/NoGo (N = 200): our batched training against Kim et al.'s one trial per update.

Both train the same model (``RateRNN``, sigmoid, Dale, trained τ, same seed and init) to the same
criterion: Kim et al.'s Go/NoGo score >= 0.95 on a validation set. The reference is written here the
way Kim et al. train (Adam lr 0.01, one trial per update, loss sqrt(Σ_t (o - z)²), a check every
100 trials); their extra condition loss < 7 is also applied. Each seed (``--seeds``, 0-4 by default) gives one
time per side; the figure is the median over seeds of each side, and ratio = median reference / median ours
(above 1: we are faster). Per-seed times are printed too. Run: ``python bench/rate_training.py``; the last line
is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import tasks
from ratenets import RateRNN, RateRNNConfig, TrainConfig, evaluate, seeds, train


def make_model(task, seed):
    cfg = RateRNNConfig(n_units=200, n_inputs=task.n_inputs, n_outputs=task.n_outputs, dt_ms=task.dt_ms)
    return RateRNN(cfg, seed=seed)


def kim_reference(task, seed, criterion, max_trials, val_batch):
    """One trial per Adam update, loss sqrt(Σ(o - z)²), check every 100 trials (Kim et al. 2019)."""
    model = make_model(task, seed).train()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=0.01)
    gen = seeds.stream(seed, seeds.TRAINING)  # trials
    noise_gen = seeds.stream(seed, seeds.TRAINING)  # the network's noise, as train() draws it
    t0 = time.perf_counter()
    losses = []
    for trial in range(1, max_trials + 1):
        batch = task.sample(1, gen)
        out = model(batch.inputs, generator=noise_gen).outputs
        loss = torch.sqrt(((out - batch.targets) ** 2).sum())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if trial % 100 == 0:
            score = evaluate(model, task, val_batch)
            if score >= criterion and sum(losses[-100:]) / 100 < 7:
                return time.perf_counter() - t0, trial, score
    return time.perf_counter() - t0, max_trials, score


def ours(task, seed, criterion, max_steps, batch_size):
    model = make_model(task, seed)
    cfg = TrainConfig(n_steps=max_steps, batch_size=batch_size, lr=0.01, eval_every=5, eval_batch_size=128,
                      target_score=criterion)
    t0 = time.perf_counter()
    result = train(model, task, cfg, seed=seed)
    return time.perf_counter() - t0, result.step, result.score


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--criterion", type=float, default=0.95)
    p.add_argument("--max-trials", type=int, default=6000, help="cap on the reference's trials")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    task = tasks.make("gonogo")
    rows = []
    for seed in args.seeds:
        val_batch = task.sample(256, seeds.stream(seed, seeds.VALIDATION))
        ours_s, ours_steps, ours_score = ours(task, seed, args.criterion, 2000, args.batch_size)
        ref_s, ref_trials, ref_score = kim_reference(task, seed, args.criterion, args.max_trials, val_batch)
        reached, ours_reached = ref_score >= args.criterion, ours_score >= args.criterion
        print(f"seed {seed}: ours (batch {args.batch_size}) {ours_s:.1f} s, {ours_steps} updates, "
              f"{ours_steps * args.batch_size} trials, validation score {ours_score:.3f}"
              + ("" if ours_reached else " (criterion NOT reached within 2000 updates)") + "; "
              f"reference (1 trial/update) {ref_s:.1f} s, {ref_trials} trials, validation score {ref_score:.3f}"
              + ("" if reached else f" (criterion NOT reached within {args.max_trials} trials: a lower bound)"),
              flush=True)
        rows.append({"seed": seed, "ours_s": round(ours_s, 2), "ours_updates": ours_steps,
                     "ours_reached_criterion": ours_reached,
                     "reference_s": round(ref_s, 2), "reference_trials": ref_trials,
                     "reference_reached_criterion": reached, "ratio": round(ref_s / ours_s, 2)})
    ours_med = statistics.median(r["ours_s"] for r in rows)
    ref_med = statistics.median(r["reference_s"] for r in rows)
    print(f"median over {len(rows)} seeds: ours {ours_med:.1f} s, reference {ref_med:.1f} s, "
          f"ratio of medians {ref_med / ours_med:.2f} (per-seed ratios {[r['ratio'] for r in rows]})")
    print(json.dumps({
        "ours_s": round(ours_med, 2), "reference_s": round(ref_med, 2), "ratio": round(ref_med / ours_med, 2),
        "statistic": f"median over {len(rows)} seeds", "seeds": args.seeds, "per_seed": rows,
        "task": "gonogo", "n_units": 200, "criterion": args.criterion, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(),
        "ours_reached_criterion": all(r["ours_reached_criterion"] for r in rows),
        "reference_reached_criterion": all(r["reference_reached_criterion"] for r in rows),
    }))


if __name__ == "__main__":
    main()
