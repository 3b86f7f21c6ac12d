"""Every notebook in notebooks/ runs top to bottom, as Colab would run it, at tiny size.

Each ``notebooks/*.ipynb`` is executed with nbclient in a kernel of this interpreter (so this environment and
this checkout are what it imports), with ``RATESPIKE_TINY=1``, in a temporary folder. Budget: 60 s of the kernel's
CPU time for the whole notebook (kernel start not counted; with one thread that is its wall time on a quiet
machine, and it does not grow when other jobs share the CPU), and 300 s of wall time, which stops a hung cell. A
failing cell fails the test with that cell's source and error. Committed notebooks carry no outputs, and follow the
convention of the first two cells (setup; "parameters").
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
CPU_BUDGET_S = 60.0  # the whole notebook at tiny size, one thread
WALL_LIMIT_S = 300.0  # stops a hung cell; generous, as the test machine may be shared
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
    env["OMP_NUM_THREADS"] = "1"  # one thread, as the rest of the suite (conftest); the CPU budget assumes it
    # The checkout under test comes first, whether or not it is installed: the setup cell then finds the
    # packages and never installs anything.
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _kernel_cpu_s(client) -> float:
    """CPU seconds the kernel process has used so far (a machine shared with other jobs inflates wall time, not
    this)."""
    import psutil  # comes with ipykernel

    times = psutil.Process(client.km.provisioner.pid).cpu_times()
    return times.user + times.system + times.children_user + times.children_system


def run_notebook(path: Path, workdir: Path, wall_limit_s: float = WALL_LIMIT_S, cpu_budget_s: float = CPU_BUDGET_S):
    """Execute the notebook at ``path`` in ``workdir``; return ``(executed notebook, wall seconds, kernel CPU
    seconds)``, both from the first cell on. Raises ``NotebookFailed`` naming the cell when one fails or the
    notebook overruns ``wall_limit_s`` of wall time, and naming the CPU time when it used more than
    ``cpu_budget_s``."""
    nb = nbformat.read(path, as_version=4)
    current = {"index": None, "started": None, "deadline": None, "cpu_start": None, "cpu_end": None}
    client = nbclient.NotebookClient(
        nb, km=_kernel_manager(workdir / ".kernels"), timeout=int(wall_limit_s), startup_timeout=120,
        resources={"metadata": {"path": str(workdir)}}, allow_errors=False, record_timing=True)

    def on_cell_start(cell, cell_index, **_):
        now = time.monotonic()
        if current["deadline"] is None:
            current["started"], current["deadline"] = now, now + wall_limit_s
            current["cpu_start"] = _kernel_cpu_s(client)
        current["index"] = cell_index
        # Whatever is left of the notebook's budget is this cell's timeout.
        client.timeout = max(1, int(current["deadline"] - now + 0.999))

    def on_cell_executed(**_):
        current["cpu_end"] = _kernel_cpu_s(client)

    client.on_cell_start = on_cell_start
    client.on_cell_executed = on_cell_executed
    try:
        client.execute(env=_kernel_env())
    except CellExecutionError as e:
        raise NotebookFailed(f"{path.name}: cell {current['index']} failed:\n{ANSI.sub('', str(e))}") from None
    except (CellTimeoutError, TimeoutError):
        source = nb.cells[current["index"]].source if current["index"] is not None else ""
        raise NotebookFailed(f"{path.name}: over its {wall_limit_s:g} s wall-time limit at cell {current['index']}:\n"
                             f"{source}") from None
    except DeadKernelError as e:
        raise NotebookFailed(f"{path.name}: the kernel died at cell {current['index']}: {e}") from None
    wall_s = time.monotonic() - current["started"] if current["started"] is not None else 0.0
    cpu_s = (current["cpu_end"] or 0.0) - (current["cpu_start"] or 0.0)
    if cpu_s > cpu_budget_s:
        raise NotebookFailed(f"{path.name}: used {cpu_s:.1f} s of CPU ({wall_s:.1f} s wall), over its budget of "
                             f"{cpu_budget_s:g} s at tiny size: make its TINY sizes smaller")
    return nb, wall_s, cpu_s


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
    nb, seconds, cpu_s = run_notebook(path, tmp_path)
    print(f"{path.name}: {seconds:.1f} s wall, {cpu_s:.1f} s CPU in the kernel")
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


def test_a_hung_cell_is_stopped_at_the_wall_time_limit_and_named(tmp_path):
    path = _scratch_notebook(tmp_path, ["import time", "time.sleep(30)"])
    with pytest.raises(NotebookFailed, match=r"over its 3 s wall-time limit at cell 1:\ntime.sleep\(30\)"):
        run_notebook(path, tmp_path, wall_limit_s=3)


def test_a_notebook_over_its_cpu_budget_fails(tmp_path):
    busy = "import time\nend = time.process_time() + 2.0\nwhile time.process_time() < end:\n    pass"
    path = _scratch_notebook(tmp_path, ["x = 1", busy])
    nb, _, cpu_s = run_notebook(path, tmp_path, cpu_budget_s=10)  # within its budget: passes, and counts it
    assert 2.0 <= cpu_s < 10
    with pytest.raises(NotebookFailed, match=r"used \d+\.\d s of CPU .* over its budget of 1 s"):
        run_notebook(path, tmp_path, cpu_budget_s=1)


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
    nb, _, _ = run_notebook(path, tmp_path)
    backend, executable = nb.cells[2].outputs[0]["text"].splitlines()
    assert "inline" in backend
    assert executable == sys.executable  # the kernel is this interpreter (this venv), not another python3
    assert [o.output_type for o in nb.cells[3].outputs if "image/png" in o.get("data", {})] == ["display_data"]
    assert [o.output_type for o in nb.cells[4].outputs if "image/png" in o.get("data", {})] == ["execute_result"]
    widget = "application/vnd.jupyter.widget-view+json"
    assert [o for o in nb.cells[5].outputs if widget in o.get("data", {})], "no notebook progress bar"
