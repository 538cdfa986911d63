"""A replay memory per run, filled by reservoir sampling over the stream of training
batches (Vitter's algorithm R, as Mammoth's ``Buffer``): every non-augmented image
offered, epoch after epoch, has the same chance ``size / offered`` of being held.

The memories of the K runs of a group sit side by side; each run draws its slots and
its replay batches from a random stream of its own (``Runs.streams``), so that the
data stream it trains on stays the one the other methods get under ``seeding=shared``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import torch

from cl_regimes.config import AT_LEAST_ONE
from cl_regimes.methods.base import Method
from cl_regimes.models import cross_entropy


class Reservoir:
    """``size`` (image, label[, logits]) slots per run, filled by reservoir sampling."""

    def __init__(self, size: int, generators: list[torch.Generator]):
        self.size, self.generators = size, generators
        self.offered = [0] * len(generators)  # images offered to each run's memory so far
        self.images: torch.Tensor | None = None  # [K, size, C, S, S] uint8
        self.labels: torch.Tensor | None = None  # [K, size]
        self.logits: torch.Tensor | None = None  # [K, size, classes] when stored

    def held(self) -> int:
        """How many slots every run's memory has filled (the fewest over the runs)."""
        return min(min(n, self.size) for n in self.offered)

    def add(self, images, labels, active, logits=None) -> None:
        """Offer each active run its batch (images [B, K, C, S, S], labels [B, K], logits
        [B, K, classes]): slot n while the memory fills, afterwards a slot drawn uniformly
        from the n + 1 offered so far, kept if it exists; of two images drawn to one slot
        in a batch, the later wins, as if they had been offered one by one."""
        if self.images is None:
            k = len(self.generators)
            self.images = images.new_zeros((k, self.size, *images.shape[2:]))
            self.labels = labels.new_zeros((k, self.size))
            if logits is not None:
                self.logits = logits.new_zeros((k, self.size, logits.shape[-1]))
        b = len(labels)
        for k in active.nonzero().flatten().tolist():
            count = self.offered[k] + torch.arange(b, device=labels.device)
            drawn = torch.rand(b, device=labels.device, generator=self.generators[k]) * (count + 1)
            slot = torch.where(count < self.size, count, drawn.long())
            # the last image of the batch drawn to each slot (-1: none)
            winner = slot.new_full((self.size,), -1)
            kept = slot < self.size
            winner.scatter_reduce_(0, slot[kept], torch.arange(b, device=slot.device)[kept], "amax")
            slots = (winner >= 0).nonzero().flatten()
            latest = winner[slots]
            self.images[k, slots] = images[latest, k]
            self.labels[k, slots] = labels[latest, k]
            if self.logits is not None:
                self.logits[k, slots] = logits[latest, k].to(self.logits)
            self.offered[k] += b

    def sample(self, count: int) -> tuple[torch.Tensor, ...]:
        """``count`` distinct slots of each run's memory (fewer while it holds fewer), drawn
        from its generator: (images [n, K, C, S, S], labels [n, K][, logits [n, K, classes]])."""
        held = self.held()
        n = min(count, held)
        picks = torch.stack(
            [
                torch.randperm(held, device=self.labels.device, generator=g)[:n]
                for g in self.generators
            ]
        )  # [K, n]
        rows = torch.arange(len(picks), device=picks.device)[:, None]
        out = [self.images[rows, picks].transpose(0, 1), self.labels[rows, picks].T]
        if self.logits is not None:
            out.append(self.logits[rows, picks].transpose(0, 1))
        return tuple(out)


class Replay(Method):
    """A method with a reservoir memory of ``memory_size`` non-augmented images per run,
    offered every training batch; ``replayed`` draws ``replay_batch_size`` of them (Mammoth's
    ``minibatch_size``), augmented as training batches are."""

    stores_logits: ClassVar[bool] = False  # DER++ keeps the logits each image had
    in_grid = False  # the leaderboard's records (records/), swept when named
    augment_replay: ClassVar[bool] = True  # replay batches cropped and flipped (Mammoth's)

    def __init__(
        self,
        runs,
        memory_size: Annotated[int, AT_LEAST_ONE],
        replay_batch_size: Annotated[int, AT_LEAST_ONE],
    ):
        super().__init__(runs)
        self.replay_batch_size = replay_batch_size
        self.memory = Reservoir(memory_size, runs.streams("replay"))

    def store(self, images, labels, logits, active):
        self.memory.add(images, labels, active, logits if self.stores_logits else None)

    def replayed(self) -> tuple[torch.Tensor, ...]:
        """A replay batch: (uint8 images [M, K, C, S, S], augmented unless
        ``augment_replay`` is False, labels [M, K][, the logits stored with them
        [M, K, classes]])."""
        images, *rest = self.memory.sample(self.replay_batch_size)
        if self.augment_replay:
            images = self.runs.augment(images, self.memory.generators)
        return images, *rest

    def replay_loss(self) -> torch.Tensor:
        """Each run's cross-entropy [K] on a replay batch (its own forward pass)."""
        images, labels, *_ = self.replayed()
        logits = self.runs.model(self.runs.inputs(images))
        return cross_entropy(*self.runs.score(logits, labels))
