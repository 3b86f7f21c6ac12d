"""Every registered task passes the same checks; a few tasks get known-answer checks of their own."""

import dataclasses
import gzip
import math
import re
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tasks
from tasks.base import MAX_COUNT, MAX_STEPS, Task
from tasks.flipflop import hold_last_pulse

CONFIGS = [path for path in sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))
           if "axes" not in yaml.safe_load(path.read_text())]  # sweep configs name tasks along their axes


@pytest.mark.parametrize("name", tasks.names())
def test_every_task_keeps_the_contract(name):
    task = tasks.make(name)
    batch = task.sample(16, torch.Generator().manual_seed(0))
    B, T = 16, task.n_steps
    assert batch.inputs.shape == (B, T, task.n_inputs)
    assert batch.targets.shape == (B, T, task.n_outputs)
    assert batch.mask.shape == (B, T, task.n_outputs)
    for x in (batch.inputs, batch.targets, batch.mask):
        assert x.dtype == torch.float32 and torch.isfinite(x).all()
    assert task.dt_ms > 0 and batch.mask.sum() > 0
    again = task.sample(16, torch.Generator().manual_seed(0))
    assert torch.equal(batch.inputs, again.inputs) and torch.equal(batch.targets, again.targets)
    other = task.sample(16, torch.Generator().manual_seed(1))
    assert not torch.equal(batch.inputs, other.inputs)
    big = task.sample(256, torch.Generator().manual_seed(2))
    assert task.score(big.targets, big) == 1.0
    assert task.score(torch.zeros_like(big.targets), big) <= 0.75


@pytest.mark.parametrize("name", tasks.names())
def test_validation_is_the_task_itself_unless_it_has_a_data_set(name):
    """Synthetic tasks validate on their own random stream (training then is what it always was); a task with
    a fixed data set validates on a split of its training data, never on the test split."""
    task = tasks.make(name)
    if hasattr(task, "indices"):
        val, test = task.validation(), task.held_out()
        assert not set(val.indices().tolist()) & set(test.indices().tolist())
        assert not set(val.indices().tolist()) & set(task.indices().tolist())
    else:
        assert task.validation() is task


def test_unknown_task_and_parameter_say_what_is_allowed():
    with pytest.raises(ValueError, match="known tasks: .*flipflop"):
        tasks.make("flipflopp")
    with pytest.raises(ValueError, match="no parameter 'n_bit'.*n_bits"):
        tasks.make("flipflop", n_bit=3)
    with pytest.raises(ValueError, match="pulse_prob"):
        tasks.make("flipflop", pulse_prob=0)


def parameters(name, kind):
    """The names of task ``name``'s constructor parameters annotated ``kind``."""
    cls = type(tasks.make(name))
    hints = typing.get_type_hints(cls)
    return [f.name for f in dataclasses.fields(cls) if f.init and hints[f.name] is kind]


def rejected(name, **params) -> str:
    """The message of the ValueError that ``make`` raises; it must be one line."""
    with pytest.raises(ValueError) as info:
        tasks.make(name, **params)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def names_parameter(message, param) -> bool:
    return re.search(rf"\b{param}\b", message) is not None


@pytest.mark.parametrize("name", tasks.names())
def test_int_parameters_reject_bools_and_floats(name):
    ints = parameters(name, int)
    assert ints
    for param in ints:
        for bad in (True, 2.5, 3.0):  # True would pass as 1, 3.0 as 3: both are typos for an int
            message = rejected(name, **{param: bad})
            assert message.startswith(f"{param} must be an integer, got {bad!r} ({type(bad).__name__})"), message


@pytest.mark.parametrize("name", tasks.names())
def test_float_parameters_must_be_finite_numbers(name):
    floats = parameters(name, float)
    assert "dt_ms" in floats
    for param in floats:
        for bad in (math.inf, -math.inf, math.nan):
            assert rejected(name, **{param: bad}) == f"{param} must be a finite number, got {bad!r}"
        assert rejected(name, **{param: False}).startswith(f"{param} must be a number, got False (bool)")
        assert rejected(name, **{param: "1e-3"}).startswith(f"{param} must be a number, got '1e-3' (str)")
    for bad in (0, -5.0):
        assert rejected(name, dt_ms=bad) == f"dt_ms must be > 0, got {bad!r}"


@pytest.mark.parametrize("name", tasks.names())
def test_sizes_have_an_upper_bound(name):
    sizes = [p for p in parameters(name, int) if not p.endswith("_seed")]  # a seed is not a size
    assert sizes
    for param in sizes:
        for bad in (10**9, -1):
            message = rejected(name, **{param: bad})
            assert names_parameter(message, param) and str(bad) in message, message


