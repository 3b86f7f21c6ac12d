"""The shared training loop: learning, early stop, resume, divergence, checkpoints, validation split."""

import dataclasses

import pytest
import torch

import tasks
from ratenets import (
    CheckpointError,
    DiscreteRNN,
    DiscreteRNNConfig,
    RateRNN,
    RateRNNConfig,
    TrainConfig,
    TrainingDiverged,
    load_checkpoint,
    load_model,
    seeds,
    train,
)
from ratenets.training import evaluate

TASK = tasks.make("flipflop", n_bits=2, n_steps_total=40)


def small_net(seed=0):
    return RateRNN(RateRNNConfig(n_units=16, n_inputs=2, n_outputs=2, train_input=True), seed=seed)


def test_training_lowers_the_loss_and_stops_at_the_target():
    # Chance is 0.5 (untrained nets score 0.42-0.56 here): the target is well above it.
    untrained = evaluate(small_net(), TASK, TASK.sample(64, torch.Generator().manual_seed(1)))
    cfg = TrainConfig(n_steps=400, batch_size=16, lr=0.02, eval_every=10, eval_batch_size=64, target_score=0.9)
    result = train(small_net(), TASK, cfg)
    assert untrained < 0.7
    assert result.step < 400 and result.score >= 0.9  # stopped early at the criterion
    assert sum(result.history["loss"][-5:]) < sum(result.history["loss"][:5])


def test_resume_gives_the_same_weights_as_one_run(tmp_path):
    cfg = TrainConfig(n_steps=30, batch_size=8, eval_every=10, eval_batch_size=32, checkpoint_every=10)
    whole = small_net()
    train(whole, TASK, cfg, tmp_path / "whole.pt")
    part = small_net()
    train(part, TASK, TrainConfig(**{**cfg.__dict__, "n_steps": 20}), tmp_path / "part.pt")
    payload = load_checkpoint(tmp_path / "part.pt")
    payload["done"] = False  # as if the process had died right after the step-20 checkpoint
    torch.save(payload, tmp_path / "part.pt")
    resumed = small_net()
    result = train(resumed, TASK, cfg, tmp_path / "part.pt")
    assert result.resumed_from == 20
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


class BlowsUp(DiscreteRNN):
    """Returns NaN outputs from the 7th call on."""

    calls = 0

    def forward(self, inputs):
        BlowsUp.calls += 1
        r = super().forward(inputs)
        return r._replace(outputs=r.outputs * float("nan")) if BlowsUp.calls > 6 else r


def test_nan_loss_stops_with_the_step_and_keeps_the_last_checkpoint(tmp_path):
    net = BlowsUp(DiscreteRNNConfig(n_units=8, n_inputs=2, n_outputs=2))
    cfg = TrainConfig(n_steps=20, batch_size=4, eval_every=100, checkpoint_every=5)
    with pytest.raises(TrainingDiverged, match=r"nan at step 7; last good checkpoint kept"):
        train(net, TASK, cfg, tmp_path / "c.pt")
    kept = load_checkpoint(tmp_path / "c.pt")
    assert kept["step"] == 5 and not kept["done"]


def test_checkpoints_are_self_describing_and_load_with_weights_only(tmp_path):
    net = small_net(seed=3)
    train(net, TASK, TrainConfig(n_steps=3, batch_size=4, eval_batch_size=8), tmp_path / "m.pt")
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    assert {"model_state", "model_config", "optimizer_state", "step", "rng", "versions"} <= set(payload)
    rebuilt = load_model(tmp_path / "m.pt")
    assert isinstance(rebuilt, RateRNN)
    assert torch.equal(rebuilt.w_rec(), net.w_rec())


