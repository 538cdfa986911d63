"""The replay methods (ER, A-GEM, DER++, ER-ACE) and their reservoir memory, against
reference computations: algorithm R one image at a time, A-GEM's projection formula,
the joined batch's loss, DER++'s penalty by hand, and ER-ACE's asymmetric scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cl_regimes.methods.memory import Reservoir
from cl_regimes.models import cross_entropy, row_dot


def offer(memory: Reservoir, batches: list[torch.Tensor]) -> None:
    for batch in batches:  # one run: labels [B, 1], images [B, 1, 1, 1, 1]
        memory.add(batch.view(-1, 1, 1, 1, 1), batch[:, None], torch.tensor([True]))


def test_reservoir_is_algorithm_r_one_image_at_a_time():
    size, batches = 7, [torch.arange(i * 5, i * 5 + 5) for i in range(12)]
    memory = Reservoir(size, [torch.Generator().manual_seed(3)])
    offer(memory, batches)
    draws, reference, seen = torch.Generator().manual_seed(3), [None] * size, 0
    for batch in batches:  # the same draws, applied in turn (later images overwrite)
        drawn = torch.rand(len(batch), generator=draws)
        for image, r in zip(batch.tolist(), drawn.tolist()):
            slot = seen if seen < size else int(r * (seen + 1))
            if slot < size:
                reference[slot] = image
            seen += 1
    assert memory.labels[0].tolist() == reference
    assert memory.images[0].flatten().tolist() == reference
    assert memory.offered == [60]


def test_reservoir_holds_every_offered_image_with_equal_chance():
    held = np.zeros(400)
    for seed in range(300):
        memory = Reservoir(40, [torch.Generator().manual_seed(seed)])
        offer(memory, list(torch.arange(400).split(32)))
        held[memory.labels[0].numpy()] += 1
    rate = held / 300  # expected 40 / 400 = 0.1 for every image, early or late
    for part in np.split(rate, 4):
        assert part.mean() == pytest.approx(0.1, abs=0.01)


def test_reservoir_sample_draws_distinct_slots_per_run():
    gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    memory = Reservoir(10, gens)
    labels = torch.arange(6)[:, None].expand(-1, 2)
    memory.add(labels.view(6, 2, 1, 1, 1), labels, torch.tensor([True, False]))
    assert memory.offered == [6, 0] and memory.held() == 0  # run 1 has nothing yet
    memory.add(labels.view(6, 2, 1, 1, 1), labels, torch.tensor([False, True]))
    images, drawn = memory.sample(32)
    assert drawn.shape == (6, 2)  # no more than each run holds
    for k in range(2):
        assert sorted(drawn[:, k].tolist()) == list(range(6))


def test_agem_projects_violating_updates_only(smoke_trainer):
    # a memory of 32 replayed whole: the reference gradient is the same at every step
    trainer = smoke_trainer("full", "agem", **{"agem.memory_size": 32})
    method, task = trainer.method, trainer.tasks[0][0]
    method.memory.add(task.train.x[:32, None], task.train.y[:32, None], torch.tensor([True]))
    gen, on = torch.Generator().manual_seed(0), torch.tensor([True])
    width = sum(p.numel() for p in trainer.params)
    probe = torch.randn(1, width, generator=gen)
    method.direction(probe, probe, None, on)
    ref = method.reference.clone()
    method.task_stats()  # forget the probe
    against = -ref + 0.1 * ref.norm() / width**0.5 * torch.randn(1, width, generator=gen)
    projected = method.direction(against, against, None, on)
    expected = against - (against @ ref.T) / (ref @ ref.T) * ref
    torch.testing.assert_close(projected, expected, rtol=0, atol=1e-4 * against.abs().max().item())
    assert (row_dot(projected, ref) / ref.norm() / projected.norm()).abs().item() < 1e-4
    along = ref + 0.1 * torch.randn(1, width, generator=gen)
    assert torch.equal(method.direction(along, along, None, on), along)
    inactive = torch.tensor([False])
    assert torch.equal(method.direction(against, against, None, inactive), against)
    assert method.task_stats() == [{"violations": 1}]


def trained_one_epoch(trainer, spy=None):
    """Train ``trainer``'s first task for one epoch, calling ``spy(x, logits, y, penalty)``
    at every step with the step's forward pass and the penalty the method returned."""
    if spy is not None:
        penalty = trainer.method.penalty

        def spied(x, logits, y):
            value = penalty(x, logits, y)
            spy(x, logits, y, value)
            return value

        trainer.method.penalty = spied
    trainer.seen = torch.tensor([trainer.tasks[0][0].classes])
    x, y = trainer.method.train_data([tasks[:1] for tasks in trainer.tasks])
    trainer.fit(x, y, trainer.params, 1, trainer.method)
    return x, y