def test_strings_are_checked_too():
    assert rejected("seq_digits", split=1) == "split must be a string, got 1 (int)"
    assert rejected("seq_digits", path=3) == "path must be a string or None, got 3 (int)"
    assert rejected("seq_digits", split="dev") == "split must be 'train', 'validation' or 'test', got 'dev'"


def test_scored_windows_are_never_empty():
    # flip-flop: the first scored step comes settle_steps + 1 after a pulse in the first slot
    ok = tasks.make("flipflop", n_steps_total=12, pulse_steps=5, settle_steps=6, pulse_prob=0.5)
    assert ok.sample(64, torch.Generator().manual_seed(0)).mask.sum() > 0
    assert rejected("flipflop", n_steps_total=12, pulse_steps=5, settle_steps=7) == (
        "settle_steps must be in [0, n_steps_total - pulse_steps - 1] = [0, 6], got 7"
    )
    assert rejected("flipflop", settle_steps=200).startswith("settle_steps must be")
    assert rejected("flipflop", pulse_steps=101).startswith("pulse_steps must be in [1, n_steps_total // 2] = [1, 100]")
    # Go/NoGo: the Go response is scored after the stimulus, so stim_off must leave a step
    tasks.make("gonogo", n_steps_total=30, stim_on=5, stim_off=29)
    assert rejected("gonogo", n_steps_total=30, stim_on=5, stim_off=30).endswith("= [6, 29], got 30")
    assert rejected("gonogo", stim_on=75) == "stim_off must be in [stim_on + 1, n_steps_total - 1] = [76, 199], got 75"
    # decision: the report window
    for bad in (0, 101):
        message = rejected("decision", report_steps=bad)
        assert message == f"report_steps must be in [1, n_steps_total] = [1, 100], got {bad}"
    # fixed response windows and the interval-timing ramp
    assert rejected("xor", n_steps_total=269).startswith("n_steps_total must be in [270,")
    assert rejected("context", n_steps_total=449).startswith("n_steps_total must be in [450,")
    tasks.make("cue_set_go", n_steps_total=105)
    assert names_parameter(rejected("cue_set_go", n_steps_total=104), "go_max")
    assert rejected("cue_set_go", go_min=41) == "go_min must be in [0, go_max] = [0, 40], got 41"
    # sequential digits: a split with no example could not be sampled
    assert "test split" in rejected("seq_digits", test_fraction=1e-4)
    assert "validation split" in rejected("seq_digits", validation_fraction=1e-4)
    assert "train split" in rejected("seq_digits", validation_fraction=0.9999)


def test_probabilities_and_other_ranges():
    assert rejected("flipflop", pulse_prob=1.5) == "pulse_prob must be in (0, 1], got 1.5"
    assert rejected("gonogo", go_prob=-0.1) == "go_prob must be in [0, 1], got -0.1"
    assert rejected("cue_set_go", tolerance=2.0) == "tolerance must be in [0, 1], got 2.0"
    assert rejected("flipflop", n_bits=MAX_COUNT + 1) == f"n_bits must be in [1, {MAX_COUNT}], got {MAX_COUNT + 1}"
    assert rejected("integrator", n_steps_total=MAX_STEPS + 1).startswith(f"n_steps_total must be in [1, {MAX_STEPS}]")
    assert names_parameter(rejected("sine", freq_max_hz=100.0), "freq_max_hz")  # Nyquist at 5 ms steps
    assert names_parameter(rejected("ou_tracking", tau_ms=1.0), "tau_ms")
    assert rejected("seq_digits", split_seed=-1) == "split_seed must be >= 0, got -1"  # numpy's seeds are >= 0
    assert rejected("seq_digits", validation_fraction=1.0) == "validation_fraction must be in (0, 1), got 1.0"
    assert tasks.make("flipflop", n_bits=MAX_COUNT).n_inputs == MAX_COUNT


