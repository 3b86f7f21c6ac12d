"""LFADS benchmarks (``baselines.lfads``).

    python bench/lfads.py lorenz  [--config configs/lorenz_lfads.yaml] [--threads 2] [--no-stop] [--out F.json]
    python bench/lfads.py chaotic [--steps 3000] [--threads 2] [--out F.json]
    python bench/lfads.py step    [--device cpu] [--threads 2] [--repeats 10]

``lorenz``: training time until the R² of the inferred rates against the true rates on the validation trials
reaches ``--target`` (0.85; the held-out trials' R² at that step is the reported score), on the dataset, split
and fit settings of the pipeline config's ``lfads`` section (evaluations are not counted in the training
clock; ``--no-stop`` trains on to ``n_steps``; at most ``--time-limit`` seconds, 900 for lorenz), with the R²
curves and the latents' R² after an affine fit.
``chaotic``: the chaotic-RNN dataset (N 50, g 1.5, τ 25 ms), R² of rates and latents on held-out trials.
``step``: seconds per training step (forward, backward, AdamW) at the lfads-torch reference sizes (gen 200,
factors 100, encoders 64, controller 64, co_dim 4, 100 neurons, 100 bins, batch 64), median of ``--repeats``
after 2 warm-up steps. The last line of each is JSON. Timings are wall time on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from baselines.lfads import LFADS, LFADSConfig, LFADSFitConfig, fit, infer, loss_terms  # noqa: E402
from baselines.lfads_data import affine_r_squared, chaotic_rnn_dataset, lorenz_dataset, r_squared  # noqa: E402
from ratenets.atomic import atomic_write_text  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def run_fit(train, valid, test, fit_cfg, target: float | None, time_limit: float | None, seed: int,
            log=print) -> dict:
    """Fit with an evaluation at every ``eval_every``; the training clock leaves evaluations out. The stopping
    rule reads the *validation* trials' rate R² (``target``); the held-out trials only report, so the held-out
    figure comes from trials that chose nothing (not the stopping step)."""
    clock = {"eval": 0.0, "start": time.perf_counter(), "reached": None}
    curve = []

    def callback(step, model):
        t0 = time.perf_counter()
        r2_valid = r_squared(infer(model, valid.spikes).rates, valid.rates)
        r2 = r_squared(infer(model, test.spikes).rates, test.rates)
        train_s = t0 - clock["start"] - clock["eval"]
        curve.append([step, round(train_s, 2), r2_valid, r2])
        log(f"step {step}: {train_s:.0f} s of training, rate R² validation {r2_valid:.3f}, held-out {r2:.3f}")
        clock["eval"] += time.perf_counter() - t0
        if target is not None and r2_valid >= target and clock["reached"] is None:
            clock["reached"] = (step, train_s)
            return True
        return time_limit is not None and train_s > time_limit

    result = fit(train.spikes, fit_cfg, valid_spikes=valid.spikes, device="cpu", seed=seed, callback=callback)
    out = result.infer(test.spikes)
    return {"rate_r2": r_squared(out.rates, test.rates), "latent_r2": affine_r_squared(out.factors, test.latents),
            "valid_rate_r2": r_squared(result.infer(valid.spikes).rates, valid.rates),
            "steps": result.history["step"][-1], "train_s": curve[-1][1] if curve else None,
            "reached_target": clock["reached"], "curve_columns": ["step", "train_s", "valid_r2", "heldout_r2"],
            "curve": curve, "result": result}


def lorenz(args) -> dict:
    """The config's ``lfads`` section (a pipeline config): the same dataset, split and fit as the pipeline's."""
    from pipeline.config import load_config
    from pipeline.stages.lfads import LFADS_OFFSET, _split
    from ratenets.seeds import stream

    cfg = load_config(args.config)
    sec = cfg.lfads
    s = sec.synthetic
    data = lorenz_dataset(s.n_conditions, s.trials_per_condition, n_neurons=s.n_neurons, n_bins=s.n_bins,
                          seed=cfg.seed)
    train, valid, test = (data.subset(i) for i in _split(len(data), sec.split, stream(cfg.seed, LFADS_OFFSET + 1)))
    fit_cfg = LFADSFitConfig(model=sec.model, train=sec.train)
    target = None if args.no_stop else args.target
    limit = 900.0 if args.time_limit is None else args.time_limit
    res = run_fit(train, valid, test, fit_cfg, target, limit, cfg.seed)
    res.pop("result")
    return {"bench": "lfads-lorenz", "config": args.config, "target_r2": args.target,
            "threads": torch.get_num_threads(), **res}


def chaotic(args) -> dict:
    data = chaotic_rnn_dataset(seed=args.seed)
    train, valid, test = data.split((0.7, 0.1, 0.2))
    fit_cfg = LFADSFitConfig.from_dict({
        "model": {"co_dim": 0, "gen_dim": 64, "fac_dim": 20, "ic_enc_dim": 64, "dropout": 0.05},
        "train": {"n_steps": args.steps, "batch_size": 32, "lr": 0.008, "lr_decay": 0.5,
                  "lr_decay_every": max(1, args.steps // 3), "kl_ramp_steps": 100, "eval_every": 50}})
    res = run_fit(train, valid, test, fit_cfg, None, args.time_limit, args.seed)
    res.pop("result")
    return {"bench": "lfads-chaotic-rnn", **res}


def step_time(args) -> dict:
    device = torch.device(args.device)
    cfg = LFADSConfig(n_neurons=100, n_bins=100)  # the reference sizes are the defaults
    model = LFADS(cfg).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    g = torch.Generator(device=device).manual_seed(0)
    spikes = torch.poisson(torch.full((64, 100, 100), 0.2, device=device), generator=g)
    times = []
    for k in range(args.repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        terms = loss_terms(model, spikes, 0.3, g)
        loss = terms["nll"].mean() + terms["kl"].mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if k >= 2:
            times.append(time.perf_counter() - t0)
    return {"bench": "lfads-step", "device": str(device), "threads": torch.get_num_threads(),
            "sizes": {"gen": 200, "factors": 100, "encoders": 64, "controller": 64, "co_dim": 4, "neurons": 100,
                      "bins": 100, "batch": 64},
            "median_s": statistics.median(times), "min_s": min(times), "repeats": args.repeats}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("lorenz", "chaotic", "step"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "lorenz_lfads.yaml"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-stop", action="store_true", help="lorenz: train on past the target")
    parser.add_argument("--steps", type=int, default=3000, help="chaotic: training steps")
    parser.add_argument("--target", type=float, default=0.85, help="lorenz: validation rate R² to reach")
    parser.add_argument("--time-limit", type=float, default=None, help="stop after this many seconds of training")
    parser.add_argument("--device", default="cpu", help="step: cpu or cuda")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--out", default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {"lorenz": lorenz, "chaotic": chaotic, "step": step_time}[args.what](args)
    line = json.dumps(res)
    if args.out:
        atomic_write_text(args.out, line + "\n")
    print(line)


if __name__ == "__main__":
    main()