def test_er_joins_each_batch_with_replayed_images(smoke_trainer):
    trainer = smoke_trainer("full", "er")
    sizes = []

    def spy(x, logits, y, penalty):
        sizes.append(len(y))
        b = trainer.method.batch
        if len(y) > b:  # the task loss plus the penalty: the joined batch's mean loss
            task = cross_entropy(*trainer.score(logits[:b], y[:b]))
            joined = cross_entropy(*trainer.score(logits, y))
            torch.testing.assert_close(task + penalty, joined)
        else:
            assert penalty is None

    _, y = trained_one_epoch(trainer, spy)
    batch = trainer.cfg.batch_size
    steps = -(-y.shape[1] // batch)
    last = y.shape[1] - (steps - 1) * batch
    # the first step has an empty memory; then each batch is joined by a full replay batch
    assert sizes == [batch] + [2 * batch] * (steps - 2) + [last + batch]
    assert trainer.method.memory.held() == min(y.shape[1], trainer.method.memory.size)


def test_derpp_stores_the_steps_logits_and_penalises_them_by_hand(smoke_trainer):
    trainer = smoke_trainer("full", "derpp", **{"derpp.alpha": 0.7, "derpp.beta": 0.3})
    offered = []
    trained_one_epoch(trainer, lambda x, logits, y, p: offered.append(logits.detach()))
    method, model = trainer.method, trainer.model
    rows = torch.cat([z[: trainer.cfg.batch_size, 0] for z in offered])
    for stored in method.memory.logits[0]:  # each slot holds the logits its image had
        assert (rows == stored).all(1).any()
    streams = [g.get_state() for g in method.memory.generators]
    value = type(method).penalty(method, None, None, None)  # without the spy
    for g, state in zip(method.memory.generators, streams):
        g.set_state(state)
    images, _, stored = method.replayed()
    mse = F.mse_loss(model(trainer.inputs(images))[:, 0], stored[:, 0])
    images, labels, _ = method.replayed()
    scored, target = trainer.score(model(trainer.inputs(images)), labels)
    ce = F.cross_entropy(scored[:, 0], target[:, 0])
    torch.testing.assert_close(value, (0.7 * mse + 0.3 * ce)[None])


@pytest.mark.parametrize("method", ["er", "er_ace"])
def test_er_ace_scores_the_incoming_batch_over_its_own_classes(smoke_trainer, method):
    trainer = smoke_trainer("from_layer4", method, scenario="class_incremental")
    scored = []  # per step: the outputs the incoming batch is scored over, the classes met
    spy = trainer.method.penalty
    trainer.method.penalty = lambda x, logits, y: (
        scored.append((trainer.incoming, trainer.seen)) or spy(x, logits, y)
    )
    trainer.run()
    tasks = trainer.tasks[0]
    steps = len(scored) // len(tasks)
    for position, task in enumerate(tasks):
        incoming, seen = scored[position * steps]
        met = sorted(c for t in tasks[: position + 1] for c in t.classes)
        assert seen[0].tolist() == met
        if method == "er_ace":
            assert incoming[0].tolist() == sorted(task.classes)
        else:
            assert incoming is None
