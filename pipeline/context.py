"""What a stage gets: the run's config, task, device, summary, the one writer, and named random streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ratenets import load_model
from ratenets.seeds import HELD_OUT, stream
from tasks import Task

from .errors import ConfigError, RunError  # noqa: F401  (re-exported for stages)
from .outputs import RunWriter
from .registry import STAGES


@dataclass
class RunContext:
    cfg: object  # pipeline.config.RunConfig
    out: Path
    task: Task
    device: torch.device
    summary: dict
    writer: RunWriter
    force: bool = False
    log: Callable[[str], None] = print
    stage: str | None = None  # the stage running now
    pending: dict[str, Path] = field(default_factory=dict)  # checkpoints a forced stage writes aside

    @property
    def section(self):
        """The running stage's config section."""
        return self.cfg.section(self.stage)

    @property
    def h5(self) -> Path:
        return self.writer.results

    def checkpoint(self, model: str) -> Path:
        """Where the running stage writes checkpoint ``model``. A forced stage writes beside the old one,
        which is replaced only when the stage has finished (the old weights survive any failure)."""
        if self.force:
            path = self.out / "checkpoints" / f"{model}.pending.pt"
            self.pending[model] = path
        else:
            path = self.writer.checkpoint_path(model)
        self.writer.checkpoint(model)
        return path

    def load_model(self, name: str) -> torch.nn.Module:
        """A trained model of this run from its checkpoint; a missing one is a ``RunError`` naming the stage."""
        maker = next((s.name for s in STAGES.values() if name in s.models), name)
        path = self.pending.get(name, self.writer.checkpoint_path(name))
        if maker != self.stage and maker not in self.summary.get("stages", {}) or not path.exists():
            raise RunError(f"the {maker} stage has no results in {self.out} that still hold; "
                           f"run it first (--stages {maker},...)")
        return load_model(path).to(self.device).eval()

    def generator(self, offset: int = HELD_OUT, device=None) -> torch.Generator:
        """A fresh generator of the named stream ``offset`` (``ratenets.seeds``) for this run's seed."""
        return stream(self.cfg.seed, offset, device)
