"""Every score function, figure writer and file writer accepts tensors wherever they live.

CI has no GPU, so a GPU is imitated: ``on_fake_gpu`` turns CPU tensors into ``ClaimsCuda`` tensors, which say
they live on ``cuda:0`` and behave as a CUDA tensor does where it matters here: they refuse to become numpy
arrays (``.numpy()``, ``np.asarray``, matplotlib, h5py) until moved with ``.cpu()``, and refuse to meet a CPU
tensor of one or more dimensions in an operation. Tensors made inside ``FakeGpu()`` with ``device=x.device``
come out on the same fake GPU, as on a real one."""

import dataclasses

import h5py
import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

import tasks
from ratenets.plots import plot_training, plot_trials
from spiking.plots import plot_output_vs_target, plot_raster, plot_rate_histogram
from transfer.plots import plot_scale_scan

CUDA = torch.device("cuda", 0)


class ClaimsCuda(torch.Tensor):
    @property
    def device(self):
        return CUDA

    @property
    def is_cuda(self):
        return True

    def numpy(self, *a, **k):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")

    def __array__(self, *a, **k):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu() first.")


def _flat(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _flat(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _flat(v)
    else:
        yield x


def _is_cuda_device(d) -> bool:
    return d is not None and not isinstance(d, torch.dtype) and torch.device(d).type == "cuda"


class FakeGpu(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in (torch.Tensor.cpu,) or (func is torch.Tensor.to and any(
                isinstance(a, (str, torch.device)) and torch.device(a).type == "cpu" for a in args[1:])) or (
                func is torch.Tensor.to and kwargs.get("device") is not None and not _is_cuda_device(kwargs["device"])):
            return func(*args, **kwargs).as_subclass(torch.Tensor)
        onto_gpu = _is_cuda_device(kwargs.get("device"))
        if onto_gpu:
            kwargs["device"] = "cpu"
        if func is torch.Tensor.to and any(_is_cuda_device(a) for a in args[1:] if isinstance(a, (str, torch.device))):
            args = tuple("cpu" if isinstance(a, (str, torch.device)) and _is_cuda_device(a) else a for a in args)
            onto_gpu = True
        tensors = [t for t in _flat((args, kwargs)) if isinstance(t, torch.Tensor)]
        on_gpu = any(isinstance(t, ClaimsCuda) for t in tensors)
        if on_gpu and any(not isinstance(t, ClaimsCuda) and t.dim() > 0 for t in tensors):
            raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices, "
                               f"cuda:0 and cpu! ({getattr(func, '__name__', func)})")
        out = func(*args, **kwargs)
        if on_gpu or onto_gpu:
            out = _wrap(out)
        return out


def _wrap(x):
    if isinstance(x, torch.Tensor) and not isinstance(x, ClaimsCuda):
        return x.as_subclass(ClaimsCuda)
    if isinstance(x, tuple) and hasattr(x, "_fields"):
        return type(x)(*(_wrap(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(_wrap(v) for v in x)
    return x


def on_fake_gpu(x):
    """``x`` (a tensor, a TaskBatch, a dict...) with every tensor moved to the fake GPU."""
    if isinstance(x, torch.Tensor):
        return x.as_subclass(ClaimsCuda)
    if isinstance(x, tasks.TaskBatch):
        return tasks.TaskBatch(*(on_fake_gpu(v) for v in x[:3]), {k: on_fake_gpu(v) for k, v in x.meta.items()})
    if isinstance(x, dict):
        return {k: on_fake_gpu(v) for k, v in x.items()}
    return x


def test_the_imitation_fails_where_a_gpu_would():
    x = on_fake_gpu(torch.ones(3))
    with FakeGpu():
        with pytest.raises(TypeError, match="Use Tensor.cpu"):
            np.asarray(x)
        with pytest.raises(RuntimeError, match="same device"):
            _ = x + torch.arange(3)
        assert (x + torch.tensor(2.0)).device == CUDA  # a 0-dim CPU tensor may meet a GPU tensor
        assert torch.arange(3, device=x.device).device == CUDA
        assert np.array_equal(x.cpu().numpy(), np.ones(3))
        y = x.detach().cpu()
        assert type(y) is torch.Tensor


SMALL = {"flipflop": {"n_bits": 2, "n_steps_total": 40}, "seq_digits": {}}


@pytest.mark.parametrize("name", tasks.names())
def test_every_score_function_runs_where_the_outputs_are(name):
    task = tasks.make(name, **SMALL.get(name, {}))
    batch = task.sample(4, torch.Generator().manual_seed(0))
    outputs = batch.targets + 0.01 * torch.randn(batch.targets.shape, generator=torch.Generator().manual_seed(1))
    expected = task.score(outputs, batch)
    with FakeGpu():
        got = task.score(on_fake_gpu(outputs), on_fake_gpu(batch))
    assert isinstance(got, float) and got == pytest.approx(expected)


def test_every_figure_writer_moves_tensors_to_the_cpu(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = lambda *shape: on_fake_gpu(torch.rand(*shape, generator=g))  # noqa: E731
    history = {"step": list(range(1, 31)), "loss": x(30), "eval_step": [10, 20, 30], "eval_score": x(3)}
    with FakeGpu():
        figures = [
            plot_training(history, tmp_path / "a.png"),
            plot_trials(x(3, 10, 2), x(3, 10, 2), x(3, 10, 2), x(3, 10, 2), 5.0, tmp_path / "b.png"),
            plot_scale_scan(x(4, 2), tmp_path / "c.png"),
            plot_raster((x(2, 40, 3) > 0.9).to(torch.uint8), tmp_path / "d.png", dt_ms=0.05, output_dt_ms=0.2,
                        outputs={"LIF": x(2, 10, 1), "rate": x(2, 10, 1)}, targets=x(2, 10, 1)),
            plot_rate_histogram(x(2, 5), tmp_path / "e.png"),
            plot_raster((x(20, 6) > 0.7).float(), tmp_path / "f.png", dt_ms=5.0, groups={"LIF": range(3)}),
            plot_output_vs_target(x(20, 2), x(20, 2), tmp_path / "g.png", dt_ms=5.0, mask=x(20, 2)),
            plot_rate_histogram(x(6) * 20, tmp_path / "h.png", target_hz=10.0),
        ]
    assert len(figures) == 8 and all((tmp_path / f"{c}.png").stat().st_size > 1000 for c in "abcdefgh")


def test_fixed_point_figures_and_the_results_file_take_gpu_tensors(tmp_path):
    from fixedpoints import find
    from pipeline.outputs import RunWriter
    from pipeline.stages.fixedpoints import fixed_points_figure

    w = torch.tensor([[1.5, 0.3, 0.0], [0.0, 1.5, 0.2], [0.1, 0.0, 1.5]])
    fps = find(lambda h, u: torch.tanh(h @ w.T), torch.randn(64, 3, generator=torch.Generator().manual_seed(0)),
               n_starts=64, noise=0.5, seed=0)
    moved = dataclasses.replace(fps, **{f.name: on_fake_gpu(getattr(fps, f.name)) for f in dataclasses.fields(fps)
                                        if isinstance(getattr(fps, f.name), torch.Tensor)})
    trajectories = torch.tanh(torch.randn(4, 20, 3, generator=torch.Generator().manual_seed(1)))
    with FakeGpu():
        fixed_points_figure(moved, on_fake_gpu(trajectories), on_fake_gpu(torch.zeros(4, 20, 1)), "test")
        RunWriter(tmp_path).h5_group("m", {"xstar": moved.xstar, "trajectories": on_fake_gpu(trajectories)})
    with h5py.File(tmp_path / "results.h5") as f:
        assert np.array_equal(f["m/xstar"][()], fps.xstar.numpy())
