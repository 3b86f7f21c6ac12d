"""Every notebook in notebooks/ runs top to bottom, as Colab would run it, at tiny size.

Each ``notebooks/*.ipynb`` is executed with nbclient in a kernel of this interpreter (so this environment and
this checkout are what it imports), with ``RATESPIKE_TINY=1``, in a temporary folder, within 60 s for the whole
notebook (kernel start not counted). A failing cell fails the test with that cell's source and error. Committed
notebooks carry no outputs, and follow the convention of the first two cells (setup; "parameters").
Needs the ``notebooks`` extra: ``pip install -e '.[test,notebooks]'``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
nbclient = pytest.importorskip("nbclient", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")
pytest.importorskip("ipykernel", reason="the notebooks extra is not installed: pip install -e '.[notebooks]'")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402  (after the skips: comes with nbclient)
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BUDGET_S = 60.0  # the whole notebook at tiny size, on a 2-core CPU
KERNEL_NAME = "ratespike-tests"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class NotebookFailed(AssertionError):
    """A notebook did not run top to bottom: names the cell, its source and its error."""


def _kernel_manager(folder: Path) -> AsyncKernelManager:
    """A kernel of *this* interpreter (``sys.executable``), from a kernelspec written in ``folder``: whatever
    ``python3`` kernel the machine has registered elsewhere is not used."""
    spec_dir = folder / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "ratespike tests", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)
    return AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)


def _kernel_env() -> dict:
    env = dict(os.environ)
    env["RATESPIKE_TINY"] = "1"
    env.pop("MPLBACKEND", None)  # the kernel's own default (inline), as in Jupyter and Colab; CI sets Agg
    env.setdefault("OMP_NUM_THREADS", "1")  # as the rest of the suite (conftest: one torch thread)
    # The checkout under test comes first, whether or not it is installed: the setup cell then finds the
    # packages and never installs anything.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def run_notebook(path: Path, workdir: Path, budget_s: float = BUDGET_S):
    """Execute the notebook at ``path`` in ``workdir``; return ``(executed notebook, seconds)``. Raises
    ``NotebookFailed`` naming the cell when one fails or the notebook overruns ``budget_s`` in all."""
    nb = nbformat.read(path, as_version=4)
    current = {"index": None, "deadline": None}
    client = nbclient.NotebookClient(
        nb, km=_kernel_manager(workdir / ".kernels"), timeout=int(budget_s), startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}}, allow_errors=False, record_timing=True)

    def on_cell_start(cell, cell_index, **_):
        now = time.monotonic()
        if current["deadline"] is None:
            current["deadline"] = now + budget_s
        current["index"] = cell_index
        # Whatever is left of the notebook's budget is this cell's timeout.
        client.timeout = max(1, int(current["deadline"] - now + 0.999))

    client.on_cell_start = on_cell_start
    started = time.monotonic()
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as e:
        raise NotebookFailed(f"{path.name}: cell {current['index']} failed:\n{ANSI.sub('', str(e))}") from None
    except (CellTimeoutError, TimeoutError):
        source = nb.cells[current["index"]].source if current["index"] is not None else ""
        raise NotebookFailed(f"{path.name}: over its {budget_s:g} s budget at cell {current['index']}:\n"
                             f"{source}") from None
    except DeadKernelError as e:
        raise NotebookFailed(f"{path.name}: the kernel died at cell {current['index']}: {e}") from None
    return nb, time.monotonic() - started


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if kind in o.get("data", {})]


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    for expected in ("01_quickstart.ipynb", "02_fixedpoints_any_model.ipynb", "03_rate_to_lif.ipynb",
                     "04_lsnn.ipynb"):
        assert expected in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs_and_follows_the_convention(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), "name notebooks NN_name.ipynb"
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name} cell {i} has committed outputs: clear them"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count: clear it"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert len(code) >= 2, f"{path.name}: needs a setup cell and a parameters cell"
    setup, params = code[0].source, code[1].source
    assert "DEVICE" in setup and "pip" in setup and "torch.cuda.is_available()" in setup, (
        f"{path.name}: the first code cell installs the project when missing and sets DEVICE")
    assert "parameters" in code[1].metadata.get("tags", []), f"{path.name}: tag the second code cell 'parameters'"
    assert 'os.environ.get("RATESPIKE_TINY") == "1"' in params, f"{path.name}: the parameters cell reads TINY"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom_at_tiny_size(path, tmp_path):
    nb, seconds = run_notebook(path, tmp_path)
    print(f"{path.name}: {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    # Figures render inline, with the project imported: at least one PNG among the outputs.
    assert _outputs(nb, "image/png"), f"{path.name} shows no figure inline"


def _scratch_notebook(tmp_path: Path, cells: list[str]) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "scratch.ipynb"
    nbformat.write(nb, path)
    return path


def test_a_failing_cell_fails_with_its_source_and_error(tmp_path):
    path = _scratch_notebook(tmp_path, ["x = 6 * 7", "assert x == 41, f'deliberately wrong: {x}'", "never = 1"])
    with pytest.raises(NotebookFailed) as info:
        run_notebook(path, tmp_path)
    message = str(info.value)
    assert "cell 1 failed" in message
    assert "assert x == 41" in message  # the cell's source
    assert "AssertionError: deliberately wrong: 42" in message  # its error, with the value the kernel computed


def test_a_notebook_over_its_budget_fails_naming_the_cell(tmp_path):
    path = _scratch_notebook(tmp_path, ["import time", "time.sleep(30)"])
    with pytest.raises(NotebookFailed, match=r"over its 3 s budget at cell 1:\ntime.sleep\(30\)"):
        run_notebook(path, tmp_path, budget_s=3)


def test_the_project_in_a_notebook_keeps_inline_figures_and_shows_notebook_bars(tmp_path):
    """A notebook that imports every package still gets its figures inline, from pyplot and from the
    ``Figure`` objects the project's plot functions return; the training loop shows a notebook progress bar
    (a widget: ipywidgets is in the ``notebooks`` extra)."""
    path = _scratch_notebook(tmp_path, [
        "%matplotlib inline",
        "import numpy as np\nimport tasks, ratenets, spiking, transfer, fixedpoints, baselines, pipeline",
        "import matplotlib, sys\nprint(matplotlib.get_backend())\nprint(sys.executable)",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
        "from ratenets.plots import plot_training\n"
        "plot_training({'step': [1, 2], 'loss': [1.0, 0.5], 'eval_step': [2], 'eval_score': [0.5]})",
        "from ratenets import DiscreteRNN, DiscreteRNNConfig, TrainConfig, train\n"
        "task = tasks.make('flipflop', n_bits=1, n_steps_total=40)\n"
        "model = DiscreteRNN(DiscreteRNNConfig(n_units=4))\n"
        "result = train(model, task, TrainConfig(n_steps=3, batch_size=2, eval_every=3, eval_batch_size=2), "
        "progress=True)",
    ])
    nb, _ = run_notebook(path, tmp_path)
    backend, executable = nb.cells[2].outputs[0]["text"].splitlines()
    assert "inline" in backend
    assert executable == sys.executable  # the kernel is this interpreter (this venv), not another python3
    assert [o.output_type for o in nb.cells[3].outputs if "image/png" in o.get("data", {})] == ["display_data"]
    assert [o.output_type for o in nb.cells[4].outputs if "image/png" in o.get("data", {})] == ["execute_result"]
    widget = "application/vnd.jupyter.widget-view+json"
    assert [o for o in nb.cells[5].outputs if widget in o.get("data", {})], "no notebook progress bar"
