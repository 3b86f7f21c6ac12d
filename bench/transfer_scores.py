"""Acceptance figures of issue 3 (Kim et al. 2019 transfer): train rate nets with the shared loop, then
search the scaling factor on 100 LIF trials per factor and print one table.

    python bench/transfer_scores.py train   --task gonogo  --seeds 0 1 2 3 4   # rate nets, N = 200
    python bench/transfer_scores.py train   --task context --seeds 0           # rate net,  N = 250
    python bench/transfer_scores.py search  --task gonogo  --seeds 0 1 2 3 4
    python bench/transfer_scores.py all     (both tasks, both stages)

Checkpoints go to ``runs/transfer_scores/<task>_seed<k>.pt`` (training resumes from them); each search
writes ``runs/transfer_scores/<task>_seed<k>_search.json``. The last line printed is JSON with every
row. Kim et al. report 65 % of Go/NoGo networks (N = 250) at >= 95 % LIF accuracy and 98 % on their
context example.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pipeline.config import load_config, with_overrides
from ratenets import RateRNN, load_model, train
from transfer import search_scale

ROOT = Path(__file__).resolve().parents[1]

OUT = Path("runs/transfer_scores")
# Each net is the rate model of configs/<task>.yaml, trained with that config's settings and the bench's seed: the
# same network `python transfer/run.py configs/<task>.yaml --seed k` trains. Choices the Go/NoGo config documents
# were measured here on seed 0 (100 LIF trials, task criterion) with an earlier version of this bench: 0.78 with
# recurrent noise 0.1, 0.95 with 0.3, 0.97 with 0.5; with noise 0.1 and LIF v0 up to 30 mV, Kim et al.'s readout
# init and the readout penalty took the score from 0.52 to 0.71; training with b_out fixed at 0 (the transfer
# drops it) gave seeds 0-4 0.96 0.91 0.91 0.88 0.90 against 0.97 0.95 0.94 0.93 0.78, so the bias stays trainable.
N_UNITS = {"gonogo": 200, "context": 250}  # the issue's sizes; the configs must agree


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
    row = {"task": task_name, "seed": seed, "rate_score": result.score, "train_steps": result.step,
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
        return float(torch.where(batch.meta["go"] > 0, late > 0.7, late < 0.3).float().mean())

    return score


def search_one(task_name: str, seed: int, n_trials: int, device: str) -> dict:
    cfg = run_config(task_name, seed)  # the config's task, grid, LIF parameters and warm-up
    task = cfg.make_task()
    rate_net = load_model(checkpoint_path(task_name, seed)).eval()
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        batch = task.sample(1000, gen)
        rate_score = task.score(rate_net(batch.inputs, noise=False).outputs, batch)
    t0 = time.perf_counter()
    transfer = cfg.transfer
    result = search_scale(rate_net, task, transfer.scales, n_trials=n_trials, lif_params=transfer.lif,
                          warmup_ms=transfer.warmup_ms, seed=seed, device=device,
                          keep_readout_bias=transfer.keep_readout_bias)
    search_s = time.perf_counter() - t0
    row = {"task": task_name, "seed": seed, "n_units": rate_net.cfg.n_units, "rate_score": rate_score,
           "best_scale": result.best_scale, "lif_score": result.best_score, "table": result.table,
           "search_s": round(search_s, 1)}
    kim = kim_code_score(task_name)
    if kim is not None:  # the same LIF trials, scored with the reference script's rule
        table = [[scale, round(kim(result.outputs[s], result.batch), 6)] for s, (scale, _) in enumerate(result.table)]
        best = max(range(len(table)), key=lambda s: (table[s][1], -s))
        row.update(kim_code_scale=table[best][0], kim_code_score=table[best][1], kim_code_table=table)
    (OUT / f"{task_name}_seed{seed}_search.json").write_text(json.dumps(row, indent=1))
    print(json.dumps({k: v for k, v in row.items() if "table" not in k}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=["train", "search", "all"])
    parser.add_argument("--task", choices=sorted(N_UNITS), action="append")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--n-trials", type=int, default=100)
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
        seeds = args.seeds if args.seeds is not None else ([0, 1, 2, 3, 4] if task_name == "gonogo" else [0])
        for seed in seeds:
            if args.stage in ("train", "all"):
                train_one(task_name, seed)
            if args.stage in ("search", "all"):
                rows.append(search_one(task_name, seed, args.n_trials, args.device))
    if rows:
        print("LIF = best factor's score on the task's criterion; Kim code = the reference script's criterion")
        print(f"{'task':8s} {'seed':>4s} {'N':>4s} {'rate':>6s} {'scale':>6s} {'LIF':>6s} {'search s':>9s} "
              f"{'Kim-code scale':>15s} {'Kim-code LIF':>13s}")
        for r in rows:
            kim = (f"{r['kim_code_scale']:15.1f} {r['kim_code_score']:13.3f}" if "kim_code_score" in r
                   else f"{'':>15s} {'':>13s}")
            print(f"{r['task']:8s} {r['seed']:4d} {r['n_units']:4d} {r['rate_score']:6.3f} {r['best_scale']:6.1f} "
                  f"{r['lif_score']:6.3f} {r['search_s']:9.1f} {kim}")
        summary = {"rows": [{k: v for k, v in r.items() if "table" not in k} for r in rows]}
        gonogo = [r for r in rows if r["task"] == "gonogo"]
        if gonogo:
            summary["gonogo_n_at_least_0.95"] = sum(r["lif_score"] >= 0.95 for r in gonogo)
            summary["gonogo_n_at_least_0.95_kim_code"] = sum(r["kim_code_score"] >= 0.95 for r in gonogo)
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