def test_generic_checks_cover_a_task_that_checks_nothing():
    @dataclasses.dataclass
    class Unchecked(Task):
        n_steps_total: int = 10
        horizon_ms: float = math.inf
        nonfinite_ok = ("horizon_ms",)  # a task may allow inf or nan for a float it names

        n_inputs = property(lambda self: 1)
        n_outputs = property(lambda self: 1)
        n_steps = property(lambda self: self.n_steps_total)

        def sample(self, batch_size, generator=None):
            raise NotImplementedError

        def score(self, outputs, batch):
            raise NotImplementedError

    Unchecked()
    with pytest.raises(ValueError, match=rf"trial length n_steps of 0; it must be in \[1, {MAX_STEPS}\]"):
        Unchecked(n_steps_total=0)
    with pytest.raises(ValueError, match="n_steps_total must be an integer"):
        Unchecked(n_steps_total=2.0)
    with pytest.raises(ValueError, match="dt_ms must be a finite number"):
        Unchecked(dt_ms=math.inf)
    with pytest.raises(ValueError, match="horizon_ms must be a number"):
        Unchecked(horizon_ms="inf")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_every_config_task_constructs(path):
    section = yaml.safe_load(path.read_text())["task"]
    task = tasks.make(section["name"], **section.get("params", {}))
    assert task.sample(2, torch.Generator().manual_seed(0)).mask.sum() > 0


def test_flipflop_holds_the_last_pulse():
    pulses = torch.tensor([[0, 1, 0, 0, -1, 0, 0, 1, 0]], dtype=torch.float32)[..., None]
    held, last = hold_last_pulse(pulses)
    assert held[0, :, 0].tolist() == [0, 1, 1, 1, -1, -1, -1, 1, 1]
    assert last[0, :, 0].tolist() == [-1, 1, 1, 1, 4, 4, 4, 7, 7]


