"""Atomic writers for a run directory: ``summary.json``, ``results.h5`` and text files.

Every write goes to a temporary file in the same folder and is renamed over the target, so an
interrupted run never leaves a half-written file behind."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import torch


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if torch.is_tensor(x) or isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(_jsonable(data), indent=2) + "\n")


def read_json(path: Path) -> dict:
    """Read a JSON file; a corrupt one raises ``ValueError`` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is corrupt (invalid JSON at line {e.lineno}); delete it or use --force") from None


def write_h5_group(path: Path, group: str, arrays: dict, attrs: dict | None = None) -> None:
    """Replace ``group`` in the HDF5 file at ``path`` (other groups kept), atomically.

    ``arrays`` maps dataset names (``a/b`` makes subgroups) to arrays; ``attrs`` maps dataset names
    (or ``""`` for the group itself) to attribute dicts, e.g. units and axis names."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    if path.exists():
        shutil.copyfile(path, tmp)
    with h5py.File(tmp, "a") as f:
        if group in f:
            del f[group]
        g = f.create_group(group)
        for name, value in arrays.items():
            data = value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value)
            g.create_dataset(name, data=data, compression="gzip" if data.size > 4096 else None)
        for name, at in (attrs or {}).items():
            target = g[name] if name else g
            for k, v in at.items():
                target.attrs[k] = v
    os.replace(tmp, path)
