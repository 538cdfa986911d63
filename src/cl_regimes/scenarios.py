"""The continual-learning scenarios: what each task holds, and which outputs score a sample.

- ``task_incremental`` (the study's): tasks are class blocks, and a sample is scored
  over its own task's classes: its task identity is known in training and at test.
- ``class_incremental``: the same tasks, but a sample is scored over every class its
  run has met so far, with no task identity at test: one head that grows task by task.
- ``domain_incremental``: every task holds every class, its images under a pixel
  permutation fixed per task and seed (Permuted-MNIST, Permuted-Fashion-MNIST): one
  head over every class. No crops or flips: they would move the permuted pixels. As
  the field runs it: ``permuted_tasks`` tasks (10 by default), the 28x28 images
  zero-padded to 32x32 (``permuted_images="pad"``), not resized. The first task (block
  0) is permuted too (``permuted_first="permuted"``), or keeps its images as they are
  (``"identity"``, van de Ven's reference code's default).

A scenario turns labels into ``(index, target)``: the outputs each sample is scored
over ([B, K, n] indices into the head) and the position of its label among them
([B, K]; -1 where the label is not among them, which no prediction matches).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from cl_regimes import data
from cl_regimes.config import SCENARIOS, check_choice


class Scenario:
    name: ClassVar[str]
    augment: ClassVar[bool] = True  # random crops (and flips) of training images
    seeded_tasks: ClassVar[bool] = False  # its tasks' images depend on the run's seed
    pad: bool = False  # images zero-padded to a power-of-two side before resizing

    def __init__(self, spec: data.DatasetSpec):
        self.spec = spec
        self.num_tasks = spec.num_tasks

    @classmethod
    def configured(cls, spec: data.DatasetSpec, config) -> Scenario:
        """The scenario with a run's settings (``config``, a RunConfig)."""
        return cls(spec)

    def blocks(
        self, ds: data.Dataset, train_per_task, test_per_task, device, seed: int, validation=None
    ):
        """Every task's images on ``device``, by task (block) number; ``validation``:
        validation images per task scored instead of the test images (``data.make_blocks``)."""
        return data.make_blocks(ds, train_per_task, test_per_task, device, None, validation)

    def outputs(self, labels: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(index [B, K, n], target [B, K]) of labels [B, K], given each run's classes met
        so far ``seen`` [K, m] (sorted)."""
        raise NotImplementedError

    def scored_classes(self, seen: torch.Tensor) -> int:
        """How many outputs score a sample of the task just trained (1 / chance)."""
        raise NotImplementedError

    def score(self, logits, labels, seen) -> tuple[torch.Tensor, torch.Tensor]:
        """(the logits [B, K, n] each sample is scored over, its target among them [B, K]),
        given the head's logits [B, K, classes]."""
        index, target = self.outputs(labels, seen)
        return logits.gather(-1, index), target


class TaskIncremental(Scenario):
    name = "task_incremental"

    def outputs(self, labels, seen):
        cpt = self.spec.classes_per_task
        first = labels - labels % cpt  # tasks are contiguous class blocks
        index = first[..., None] + torch.arange(cpt, device=labels.device)
        return index, labels % cpt

    def scored_classes(self, seen):
        return self.spec.classes_per_task


class ClassIncremental(Scenario):
    name = "class_incremental"

    def outputs(self, labels, seen):
        b, runs = labels.shape
        where = torch.full((runs, self.spec.num_classes), -1, device=labels.device)
        where.scatter_(1, seen, torch.arange(seen.shape[1], device=labels.device).expand_as(seen))
        return seen[None].expand(b, -1, -1), where.gather(1, labels.T).T

    def scored_classes(self, seen):
        return seen.shape[1]


class DomainIncremental(Scenario):
    name = "domain_incremental"
    augment = False
    seeded_tasks = True

    def __init__(self, spec, tasks: int | None = None, pad: bool = False, identity: bool = False):
        super().__init__(spec)
        self.num_tasks, self.pad, self.identity = tasks or spec.num_tasks, pad, identity

    @classmethod
    def configured(cls, spec, config):
        pad, identity = config.permuted_images == "pad", config.permuted_first == "identity"
        return cls(spec, config.permuted_tasks, pad, identity)

    def blocks(self, ds, train_per_task, test_per_task, device, seed, validation=None):
        every = [list(range(ds.spec.num_classes))] * self.num_tasks
        blocks = data.make_blocks(ds, train_per_task, test_per_task, device, every, validation)
        shape = ds.train.x.shape[1:]
        permutations = pixel_permutations(len(blocks), shape[-1], seed).to(device)
        if self.identity:
            permutations[0] = torch.arange(permutations.shape[1], device=device)

        def permuted(split, pixels):
            return data.Split(split.x.flatten(2)[..., pixels].view(-1, *shape), split.y)

        return [
            data.Block(b.block, b.classes, permuted(b.train, p), permuted(b.test, p))
            for b, p in zip(blocks, permutations)
        ]

    def outputs(self, labels, seen):
        every = torch.arange(self.spec.num_classes, device=labels.device)
        return every.expand(*labels.shape, -1), labels

    def scored_classes(self, seen):
        return self.spec.num_classes


def pixel_permutations(num_tasks: int, size: int, seed: int) -> torch.Tensor:
    """One permutation of the ``size * size`` pixel positions per task [T, size * size],
    a function of (task, seed) alone."""
    out = []
    for task in range(num_tasks):
        gen = torch.Generator().manual_seed(seed * 1_000_003 + task)
        out.append(torch.randperm(size * size, generator=gen))
    return torch.stack(out)


KINDS = {s.name: s for s in (TaskIncremental, ClassIncremental, DomainIncremental)}


def get(name: str, spec: data.DatasetSpec) -> Scenario:
    check_choice("scenario", name, SCENARIOS)
    return KINDS[name](spec)


def of(config, spec: data.DatasetSpec | None = None) -> Scenario:
    """The scenario of a run (a RunConfig), with its settings."""
    check_choice("scenario", config.scenario, SCENARIOS)
    return KINDS[config.scenario].configured(spec or data.spec(config.dataset), config)
