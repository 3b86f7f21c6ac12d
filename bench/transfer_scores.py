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

import tasks
from ratenets import RateRNN, RateRNNConfig, TrainConfig, load_model, train

OUT = Path("runs/transfer_scores")
# Kim et al. draw the readout as N(0, 1)/100 (RateRNN's default is N(0, 1/N), norm ~1). The LIF output's spike
# noise grows with the readout's norm (each filtered spike train fluctuates by ~sqrt(rate/2τd) Hz), so a net
# that starts from a small readout and learns to move many units together transfers far better.
READOUT_INIT_STD = 0.01
# For the same reason the readout's squared norm is penalised during training (the shared loop adds a
# model's ``regularizer(rollout)`` to the loss).
READOUT_L2 = 0.02
# Go/NoGo nets are trained with recurrent noise 0.5 instead of Kim et al.'s 0.1: a deeper NoGo attractor
# survives the LIF network's spike noise. Measured on seed 0 (100 LIF trials, task criterion, default
# LIFParams): 0.78 with 0.1, 0.95 with 0.3, 0.97 with 0.5; with noise 0.1 and LIF v0 up to 30 mV, the readout
# init and penalty above took the score from 0.52 to 0.71.
# The transfer drops the readout bias (as the paper does); training with b_out fixed at 0 (train_readout_bias
# False) was measured too: seeds 0-4 gave 0.96 0.91 0.91 0.88 0.90 against 0.97 0.95 0.94 0.93 0.78 with a
# trained b_out (~0.1), so the bias stays trainable.
SETTINGS = {
    # n_units from the issue. A fixed budget of batched Adam steps, no early stop: a net that only just
    # meets the criterion (NoGo output 0.29 against the 0.3 bound) leaves no margin for spiking noise.
    "gonogo": dict(
        n_units=200, noise_std=0.5, train_readout_bias=True,
        train=TrainConfig(n_steps=600, batch_size=32, lr=0.01, eval_every=100, target_score=1.01, checkpoint_every=100),
    ),
    "context": dict(
        n_units=250, noise_std=0.1, train_readout_bias=True,
        train=TrainConfig(n_steps=1500, batch_size=32, lr=0.01, eval_every=100, target_score=1.01,
                          checkpoint_every=100),
    ),
}


def checkpoint_path(task_name: str, seed: int) -> Path:
    return OUT / f"{task_name}_seed{seed}.pt"


def train_one(task_name: str, seed: int) -> dict:
    task = tasks.make(task_name)
    setting = SETTINGS[task_name]
    cfg = RateRNNConfig(n_units=setting["n_units"], n_inputs=task.n_inputs, n_outputs=task.n_outputs,
                        dt_ms=task.dt_ms, activation="sigmoid", dale=True, train_tau=True,
                        noise_std=setting["noise_std"])
    model = RateRNN(cfg, seed=seed)
    with torch.no_grad():  # Kim et al.'s readout init, N(0, 1)/100: see READOUT_INIT_STD
        g = torch.Generator().manual_seed(seed)
        model.w_out.copy_(READOUT_INIT_STD * torch.randn(model.w_out.shape, generator=g))
    model.regularizer = lambda rollout: READOUT_L2 * model.w_out.pow(2).sum()
    model.b_out.requires_grad_(setting["train_readout_bias"])
    t0 = time.perf_counter()
    result = train(model, task, setting["train"], checkpoint_path=checkpoint_path(task_name, seed), seed=seed)
    row = {"task": task_name, "seed": seed, "rate_score": result.score, "train_steps": result.step,
           "train_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(row), flush=True)
    return row


def load_rate_net(path: Path):
    # Checkpoints written before ratenets stored torch.__version__ as a plain str hold a TorchVersion.
    with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
        return load_model(path)


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
    from transfer.search import search_scale

    task = tasks.make(task_name)
    rate_net = load_rate_net(checkpoint_path(task_name, seed)).eval()
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        batch = task.sample(1000, gen)
        rate_score = task.score(rate_net(batch.inputs, noise=False).outputs, batch)
    t0 = time.perf_counter()
    result = search_scale(rate_net, task, n_trials=n_trials, seed=seed, device=device)
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
    parser.add_argument("--task", choices=sorted(SETTINGS), action="append")
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
