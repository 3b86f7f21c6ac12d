"""The documented entry: ``python transfer/run.py CONFIG [--out DIR] [--stages a,b] [--device D] [--seed N]
[--force]``. A thin shim over the runner in ``pipeline`` (also ``python -m pipeline`` and ``ratespike``)."""

import sys
from pathlib import Path

if __name__ == "__main__" and __package__ in (None, ""):  # run as a script from a source tree
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from pipeline.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(prog="transfer/run.py"))
