"""The one writer for everything a run directory holds: ``summary.json``, text files, ``results.h5``,
figures and checkpoints. Every write goes through ``ratenets.atomic`` (a fresh temporary name beside
the target, then a rename), so a crash or ``kill -9`` leaves the old file or the new one, never half of
one, and two writers never share a temporary file. The writer also remembers what the running stage
wrote, so the runner can check it later and invalidate it as a whole."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch

from ratenets.arrays import to_numpy
from ratenets.atomic import TMP_SUFFIX, atomic_write, atomic_write_text
from ratenets.plots import save_figure

SUMMARY = "summary.json"
RESULTS = "results.h5"
CONFIG = "config.yaml"
REPORT = "report.md"


class OutputError(ValueError):
    """A file of the run directory that exists but cannot be read back; the message is one line."""


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if torch.is_tensor(x) or isinstance(x, np.ndarray):
        return _jsonable(to_numpy(x).tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def read_json(path: Path) -> dict:
    """A JSON mapping from disk; anything else (not UTF-8, not JSON, not a mapping) is an ``OutputError``."""
    path = Path(path)
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise OutputError(f"{path} is corrupt (not UTF-8 text)") from None
    except json.JSONDecodeError as e:
        raise OutputError(f"{path} is corrupt (invalid JSON at line {e.lineno})") from None
    if not isinstance(data, dict):
        raise OutputError(f"{path} is corrupt (a {type(data).__name__}, not a mapping)")
    return data


def h5_readable(path: Path) -> bool:
    try:
        with h5py.File(path, "r"):
            return True
    except OSError:
        return False


def h5_has(path: Path, group: str, datasets) -> bool:
    """Whether ``results.h5`` holds ``group`` with every dataset named."""
    try:
        with h5py.File(path, "r") as f:
            return group in f and all(f"{group}/{d}" in f for d in datasets)
    except OSError:
        return False


class RunWriter:
    """Writes the files of one run directory; ``written`` lists ``(kind, name, detail)`` since ``track()``."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.written: list[tuple[str, str, tuple]] = []

    def track(self) -> None:
        self.written = []

    @property
    def results(self) -> Path:
        return self.out / RESULTS

    def figure_path(self, name: str) -> Path:
        return self.out / "figures" / f"{name}.png"

    def checkpoint_path(self, name: str) -> Path:
        return self.out / "checkpoints" / f"{name}.pt"

    def json(self, name: str, data: dict) -> Path:
        return atomic_write_text(self.out / name, json.dumps(_jsonable(data), indent=2) + "\n")

    def text(self, name: str, text: str) -> Path:
        return atomic_write_text(self.out / name, text)

    def figure(self, name: str, fig) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png``."""
        path = save_figure(fig, self.figure_path(name))
        self.written.append(("figure", name, ()))
        return path

    def checkpoint(self, name: str) -> None:
        """Record that the running stage wrote ``checkpoints/<name>.pt`` (``ratenets`` writes it atomically)."""
        self.written.append(("checkpoint", name, ()))

    def h5_group(self, group: str, arrays: dict, attrs: dict | None = None) -> None:
        """Replace the datasets and attributes of ``group`` in ``results.h5``; other groups, and subgroups of
        ``group`` that other stages wrote (``rate/fixed_points``), are kept.

        ``arrays`` maps dataset names to arrays; ``attrs`` maps dataset names (``""`` for the group) to
        attribute dicts, e.g. units and axis names."""
        path = self.results

        def write(tmp: Path) -> None:
            if path.exists():
                shutil.copyfile(path, tmp)
            with h5py.File(tmp, "a") as f:
                g = f.require_group(group)
                for key in list(g.keys()):
                    if key in arrays or not isinstance(g[key], h5py.Group):
                        del g[key]
                for key in list(g.attrs):
                    del g.attrs[key]
                for name, value in arrays.items():
                    data = to_numpy(value)
                    g.create_dataset(name, data=data, compression="gzip" if data.size > 4096 else None)
                for name, at in (attrs or {}).items():
                    target = g[name] if name else g
                    for k, v in at.items():
                        target.attrs[k] = v

        atomic_write(path, write)
        self.written.append(("h5", group, tuple(sorted(arrays))))

    def remove_h5_groups(self, groups) -> None:
        """Delete ``groups`` from ``results.h5`` (those present), in one atomic rewrite."""
        path = self.results
        if not path.exists() or not h5_readable(path):
            return
        with h5py.File(path, "r") as f:
            present = [g for g in groups if g in f]
        if not present:
            return

        def write(tmp: Path) -> None:
            shutil.copyfile(path, tmp)
            with h5py.File(tmp, "a") as f:
                for g in present:
                    if g in f:  # a nested group (``a/b``) is gone once its parent (``a``) was deleted
                        del f[g]

        atomic_write(path, write)

    def set_aside(self, name: str, reason: str) -> Path:
        """Rename an unreadable file to ``<name>.corrupt-N`` (kept for the user, never deleted)."""
        src = self.out / name
        n = 1
        while (dst := src.with_name(f"{src.name}.corrupt-{n}")).exists():
            n += 1
        src.rename(dst)
        return dst

    def remove_stale_temps(self) -> list[Path]:
        """Temporary files left by a killed writer (only call this while holding the run's lock)."""
        found = []
        for folder in (self.out, self.out / "figures", self.out / "checkpoints"):
            if folder.is_dir():
                found += [p for p in folder.glob(f"*{TMP_SUFFIX}") if p.is_file()]  # pathlib's * matches dotfiles
        for p in found:
            p.unlink(missing_ok=True)
        return sorted(found)
