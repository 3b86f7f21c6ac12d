"""Self-describing checkpoints: a model can be rebuilt from the file alone, and training resumes
from it exactly. Everything stored is a tensor, a number, a string, a list or a dict, so the file
loads with ``torch.load(weights_only=True)``. Writes go through ``atomic.atomic_write`` (a unique
temporary name, renamed over the target; removed if the write fails)."""

from __future__ import annotations

import platform
from dataclasses import fields
from pathlib import Path

import torch

from .atomic import atomic_write

FORMAT = "ratespike-checkpoint/1"
_MODEL_CLASSES: dict[str, type] = {}
_MODEL_PACKAGES = ("ratenets", "spiking", "baselines")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, or not one of ours."""


def register_model(cls):
    """Class decorator: make ``cls`` rebuildable from a checkpoint. ``cls.config_class`` must be a
    dataclass and ``cls(config, seed=...)`` must build it."""
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def versions() -> dict[str, str]:
    import numpy

    out = {"python": platform.python_version(), "torch": str(torch.__version__), "numpy": str(numpy.__version__)}
    try:
        from importlib.metadata import version

        out["ratespike"] = version("ratespike")
    except Exception:  # running from a source tree that is not installed
        out["ratespike"] = "source"
    return out


def atomic_torch_save(obj, path: Path) -> None:
    """``torch.save`` through ``atomic_write``: a unique temporary name, renamed over ``path``, removed on failure."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_checkpoint(path: Path, model: torch.nn.Module, **extra) -> None:
    """Write ``{format, model_class, model_config, model_state, versions, **extra}`` atomically."""
    payload = {
        "format": FORMAT,
        "model_class": type(model).__name__,
        "model_config": model.config_dict(),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "versions": versions(),
        **extra,
    }
    atomic_torch_save(payload, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint with ``weights_only=True``; any failure is one ``CheckpointError`` line."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a ratespike checkpoint (format {FORMAT} expected)")
    return payload


REQUIRED_KEYS = ("model_class", "model_config", "model_state")


def build_model(payload: dict, path: Path | str | None = None) -> torch.nn.Module:
    """Rebuild the model a checkpoint describes and load its weights; ``path`` names the file in errors."""
    where = f"checkpoint {path}" if path is not None else "checkpoint"
    for key in REQUIRED_KEYS:
        if key not in payload:
            raise CheckpointError(f"{where} has no {key!r} entry, so no model can be rebuilt from it")
    name = payload["model_class"]
    if name not in _MODEL_CLASSES:
        import importlib

        for package in _MODEL_PACKAGES:  # packages whose models register themselves on import
            importlib.import_module(package)
    if name not in _MODEL_CLASSES:
        raise CheckpointError(f"{where} holds an unknown model class {name!r}; known: {sorted(_MODEL_CLASSES)}")
    cls = _MODEL_CLASSES[name]
    allowed = {f.name for f in fields(cls.config_class)}
    # a config class may map keys its older checkpoints used to today's names (e.g. LIF's rate_dt_ms -> dt_ms)
    renamed = getattr(cls.config_class, "RENAMED_KEYS", {})
    stored = {renamed.get(k, k): v for k, v in dict(payload["model_config"]).items()}
    try:
        cfg = cls.config_class(**{k: v for k, v in stored.items() if k in allowed})
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{where} holds an invalid model_config for {name} ({str(e).splitlines()[0]})") from None
    model = cls(cfg)
    try:
        model.load_state_dict(payload["model_state"])
    except (RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{where} holds weights that do not fit {name}: {str(e).splitlines()[0]}") from None
    return model


def load_model(path: Path) -> torch.nn.Module:
    return build_model(load_checkpoint(path), path)
