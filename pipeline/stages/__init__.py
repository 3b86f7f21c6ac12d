"""One module per pipeline stage; each registers itself on import (``pipeline.registry``). Every module
in this folder whose name does not start with ``_`` is imported here, so adding a stage is adding a module."""

import importlib
import pkgutil

from ..registry import check_graph

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

check_graph()
