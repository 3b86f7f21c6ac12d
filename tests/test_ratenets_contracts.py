"""Contracts of ratenets that every part relies on: configs valid from construction and frozen, named seed
streams, one-line device errors, and checkpoints written atomically and read with one-line errors."""

import dataclasses
import math
import typing

import pytest
import torch

from ratenets import (
    CheckpointError,
    DiscreteRNNConfig,
    RateRNN,
    RateRNNConfig,
    TrainConfig,
    load_checkpoint,
    load_model,
    resolve_device,
    save_checkpoint,
    seeds,
)
from ratenets.checkpoint import REQUIRED_KEYS

CONFIGS = (TrainConfig, RateRNNConfig, DiscreteRNNConfig)


def _fields_of(cls, kind):
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if hint is kind or kind in typing.get_args(hint):
            out.append(f.name)
    return out


# --- configs: validated on construction, frozen after ---------------------------------------------


@pytest.mark.parametrize("cls", CONFIGS)
def test_configs_are_frozen_and_changed_only_through_replace(cls):
    cfg = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, name, getattr(cfg, name))
    assert dataclasses.replace(cfg) == cfg  # replace rebuilds, and so re-validates


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_every_float_field_refuses_non_finite_values_naming_the_field(cls, bad):
    names = _fields_of(cls, float)
    assert names
    for name in names:
        with pytest.raises(ValueError) as err:
            cls(**{name: bad})
        message = str(err.value)
        assert message.startswith(f"{name} must be") and str(bad) in message and "\n" not in message


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("bad", [0, 10**13, 2.5, "8"])
def test_every_integer_field_has_a_range_and_a_type(cls, bad):
    for name in _fields_of(cls, int):
        with pytest.raises(ValueError, match=rf"^{name} must be an integer in \[1, \d+\], got "):
            cls(**{name: bad})


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (RateRNNConfig, {"p_rec": 1.5}, "p_rec must be in (0, 1], got 1.5"),
        (RateRNNConfig, {"n_units": 20_001}, "n_units must be an integer in [1, 20000], got 20001"),
        (RateRNNConfig, {"n_inputs": 10_001}, "n_inputs must be an integer in [1, 10000], got 10001"),
        (RateRNNConfig, {"dt_ms": 30.0}, "dt_ms must be in (0, tau_min_ms = 20.0], got 30.0"),
        (RateRNNConfig, {"dale": "yes"}, "dale must be true or false, got 'yes'"),
        (RateRNNConfig, {"readout_init_std": 0.0}, "readout_init_std must be > 0, got 0.0"),
        (DiscreteRNNConfig, {"n_outputs": 0}, "n_outputs must be an integer in [1, 10000], got 0"),
        (TrainConfig, {"batch_size": 2_000_000}, "batch_size must be an integer in [1, 1000000], got 2000000"),
        (TrainConfig, {"n_steps": 10**8}, "n_steps must be an integer in [1, 10000000], got 100000000"),
        (TrainConfig, {"lr_decay": 1.5}, "lr_decay must be in (0, 1], got 1.5"),
        (TrainConfig, {"lr": 0.0}, "lr must be > 0, got 0.0"),
    ],
)
def test_bad_values_are_one_line_naming_field_value_and_range(cls, kwargs, message):
    with pytest.raises(ValueError) as err:
        cls(**kwargs)
    assert str(err.value) == message
    with pytest.raises(ValueError):  # replace on a valid config validates as well
        dataclasses.replace(cls(), **kwargs)


def test_check_is_kept_and_passes_on_any_config_that_exists():
    for cls in CONFIGS:
        cls().check()


# --- seed streams ----------------------------------------------------------------------------------


def test_seed_offsets_are_named_once_and_distinct():
    offsets = (seeds.TRAINING, seeds.VALIDATION, seeds.HELD_OUT, seeds.ANALYSIS_NOISE)
    assert offsets == (0, 10_000, 20_000, 30_000)


def test_a_stream_draws_what_the_global_rng_seeded_alike_draws():
    gen = seeds.stream(7, seeds.VALIDATION)
    assert isinstance(gen, torch.Generator) and gen.device.type == "cpu"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7 + 10_000)
        expected = torch.randn(5), torch.rand(3)
    assert torch.equal(torch.randn(5, generator=gen), expected[0])
    assert torch.equal(torch.rand(3, generator=gen), expected[1])
    assert not torch.equal(torch.randn(5, generator=seeds.stream(7, seeds.HELD_OUT)), expected[0])


def test_a_stream_refuses_a_seed_that_is_not_an_integer():
    with pytest.raises(TypeError, match="must be integers"):
        seeds.stream(1.5, seeds.VALIDATION)


# --- devices ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpu", "cudaXYZ", "cuda:", "cuda:x", "cuda:-1", "CUDA", "cpu:0", " cpu", ""])
def test_malformed_device_names_are_one_line(name, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError) as err:
        resolve_device(name)
    assert str(err.value) == f"device must be auto, cpu, cuda or cuda:N, got {name!r}"


def test_cuda_without_cuda_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(ValueError, match=rf"^device '{name}' asked for, but CUDA is not available here"):
            resolve_device(name)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_a_cuda_index_this_machine_lacks_is_one_line(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError) as err:
        resolve_device("cuda:2")
    assert str(err.value) == "device 'cuda:2' asked for, but this machine's CUDA devices are cuda:0 to cuda:1"
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("auto") == torch.device("cuda")


# --- checkpoints -----------------------------------------------------------------------------------


def tiny_net():
    return RateRNN(RateRNNConfig(n_units=4, n_inputs=1, n_outputs=1), seed=0)


def test_two_saves_to_one_path_do_not_share_a_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    real_save, temp_names = torch.save, []

    def save_and_interleave(obj, f, *args, **kwargs):
        temp_names.append(str(f))
        real_save(obj, f, *args, **kwargs)
        if len(temp_names) == 1:  # a second writer finishes while the first is between write and rename
            save_checkpoint(path, tiny_net(), step=2)

    monkeypatch.setattr(torch, "save", save_and_interleave)
    save_checkpoint(path, tiny_net(), step=1)
    assert len(set(temp_names)) == 2 and str(path) not in temp_names
    assert load_checkpoint(path)["step"] == 1  # the last rename wins; the file is whole
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_a_failed_write_keeps_the_old_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, tiny_net(), step=1)
    old_bytes = path.read_bytes()

    def disk_full(obj, f, *args, **kwargs):
        with open(f, "wb") as out:
            out.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, tiny_net(), step=2)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert path.read_bytes() == old_bytes


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_a_checkpoint_missing_a_model_entry_is_one_line_naming_file_and_key(tmp_path, key):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_net(), step=0)
    payload = load_checkpoint(path)
    del payload[key]
    torch.save(payload, path)
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message and repr(key) in message and "\n" not in message


def test_a_checkpoint_with_an_invalid_model_config_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_net(), step=0)
    payload = load_checkpoint(path)
    payload["model_config"]["p_rec"] = 2.0
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"invalid model_config for RateRNN \(p_rec must be in \(0, 1\]"):
        load_model(path)


def test_atomic_writes_get_the_permissions_of_an_ordinary_write(tmp_path):
    """Not mkstemp's owner-only 0600: a run folder shared with a group stays readable (umask 022 -> 0644)."""
    import os
    import stat

    from ratenets.atomic import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        ordinary = tmp_path / "b.txt"
        ordinary.write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == stat.S_IMODE(ordinary.stat().st_mode) == 0o644
