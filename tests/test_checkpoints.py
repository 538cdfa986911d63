"""Task-boundary checkpoints: a grouped cell stopped after a task resumes from it and gives
the same numbers as a cell trained without a stop; a checkpoint of another group is never
used; a finished cell leaves none behind."""

from __future__ import annotations

import dataclasses

import pytest

from cl_regimes import checkpoints, models, runner, train

pytestmark = pytest.mark.slow


def interrupt_at_evaluation(monkeypatch, count: int) -> None:
    """Stop training (as Ctrl-C would) at the ``count``-th evaluation, i.e. in task
    ``count``, after ``count - 1`` tasks finished and were checkpointed."""
    evaluate, calls = train.Trainer.evaluate, []

    def stop(self):
        calls.append(1)
        if len(calls) == count:
            raise KeyboardInterrupt
        return evaluate(self)

    monkeypatch.setattr(train.Trainer, "evaluate", stop)


@pytest.mark.parametrize(
    "method", ["ewc", "lwf", "si", "gem", "joint", "er", "agem", "derpp", "er_ace"]
)
def test_a_resumed_cell_gives_the_numbers_of_an_uninterrupted_one(
    method, smoke_config, tmp_path, monkeypatch
):
    configs = [smoke_config("from_layer3", method, order=o) for o in (0, 1)]
    uninterrupted = runner.run_group(configs, "cpu")
    with monkeypatch.context() as patch:
        interrupt_at_evaluation(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)
    [saved] = tmp_path.glob(".checkpoint-*.pt")
    assert saved == checkpoints.Checkpoint(tmp_path, tuple(configs)).path
    resumed = runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)
    for a, b in zip(uninterrupted, resumed):
        assert a["R"] == b["R"]
        assert a["tasks"] == b["tasks"]
    assert not list(tmp_path.glob(".checkpoint-*"))  # removed once the records are made


def test_a_checkpoint_of_another_group_is_not_used(smoke_config, tmp_path, monkeypatch):
    configs = [smoke_config("head", "finetune", order=o) for o in (0, 1)]
    with monkeypatch.context() as patch:
        interrupt_at_evaluation(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)
    [saved] = tmp_path.glob(".checkpoint-*.pt")
    cpu = models.resolve_device("cpu")
    swapped = checkpoints.Checkpoint(tmp_path, tuple(configs[::-1]))  # other slots
    assert swapped.path != saved and swapped.load(cpu) is None
    source = {"path": "mine:Method", "sha256": "0" * 64}  # the method's code changed
    assert checkpoints.Checkpoint(tmp_path, tuple(configs), source).load(cpu) is None
    saved.write_bytes(saved.read_bytes()[:100])  # a write cut short counts as none
    assert checkpoints.Checkpoint(tmp_path, tuple(configs)).load(cpu) is None
    fresh = runner.run_group(configs, "cpu")
    assert runner.run_group(configs, "cpu", checkpoint_dir=tmp_path)[0]["R"] == fresh[0]["R"]


def test_a_checkpoint_made_before_a_configuration_changed_is_not_left_behind(
    smoke_config, tmp_path, monkeypatch
):
    """The same runs with a setting changed (a new field, another value) train anew and
    leave no checkpoint of the old configuration behind."""
    before = [smoke_config("head", "ewc", order=o) for o in (0, 1)]
    with monkeypatch.context() as patch:
        interrupt_at_evaluation(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            runner.run_group(before, "cpu", checkpoint_dir=tmp_path)
    assert len(list(tmp_path.glob(".checkpoint-*"))) == 1
    after = [dataclasses.replace(c, epochs=c.epochs + 1) for c in before]
    assert checkpoints.Checkpoint(tmp_path, tuple(after)).load(models.resolve_device("cpu")) is None
    trained = runner.run_group(after, "cpu", checkpoint_dir=tmp_path)
    assert trained[0]["R"] == runner.run_group(after, "cpu")[0]["R"]
    assert not list(tmp_path.glob(".checkpoint-*"))
