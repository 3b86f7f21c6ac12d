"""Acceptance figures of issue 3 (Kim et al. 2019 transfer), scored as issue 11 asks: on data that chose nothing.

For each seed: train the rate net of ``configs/<task>.yaml`` with the shared loop, then do what the pipeline's
transfer stage does (``pipeline/stages/transfer.py``): search the scaling factor λ on the config's grid with
``transfer.n_trials`` search trials per factor (``seed = cfg.seed``), then score the chosen λ on
``transfer.eval_trials`` FRESH held-out trials (``task.held_out()``, ``seed = cfg.seed + ratenets.seeds.HELD_OUT``:
a stream no training batch, validation batch or search trial draws from). The rate net is scored like the rate
stage: ``rate.eval_trials`` held-out trials of the same stream, noise off.

    python bench/transfer_scores.py all --task gonogo  --seeds 0 1 2 3 4 5 6 7 8 9
    python bench/transfer_scores.py all --task context --seeds 0 1 2 3 4 5 6 7 8 9
    python bench/transfer_scores.py train  --task gonogo --seeds 0        # rate nets only
    python bench/transfer_scores.py search --task gonogo --seeds 0        # needs the trained nets

Checkpoints go to ``runs/transfer_scores/<task>_seed<k>.pt`` (training resumes from them); each search writes
``runs/transfer_scores/<task>_seed<k>_search.json``. The recipes in the configs were tuned on seeds 0-4
(``--tuned-seeds``); the table counts, for the tuned seeds and for the others apart, how many nets reach >= 0.95
on held-out trials. Kim et al. report 65 % of Go/NoGo networks (N = 250) at >= 95 % LIF accuracy, and 98 % on their
context example; the bar here is >= 60 % of each group (3 of 5). The last line printed is JSON with every row.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from pipeline.config import load_config, with_overrides  # noqa: E402
from ratenets import RateRNN, load_model, seeds, train  # noqa: E402
from transfer import search_scale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

OUT = Path("runs/transfer_scores")
# Each net is the rate model of configs/<task>.yaml, trained with that config's settings and the bench's seed: the
# same network `python transfer/run.py configs/<task>.yaml --seed k` trains (with the same torch thread count).
# Choices the Go/NoGo config documents were measured on seeds 0-4 with an earlier version of this bench, which
# scored the best factor on the same 100 trials that chose it (search trials, drawn from the training stream):
# seed 0: 0.78 with recurrent noise 0.1, 0.95 with 0.3, 0.97 with 0.5; with noise 0.1 and LIF v0 up to 30 mV, Kim
# et al.'s readout init and the readout penalty took the score from 0.52 to 0.71; training with b_out fixed at 0
# (the transfer drops it) gave seeds 0-4 0.96 0.91 0.91 0.88 0.90 against 0.97 0.95 0.94 0.93 0.78, so the bias
# stays trainable. Seeds 5-9 chose nothing in those recipes.
N_UNITS = {"gonogo": 200, "context": 250}  # the sizes; the configs must agree
TUNED_SEEDS = (0, 1, 2, 3, 4)  # the seeds the configs' recipes were tuned on
BAR_SCORE, BAR_FRACTION = 0.95, 0.6  # Kim et al.: 65 % of nets >= 0.95; here >= 3 of 5


def run_config(task_name: str, seed: int):
    cfg = with_overrides(load_config(ROOT / "configs" / f"{task_name}.yaml"), seed=seed)
    if cfg.rate.model.n_units != N_UNITS[task_name]:
        raise SystemExit(f"configs/{task_name}.yaml has n_units {cfg.rate.model.n_units}, the bench needs "
                         f"{N_UNITS[task_name]}")
    return cfg


def checkpoint_path(task_name: str, seed: int) -> Path:
    return OUT / f"{task_name}_seed{seed}.pt"


def train_one(task_name: str, seed: int) -> dict:
    cfg = run_config(task_name, seed)
    task = cfg.make_task()
    model = RateRNN(cfg.rate.model_config(task), seed=seed)
    t0 = time.perf_counter()
    result = train(model, task, cfg.rate.train, checkpoint_path=checkpoint_path(task_name, seed), seed=seed)
    row = {"task": task_name, "seed": seed, "validation_score": result.score, "train_steps": result.step,
           "train_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row), flush=True)
    return row


def kim_code_score(task_name: str):
    """The criterion of Kim et al.'s grid-search script (``spiking/lambda_grid_search.m``), which their
    published LIF accuracies use: Go/NoGo looks at the second half only, ``max o[100:] > 0.7`` for Go and
    ``max o[100:] < 0.3`` for NoGo (no absolute value); the context task is the same as ``task.score``.
    ``tasks.make('gonogo').score`` is stricter: NoGo needs ``max |o| < 0.3`` over the whole trial."""
    if task_name != "gonogo":
        return None

    def score(outputs, batch):
        late = outputs[:, 100:, 0].amax(dim=1)
        return round(float(torch.where(batch.meta["go"] > 0, late > 0.7, late < 0.3).float().mean()), 6)

    return score


@torch.no_grad()
def rate_held_out_score(rate_net, task, n_trials: int, seed: int, batch_size: int = 250) -> float:
    """As the rate stage scores (``pipeline.evaluation.held_out_score``): ``n_trials`` trials of ``task.held_out()``
    from the held-out stream, noise off. The initial states come from the analysis-noise stream (the stage draws
    them from the global RNG)."""
    held = task.held_out()
    gen, x0_gen = seeds.stream(seed, seeds.HELD_OUT), seeds.stream(seed, seeds.ANALYSIS_NOISE)
    total, done = 0.0, 0
    while done < n_trials:
        b = min(batch_size, n_trials - done)
        batch = held.sample(b, gen)
        total += held.score(rate_net(batch.inputs, noise=False, generator=x0_gen).outputs, batch) * b
        done += b
    return round(total / n_trials, 6)


def search_one(task_name: str, seed: int, n_trials: int | None, eval_trials: int | None, device: str) -> dict:
    cfg = run_config(task_name, seed)  # the config's task, grid, trial counts, LIF parameters and warm-up
    task = cfg.make_task()
    rate_net = load_model(checkpoint_path(task_name, seed)).eval()
    sec = cfg.transfer
    n_trials = n_trials or sec.n_trials
    eval_trials = eval_trials or sec.eval_trials
    rate_score = rate_held_out_score(rate_net, task, cfg.rate.eval_trials, cfg.seed)
    common = dict(lif_params=sec.lif, warmup_ms=sec.warmup_ms, device=device, keep_readout_bias=sec.keep_readout_bias)
    t0 = time.perf_counter()
    # exactly the transfer stage's two calls: choose on the search trials, score on fresh held-out trials
    search = search_scale(rate_net, task, sec.scales, n_trials, seed=cfg.seed, **common)
    search_s = time.perf_counter() - t0
    held = search_scale(rate_net, task.held_out(), [search.best_scale], eval_trials, seed=cfg.seed + seeds.HELD_OUT,
                        **common)
    row = {"task": task_name, "seed": seed, "n_units": rate_net.cfg.n_units, "rate_score": rate_score,
           "rate_trials": cfg.rate.eval_trials, "scale": search.best_scale, "search_score": search.best_score,
           "search_trials": n_trials, "held_out_score": held.best_score, "held_out_trials": eval_trials,
           "held_out_rate_hz": round(held.firing_rates_hz[0], 2), "warmup_ms": sec.warmup_ms,
           "table": search.table, "search_s": round(search_s, 1), "held_out_s": round(held.seconds, 1)}
    kim = kim_code_score(task_name)
    if kim is not None:  # the reference script's rule: its own choice on the search trials, scored on held-out
        table = [[scale, kim(search.outputs[s], search.batch)] for s, (scale, _) in enumerate(search.table)]
        best = max(range(len(table)), key=lambda s: (table[s][1], -s))
        kim_scale = table[best][0]
        kim_held = held if kim_scale == search.best_scale else search_scale(
            rate_net, task.held_out(), [kim_scale], eval_trials, seed=cfg.seed + seeds.HELD_OUT, **common)
        row.update(kim_code_scale=kim_scale, kim_code_search_score=table[best][1],
                   kim_code_held_out_score=kim(kim_held.outputs[0], kim_held.batch), kim_code_table=table)
    (OUT / f"{task_name}_seed{seed}_search.json").write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if "table" not in k}), flush=True)
    return row


def group_counts(rows: list[dict], tuned: set[int], key: str = "held_out_score") -> dict:
    """Per task: how many nets reach the bar on ``key``, for the tuned seeds and for the others apart."""
    out = {}
    for task_name in dict.fromkeys(r["task"] for r in rows):
        for group, pick in (("tuned", lambda s: s in tuned), ("untouched", lambda s: s not in tuned)):
            sel = [r for r in rows if r["task"] == task_name and pick(r["seed"]) and r.get(key) is not None]
            if not sel:
                continue
            n_ok = sum(r[key] >= BAR_SCORE for r in sel)
            out[f"{task_name}_{group}"] = {"seeds": [r["seed"] for r in sel], "n": len(sel),
                                           f"n_at_least_{BAR_SCORE}": n_ok,
                                           "meets_bar": n_ok >= math.ceil(BAR_FRACTION * len(sel) - 1e-9)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "search", "all"])
    parser.add_argument("--task", choices=sorted(N_UNITS), action="append")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--tuned-seeds", type=int, nargs="*", default=list(TUNED_SEEDS),
                        help="seeds the configs' recipes were tuned on (counted apart; default 0-4)")
    parser.add_argument("--n-trials", type=int, default=None, help="search trials per factor (config's transfer)")
    parser.add_argument("--eval-trials", type=int, default=None, help="held-out trials (config's transfer)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="folder for checkpoints and results (runs/transfer_scores)")
    args = parser.parse_args()
    global OUT
    OUT = Path(args.out) if args.out else OUT
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    task_names = args.task or ["gonogo", "context"]
    rows = []
    for task_name in task_names:
        task_seeds = args.seeds if args.seeds is not None else ([0, 1, 2, 3, 4] if task_name == "gonogo" else [0])
        for seed in task_seeds:
            if args.stage in ("train", "all"):
                train_one(task_name, seed)
            if args.stage in ("search", "all"):
                rows.append(search_one(task_name, seed, args.n_trials, args.eval_trials, args.device))
    if not rows:
        return
    tuned = set(args.tuned_seeds)
    print("rate = rate net on held-out trials; λ chosen on the search trials; search = λ's score on the trials that "
          "chose it; held-out = λ's score on fresh held-out trials (the figure to quote). Kim code = the reference "
          "script's criterion, its own λ choice.")
    print(f"{'task':8s} {'seed':>4s} {'N':>4s} {'rate':>6s} {'λ':>5s} {'search':>7s} {'held-out':>9s} {'Hz':>6s} "
          f"{'search s':>9s} {'Kim λ':>6s} {'Kim search':>11s} {'Kim held-out':>13s}")
    for r in rows:
        kim = (f"{r['kim_code_scale']:6.1f} {r['kim_code_search_score']:11.3f} {r['kim_code_held_out_score']:13.3f}"
               if "kim_code_scale" in r else "")
        print(f"{r['task']:8s} {r['seed']:4d} {r['n_units']:4d} {r['rate_score']:6.3f} {r['scale']:5.1f} "
              f"{r['search_score']:7.3f} {r['held_out_score']:9.3f} {r['held_out_rate_hz']:6.1f} {r['search_s']:9.1f} "
              f"{kim}")
    counts = group_counts(rows, tuned)
    kim_counts = group_counts(rows, tuned, "kim_code_held_out_score")
    for name, c in counts.items():
        kim = kim_counts.get(name)
        print(f"{name}: {c[f'n_at_least_{BAR_SCORE}']} of {c['n']} nets >= {BAR_SCORE} on held-out trials "
              f"(seeds {c['seeds']}); bar >= {BAR_FRACTION:.0%}: {'met' if c['meets_bar'] else 'NOT met'}"
              + (f"; Kim code: {kim[f'n_at_least_{BAR_SCORE}']} of {kim['n']}" if kim else ""))
    summary = {"rows": [{k: v for k, v in r.items() if "table" not in k} for r in rows], "held_out_counts": counts,
               "kim_code_held_out_counts": kim_counts, "threads": torch.get_num_threads(), "device": args.device}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
