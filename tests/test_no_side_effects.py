"""Importing the project, or drawing its figures, changes no global state: the matplotlib backend a user chose
stays, pyplot is never imported (so no figure piles up in its list)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

IMPORTS = """
import matplotlib
matplotlib.use("svg")
import ratenets, spiking, transfer, fixedpoints, tasks
import ratenets.plots, spiking.plots, transfer.plots, fixedpoints.plots
print(matplotlib.get_backend())
"""

DRAWS = """
import sys, tempfile
from pathlib import Path
import numpy as np
from ratenets.plots import plot_training
from spiking.plots import plot_raster
from transfer.plots import plot_scale_scan
history = {"step": [1, 2, 3], "loss": [1.0, 0.5, 0.2], "eval_step": [3], "eval_score": [0.5]}
figs = [plot_training(history), plot_raster(np.eye(4), dt_ms=1.0),
        plot_scale_scan([[20, 0.5], [25, 0.9]], Path(tempfile.mkdtemp()) / "scan.png")]
print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules, len(figs))
"""


def run(code: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_importing_the_packages_keeps_the_users_matplotlib_backend():
    assert run(IMPORTS) == ["svg"]


def test_drawing_and_saving_figures_keeps_the_backend_and_never_imports_pyplot():
    assert run(IMPORTS + DRAWS) == ["svg", "svg", "False", "3"]
