"""The stage registry. A stage is one module in ``pipeline/stages/`` that builds a ``Stage`` and calls
``register``: its name (also its config section's key), its place in the order, the stages whose
results it reads, the summary keys it owns, its run function and its report lines. The runner needs
nothing else to run it, skip it when done, and invalidate it when what it read has changed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    name: str
    order: int  # stages run in increasing order
    run: Callable  # run(ctx: RunContext) -> None
    section: type | None = None  # config section (a frozen dataclass); its YAML key is ``name``
    needs: tuple[str, ...] = ()  # stages whose results it reads (those of them in the run)
    models: tuple[str, ...] = ()  # summary["models"][m] entries it writes (all it may write, see models_for)
    models_for: Callable | None = None  # models_for(section) -> those of ``models`` a config makes (None: all)
    summary_keys: tuple[str, ...] = ()  # other top-level summary keys it owns
    report: Callable | None = None  # report(ctx) -> list of markdown lines
    description: str = ""

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"stage name must be an identifier, got {self.name!r}")

    def written_models(self, cfg) -> tuple[str, ...]:
        """The ``models`` this stage writes under the run config ``cfg`` (a config may choose some of them)."""
        if self.models_for is None:
            return self.models
        return tuple(self.models_for(cfg.section(self.name)))


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name in STAGES and STAGES[stage.name] is not stage:
        raise ValueError(f"a stage named {stage.name!r} is registered twice")
    STAGES[stage.name] = stage
    return stage


def check_graph() -> None:
    """Every stage's needs are registered and run before it (called once all stage modules are imported)."""
    for stage in STAGES.values():
        for need in stage.needs:
            if need not in STAGES or STAGES[need].order >= stage.order:
                raise ValueError(f"stage {stage.name!r} needs {need!r}, which is not a stage that runs before it")


def ordered(names=None) -> list[Stage]:
    """Registered stages (or those named) in run order."""
    chosen = STAGES.values() if names is None else [STAGES[n] for n in dict.fromkeys(names)]
    return sorted(chosen, key=lambda s: s.order)


def downstream(name: str) -> list[str]:
    """Every stage that reads ``name``'s results, directly or through others, in run order."""
    out: set[str] = set()
    frontier = {name}
    while frontier:
        frontier = {s.name for s in STAGES.values() if set(s.needs) & frontier} - out
        out |= frontier
    return [s.name for s in ordered(out)]