def test_corrupt_or_foreign_checkpoints_are_one_clear_error(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        load_checkpoint(tmp_path / "bad.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a ratespike checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_a_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    cfg = TrainConfig(n_steps=10, batch_size=4, eval_every=5, eval_batch_size=8, checkpoint_every=5)
    train(small_net(), TASK, TrainConfig(**{**cfg.__dict__, "n_steps": 5}), tmp_path / "c.pt")
    payload = load_checkpoint(tmp_path / "c.pt")
    payload["done"] = False
    torch.save(payload, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match=r"other settings \(batch_size: 4 -> 8\)"):
        train(small_net(), TASK, TrainConfig(**{**cfg.__dict__, "batch_size": 8}), tmp_path / "c.pt")


def test_an_lsnn_checkpoint_rebuilds_without_importing_spiking_first(tmp_path):
    import subprocess
    import sys

    from spiking import LSNN, LSNNConfig

    net = LSNN(LSNNConfig(n_lif=3, n_alif=2, n_inputs=2, n_outputs=2))
    train(net, TASK, TrainConfig(n_steps=1, batch_size=2, eval_batch_size=2), tmp_path / "l.pt")
    code = f"import ratenets; print(type(ratenets.load_model({str(tmp_path / 'l.pt')!r})).__name__)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "LSNN"


def test_training_leaves_the_global_rng_alone_and_does_not_depend_on_it():
    cfg = TrainConfig(n_steps=6, batch_size=4, eval_every=3, eval_batch_size=8)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    first = small_net()
    train(first, TASK, cfg, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.manual_seed(999)  # another global state: the same run all the same
    second = small_net()
    train(second, TASK, cfg, seed=4)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    other_seed = small_net()
    train(other_seed, TASK, cfg, seed=5)
    assert not torch.equal(other_seed.w_out, first.w_out)


class RecordsGenerator(RateRNN):
    """A model whose forward takes ``generator`` gets train()'s noise generator."""

    seen = []

    def forward(self, inputs, x0=None, noise=None, generator=None):
        if self.training:
            RecordsGenerator.seen.append(generator)
        return super().forward(inputs, x0, noise, generator)


def test_the_noise_generator_goes_only_to_models_that_take_it():
    RecordsGenerator.seen.clear()
    net = RecordsGenerator(RateRNNConfig(n_units=8, n_inputs=2, n_outputs=2))
    train(net, TASK, TrainConfig(n_steps=3, batch_size=2, eval_batch_size=2))
    assert len(RecordsGenerator.seen) == 3 and all(isinstance(g, torch.Generator) for g in RecordsGenerator.seen)
    assert len({id(g) for g in RecordsGenerator.seen}) == 1  # one stream for the whole run
    # DiscreteRNN.forward takes no generator: called without one (BlowsUp above relies on it too)
    train(DiscreteRNN(DiscreteRNNConfig(n_units=4, n_inputs=2, n_outputs=2)), TASK, TrainConfig(n_steps=2))


def test_a_checkpoint_from_before_the_noise_generator_still_resumes_exactly(tmp_path):
    """Old checkpoints kept the noise in the global RNG state ``rng["torch"]``; on CPU it seeds the noise."""
    cfg = TrainConfig(n_steps=30, batch_size=8, eval_every=10, eval_batch_size=32, checkpoint_every=10)
    whole = small_net()
    train(whole, TASK, cfg)
    part = small_net()
    train(part, TASK, TrainConfig(**{**cfg.__dict__, "n_steps": 20}), tmp_path / "part.pt")
    payload = load_checkpoint(tmp_path / "part.pt")
    payload["done"] = False
    payload["rng"] = {"torch": payload["rng"]["noise"], "task": payload["rng"]["task"]}  # the old layout
    torch.save(payload, tmp_path / "part.pt")
    resumed = small_net()
    assert train(resumed, TASK, cfg, tmp_path / "part.pt").resumed_from == 20
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_a_finished_run_trains_on_when_n_steps_is_raised(tmp_path):
    """Trained 20 steps, the config now says 30: the checkpoint is not 'done' for it. The optimiser, the
    schedule and the random streams continue, so the weights equal one 30-step run's."""
    cfg = TrainConfig(n_steps=30, batch_size=8, eval_every=10, eval_batch_size=32, checkpoint_every=10, lr_decay=0.5,
                      lr_decay_every=15)  # fmt: skip
    whole = small_net()
    train(whole, TASK, cfg)
    part = small_net()
    first = train(part, TASK, dataclasses.replace(cfg, n_steps=20), tmp_path / "part.pt")
    assert first.step == 20 and load_checkpoint(tmp_path / "part.pt")["done"]
    resumed = small_net()
    result = train(resumed, TASK, cfg, tmp_path / "part.pt")
    assert (result.step, result.resumed_from) == (30, 20)
    assert result.history["step"] == list(range(1, 31))
    payload = load_checkpoint(tmp_path / "part.pt")
    assert payload["done"] and payload["step"] == 30
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    # fewer steps than the checkpoint has: finished, returned as it is
    again = small_net()
    assert train(again, TASK, dataclasses.replace(cfg, n_steps=25), tmp_path / "part.pt").step == 30
    assert torch.equal(again.w_out, resumed.w_out)


def test_an_early_stopped_run_stays_finished_when_n_steps_is_raised(tmp_path):
    cfg = TrainConfig(n_steps=60, batch_size=16, lr=0.02, eval_every=10, eval_batch_size=64, target_score=0.5)
    net = small_net()
    stopped = train(net, TASK, cfg, tmp_path / "c.pt")
    assert stopped.step < 60 and stopped.score >= 0.5
    later = small_net()
    result = train(later, TASK, dataclasses.replace(cfg, n_steps=200), tmp_path / "c.pt")
    assert result.step == stopped.step and torch.equal(later.w_out, net.w_out)


def test_train_validates_on_the_validation_split_and_never_touches_the_test_split(monkeypatch):
    from tasks.digits import SeqDigits

    def refuse(self, *args, **kwargs):
        raise AssertionError("train() reached for the test split")

    drawn = []
    sample = SeqDigits.sample

    def recording_sample(self, batch_size, generator=None):
        if self.split == "test":
            refuse(self)
        drawn.append(self.split)
        return sample(self, batch_size, generator)

    task = tasks.make("seq_digits", pixels_per_step=16)  # 4 steps of 16 pixels
    monkeypatch.setattr(SeqDigits, "held_out", refuse)
    monkeypatch.setattr(SeqDigits, "sample", recording_sample)
    monkeypatch.setattr(SeqDigits, "all_examples", refuse)
    net = RateRNN(RateRNNConfig(n_units=8, n_inputs=16, n_outputs=10, train_input=True))
    cfg = TrainConfig(n_steps=3, batch_size=4, eval_every=1, eval_batch_size=16)
    result = train(net, task, cfg)
    assert drawn == ["validation", "train", "train", "train"]
    # the score that early-stops is the model's accuracy on that fixed validation batch
    validation = task.validation()
    batch = sample(validation, 16, seeds.stream(0, seeds.VALIDATION))
    assert result.score == evaluate(net, validation, batch)
