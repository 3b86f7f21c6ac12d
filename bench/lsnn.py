"""Forward + backward time of one LSNN training step against the plain snntorch ``RLeaky`` loop of
the same size (Bellec-sized bench: N 256 units, T 500 steps, batch 64), ``nn.GRU`` printed for scale.

    python bench/lsnn.py [--units 256] [--steps 500] [--batch 64] [--repeats 3] [--threads 1]

Ours: 128 LIF + 128 ALIF units (adaptation, refractoriness, no autapses, filtered readout, rate
regulariser). Reference: ``snn.RLeaky(all_to_all=True)`` driven by an ``nn.Linear`` input layer each step,
default ATan surrogate, subtractive reset, readout ``nn.Linear`` on the spikes, as the snntorch tutorials
write it. Both use an MSE loss on all steps. The last line is JSON; ``ratio = reference_s / ours_s``
(above 1: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import snntorch as snn
import torch
from torch import nn

from spiking.lsnn import LSNN, LSNNConfig

N_INPUTS, N_OUTPUTS = 20, 3


class RLeakyNet(nn.Module):
    def __init__(self, n_units: int):
        super().__init__()
        self.fc_in = nn.Linear(N_INPUTS, n_units)
        self.lif = snn.RLeaky(beta=0.95, linear_features=n_units, threshold=1.0)
        self.fc_out = nn.Linear(n_units, N_OUTPUTS)

    def forward(self, x):  # x [T, B, I]
        spk, mem = self.lif.init_rleaky()
        spikes = []
        for t in range(x.shape[0]):
            spk, mem = self.lif(self.fc_in(x[t]), spk, mem)
            spikes.append(spk)
        return self.fc_out(torch.stack(spikes))


class GRUNet(nn.Module):
    def __init__(self, n_units: int):
        super().__init__()
        self.gru = nn.GRU(N_INPUTS, n_units, batch_first=True)
        self.fc_out = nn.Linear(n_units, N_OUTPUTS)

    def forward(self, x):
        return self.fc_out(self.gru(x)[0])


def time_steps(runs: dict, params: dict, repeats: int) -> dict:
    """Best of ``repeats`` wall times of forward + backward for each model, after one warm-up each; the
    models take turns within every repeat, so a load change on a shared machine hits them alike."""
    best = dict.fromkeys(runs, float("inf"))
    for i in range(repeats + 1):
        for name, run in runs.items():
            for p in params[name]:
                p.grad = None
            t0 = time.perf_counter()
            run().backward()
            elapsed = time.perf_counter() - t0
            if i > 0:
                best[name] = min(best[name], elapsed)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=256)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, steps, batch = args.units, args.steps, args.batch
    x = (torch.rand(batch, steps, N_INPUTS) < 0.05).float()
    target = torch.randn(batch, steps, N_OUTPUTS)

    cfg = LSNNConfig(
        n_lif=n // 2,
        n_alif=n - n // 2,
        n_inputs=N_INPUTS,
        n_outputs=N_OUTPUTS,
        dt_ms=1.0,
        tau_a_ms=700.0,
        refractory_steps=5,
        input_scale=1.0,
        rec_scale=0.1,
    )
    ours = LSNN(cfg)

    def run_ours():
        rollout = ours(x)
        return ((rollout.outputs - target) ** 2).mean() + ours.regularizer(rollout)

    ref = RLeakyNet(n)
    x_tm, target_tm = x.transpose(0, 1).contiguous(), target.transpose(0, 1).contiguous()

    def run_ref():
        return ((ref(x_tm) - target_tm) ** 2).mean()

    gru = GRUNet(n)

    def run_gru():
        return ((gru(x) - target) ** 2).mean()

    runs = {"ours": run_ours, "ref": run_ref, "gru": run_gru}
    params = {"ours": list(ours.parameters()), "ref": list(ref.parameters()), "gru": list(gru.parameters())}
    best = time_steps(runs, params, args.repeats)
    ours_s, ref_s, gru_s = best["ours"], best["ref"], best["gru"]
    print(f"LSNN (ours, {cfg.n_lif} LIF + {cfg.n_alif} ALIF)  {ours_s:8.3f} s")
    print(f"snntorch RLeaky loop ({n} LIF)       {ref_s:8.3f} s")
    print(f"nn.GRU ({n} units, for scale)         {gru_s:8.3f} s")
    result = {
        "ours_s": round(ours_s, 4),
        "reference_s": round(ref_s, 4),
        "ratio": round(ref_s / ours_s, 3),
        "gru_s": round(gru_s, 4),
        "units": n,
        "steps": steps,
        "batch": batch,
        "threads": args.threads,
        "torch": torch.__version__,
        "snntorch": snn.__version__,
        "machine": platform.machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