def test_flipflop_scores_sign_agreement_on_masked_steps():
    task = tasks.make("flipflop")
    batch = task.sample(64, torch.Generator().manual_seed(0))
    wrong = batch.targets.clone()
    m = batch.mask > 0
    idx = m.nonzero()[: m.sum() // 4]  # flip a quarter of the scored entries
    wrong[idx[:, 0], idx[:, 1], idx[:, 2]] *= -1
    assert task.score(wrong, batch) == pytest.approx(1 - len(idx) / m.sum().item(), abs=1e-6)


def test_gonogo_uses_kim_thresholds():
    task = tasks.make("gonogo")
    batch = task.sample(200, torch.Generator().manual_seed(0))
    go = batch.meta["go"] > 0
    out = torch.zeros_like(batch.targets)
    out[go, 80, 0] = 0.71  # Go trials: a peak just above 0.7 after the cue is enough
    out[~go, 10, 0] = 0.29  # NoGo trials: |o| stays under 0.3
    assert task.score(out, batch) == 1.0
    out[go, 80, 0] = 0.69
    assert task.score(out, batch) == pytest.approx(1 - go.float().mean().item())


def test_xor_and_context_labels():
    xor = tasks.make("xor")
    b = xor.sample(64, torch.Generator().manual_seed(0))
    a, c = b.inputs[:, 60, 0], b.inputs[:, 120, 1]
    assert torch.equal(b.targets[:, 200, 0], torch.where(a == c, -1.0, 1.0))
    ctx = tasks.make("context", noise_std=0.0)
    b = ctx.sample(64, torch.Generator().manual_seed(0))
    cue = b.inputs[:, 0, 2:].argmax(dim=1)
    cued = b.inputs[:, 100, :2].gather(1, cue[:, None])[:, 0]
    assert torch.equal(b.targets[:, -1, 0], torch.sign(cued))


def test_ou_samples_have_the_exact_stationary_statistics():
    task = tasks.make("ou_tracking", n_steps_total=400, tau_ms=50.0, sigma=2.0, dt_ms=5.0)
    x = task.sample(2000, torch.Generator().manual_seed(0)).inputs[..., 0].double()
    assert x[:, [0, 200, 399]].var(dim=0).sub(4.0).abs().max() < 0.4  # stationary variance sigma²
    lag = 10  # autocorrelation exp(-lag·dt/τ) = exp(-1)
    rho = (x[:, 100] * x[:, 100 + lag]).mean() / x[:, 100].var()
    assert rho.item() == pytest.approx(math.exp(-1), abs=0.05)


def test_integrator_target_is_the_integral():
    task = tasks.make("integrator")
    b = task.sample(4, torch.Generator().manual_seed(0))
    assert torch.allclose(b.targets[:, -1, 0], b.inputs[..., 0].sum(dim=1) * task.dt_ms / 1000, atol=1e-5)


def test_cue_set_go_ramp_reaches_one_after_the_cued_interval():
    task = tasks.make("cue_set_go")
    b = task.sample(8, torch.Generator().manual_seed(0))
    go, interval = b.meta["go"], b.meta["interval"]
    for i in range(8):
        z = b.targets[i, :, 0]
        assert z[: go[i]].abs().max() == 0
        end = int(go[i] + math.ceil(interval[i]))
        assert z[end:].min() == 1.0 and z[end - 2] < 1.0
    late = b.targets.roll(10, dims=1)
    assert task.score(late, b) < 0.5


def test_sine_frequency_follows_the_static_input():
    task = tasks.make("sine", n_freqs=3, freq_min_hz=1.0, freq_max_hz=3.0, n_steps_total=400)
    b = task.sample(30, torch.Generator().manual_seed(0))
    spectrum = torch.fft.rfft(b.targets[..., 0], dim=1).abs()
    peak_hz = spectrum.argmax(dim=1).float() / (400 * task.dt_ms / 1000)
    assert torch.allclose(peak_hz, b.meta["freq_hz"], atol=0.51)
    assert torch.equal(b.inputs[:, 0, 0].argsort(), b.meta["freq_hz"].argsort())


def test_seq_digits_splits_are_disjoint_and_the_test_split_is_held_out():
    task = tasks.make("seq_digits")
    validation, test = task.validation(), task.held_out()
    assert (task.split, validation.split, test.split) == ("train", "validation", "test") and task.n_steps == 64
    # the sizes the docstring states: 359 test images, 144 validation (0.1 of the other 1438), 1294 to train on
    assert (task.n_examples(), validation.n_examples(), test.n_examples()) == (1294, 144, 359)
    index = {t.split: t.indices() for t in (task, validation, test)}
    everything = torch.cat(list(index.values()))
    assert len(everything) == 1797 and len(torch.unique(everything)) == 1797  # no image in two splits
    from sklearn.datasets import load_digits

    digits = load_digits()  # the indices name the images each split serves, pixels and labels alike
    for t in (task, validation, test):
        b = t.all_examples()
        assert torch.equal(b.meta["label"], torch.as_tensor(digits.target[t.indices().numpy()]))
        assert torch.allclose(b.inputs[:, :, 0], torch.as_tensor(digits.data[t.indices().numpy()] / 16.0).float())
    b = test.all_examples()
    assert b.inputs.shape == (test.n_examples(), 64, 1) and b.mask[:, :-1].sum() == 0


def test_seq_digits_validation_is_carved_from_the_training_split_by_split_seed():
    task = tasks.make("seq_digits")
    # the test split is the one the task had before there was a validation split: split_seed's permutation
    order = np.random.default_rng(0).permutation(1797)
    assert torch.equal(task.held_out().indices(), torch.as_tensor(order[:359]))
    train_before = set(order[359:].tolist())
    assert set(task.indices().tolist()) | set(task.validation().indices().tolist()) == train_before
    again = tasks.make("seq_digits", split_seed=0).validation().indices()
    assert torch.equal(again, task.validation().indices())  # deterministic
    other = tasks.make("seq_digits", split_seed=1).validation().indices()
    assert not torch.equal(torch.sort(other).values, torch.sort(again).values)
    # training batches come from the train split only
    g = torch.Generator().manual_seed(0)
    seen = {tuple(x.flatten().tolist()) for x in task.sample(2000, g).inputs}
    pixels = {split: {tuple(x.flatten().tolist()) for x in t.all_examples().inputs}
              for split, t in (("train", task), ("validation", task.validation()))}  # fmt: skip
    assert seen <= pixels["train"] and seen & (pixels["validation"] - pixels["train"]) == set()


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_seq_digits_reads_a_users_mnist_files(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28)),
        "y_train": rng.integers(0, 10, 20),
        "x_test": rng.integers(0, 256, (10, 28, 28)),
        "y_test": rng.integers(0, 10, 10),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    from tasks.digits import IDX_NAMES

    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    for key, stem in IDX_NAMES.items():
        _write_idx(idx_dir / (stem + ".gz"), arrays[key])
    for path in (tmp_path / "mnist.npz", idx_dir):
        task = tasks.make("seq_digits", path=str(path), pixels_per_step=28)
        b = task.held_out().all_examples()
        assert b.inputs.shape == (10, 28, 28)
        # validation: round(0.1 * 20) = 2 of the file's 20 training images, the rest to train on
        split_index = torch.cat([task.indices(), task.validation().indices()])
        assert task.validation().n_examples() == 2 and torch.equal(split_index.sort().values, torch.arange(20))
        assert torch.equal(task.validation().all_examples().meta["label"],
                           torch.as_tensor(arrays["y_train"][task.validation().indices().numpy()]))  # fmt: skip
        assert torch.equal(b.meta["label"], torch.as_tensor(arrays["y_test"]))
        assert torch.allclose(b.inputs[3].flatten(), torch.as_tensor(arrays["x_test"][3]).flatten().float() / 255)


def test_seq_digits_bad_files_get_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        tasks.make("seq_digits", path=str(tmp_path / "none.npz"))
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        tasks.make("seq_digits", path=str(bad))
