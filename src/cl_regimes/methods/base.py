"""The hooks a continual-learning method plugs into the trainer, and what it may see of its runs.

The trainer trains K runs of one cell (same dataset, regime, method and settings;
different task orders or seeds) as one grouped network. Every per-run quantity
a method handles has the runs as its first dimension: flat parameter vectors
and gradients are [K, N], losses and penalties [K]. One step, as the trainer
runs it::

    method.before_step()                                  # GEM: memory gradients
    x, y    = method.join(x, y)                           # ER: the batch joined by replay
    loss    = task loss of each run on the step's own batch (the first B samples; over
              the outputs the scenario scores, or ``incoming_outputs``)           [K]
    penalty = method.penalty(x, logits, y)                # lambda * Omega, or None  [K]
    g, p    = gradients of the loss and of the penalty    (trainable parameters)  [K, N]
              (p from method.penalty_gradient() when the method has it in closed form)
    update  = method.direction(g + p, g, p, active)       # GEM projects, SI clips
    optimiser step along update;  method.after_step(g)
    method.store(images, labels, logits, active)          # replay: the memory's offer

around which ``grow``, ``before_task``, ``train_data`` and ``after_task`` run once per
task. A method sees the tasks trained so far and the current one, never a later one.
A method whose network grows (DER) gives the trainer its network (``network``) and,
from ``grow``, the parameters each task trains.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, get_type_hints

import torch
from torch import nn

from cl_regimes.config import SCENARIOS, Choice, ConfigError, Range
from cl_regimes.data import Task
from cl_regimes.models import flatten

REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> None:
    """Register a method under its ``name``; refuse a name another class has."""
    known = REGISTRY.get(cls.name)
    where = f"{cls.__module__}.{cls.__qualname__}"
    if known and f"{known.__module__}.{known.__qualname__}" != where:
        raise ConfigError(
            f"method {where} is named {cls.name!r}, which "
            f"{known.__module__}.{known.__qualname__} already has; give it another name"
        )
    REGISTRY[cls.name] = cls


@dataclass(frozen=True)
class Runs:
    """What a method may see of the K runs it trains."""

    model: nn.Module  # the grouped network: forward passes and snapshots
    params: list[nn.Parameter]  # the regime's trainable parameters
    runs: int
    # score(logits [B, K, classes], labels [B, K]) -> (the logits each sample is scored
    # over under the scenario [B, K, n], the position of its label among them [B, K])
    score: Callable
    inputs: Callable[[torch.Tensor], torch.Tensor]  # uint8 [N, K, C, S, S] -> network input
    generators: list[torch.Generator]  # run k's random stream
    # fit(x [K, n, ...], y [K, n], params, epochs, schedule=..., early_stopping=...,
    #     outputs=None: each run's outputs [K, m] to score over instead of the scenario's)
    fit: Callable
    # per-run flat gradient of the task loss on non-augmented images [N, K, ...] -> [K, N]
    # (x, y, update_bn, out=None: a [K, N] buffer to write it to)
    task_gradients: Callable
    # network(salt) -> a fresh grouped ResNet-18 on the device, run k's part initialised
    # as a single network (random or pretrained: ``init``) from a seed derived from its
    # own and ``salt`` (DER's extractors)
    network: Callable[[str], nn.Module] | None = None
    # augment(uint8 images [N, K, C, S, S], generators) -> the same images with each run's
    # random crops and flips drawn from its generator, as training batches get them (as
    # they are where the scenario does not augment)
    augment: Callable | None = None
    # streams(salt) -> each run's own further random stream, seeded from its seed and
    # ``salt`` (a replay memory's draws), apart from the data stream ``generators``
    streams: Callable[[str], list[torch.Generator]] | None = None

    def flat(self, tensors, out: torch.Tensor | None = None) -> torch.Tensor:
        """[K, N] rows of ``tensors``; copied into ``out`` (detached) when given."""
        return flatten(tensors, self.runs, out)

    def sample(self, tasks: list[Task], count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` random non-augmented training images of each run's task (from the run's
        generator): ([count, K, C, S, S], [count, K])."""
        picks = [
            torch.randperm(len(t.train.y), device=t.train.y.device, generator=g)[:count]
            for t, g in zip(tasks, self.generators)
        ]
        return (
            torch.stack([t.train.x[i] for t, i in zip(tasks, picks)], 1),
            torch.stack([t.train.y[i] for t, i in zip(tasks, picks)], 1),
        )


class Method:
    """Plain sequential training; subclasses override the hooks they need.

    A subclass with a ``name`` registers itself; its hyperparameters are the
    arguments of its constructor after ``runs``, each annotated with its valid
    values (``Annotated[float, Range(0)]``); their values live in profiles.py.
    """

    name: ClassVar[str]
    reference: ClassVar[bool] = False  # a reference point (finetune, joint), not in the paper
    needs_task_gradient: ClassVar[bool] = False  # g is needed apart from the penalty's gradient
    stop_on_total_loss: ClassVar[bool] = False  # early stopping watches loss + penalty
    scenarios: ClassVar[tuple[str, ...]] = SCENARIOS  # those it applies to
    in_grid: ClassVar[bool] = True  # False: in no profile's grid, swept when named (DER)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            register(cls)

    def __init__(self, runs: Runs):
        self.runs = runs

    @classmethod
    def parameters(cls) -> dict[str, Range | Choice]:
        """The method's hyperparameters and their valid values, from its constructor."""
        hints = {}  # a setting passed on to a base class is annotated there
        for base in reversed(cls.__mro__):
            if issubclass(base, Method) and "__init__" in vars(base):
                hints.update(get_type_hints(base.__init__, include_extras=True))
        out = {}
        for n in list(inspect.signature(cls.__init__).parameters)[2:]:
            valid = getattr(hints.get(n), "__metadata__", (None,))[0]
            if not isinstance(valid, (Range, Choice)):
                raise ConfigError(
                    f"method {cls.name!r}: setting {n!r} has no valid values; annotate it "
                    f"with them, e.g. {n}: Annotated[float, Range(0)] (cl_regimes.config)"
                )
            out[n] = valid
        return out

    @classmethod
    def defaults(cls) -> dict:
        """The default values its constructor gives its hyperparameters (a plug-in's values)."""
        signature = inspect.signature(cls.__init__)
        return {
            n: p.default
            for n, p in list(signature.parameters.items())[2:]
            if p.default is not inspect.Parameter.empty
        }

    def network(self) -> nn.Module:
        """The network the trainer trains and evaluates (its forward gives the logits)."""
        return self.runs.model

    def grow(self, position: int) -> list[nn.Parameter] | None:
        """Before anything else of task ``position`` (0, 1, ...): a method whose network
        grows adds to it and returns the parameters to train from now on; None keeps them."""
        return None

    def before_task(self, tasks: list[Task]) -> None:
        """Before training ``tasks`` (the current task of each run)."""

    def train_data(self, seen: list[list[Task]]) -> tuple[torch.Tensor, torch.Tensor]:
        """The (uint8 images [K, n, C, S, S], labels [K, n]) to train the current task on,
        given each run's tasks so far (the current one last)."""
        return (
            torch.stack([tasks[-1].train.x for tasks in seen]),
            torch.stack([tasks[-1].train.y for tasks in seen]),
        )

    def before_step(self) -> None:
        pass

    def join(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network inputs [B + M, K * 3, S, S] and labels [B + M, K] of the step's
        forward pass, given the batch's (x [B, ...], y [B, K]): the batch itself, or the
        batch followed by M replayed samples (ER). The task loss scores the first B."""
        return x, y

    def incoming_outputs(self, tasks: list[Task]) -> torch.Tensor | None:
        """The outputs [K, m] (sorted) each run's incoming batches of ``tasks`` are scored
        over, in place of the classes met so far (ER-ACE's asymmetric loss); None: the
        scenario's."""
        return None

    def penalty(self, x, logits, y) -> torch.Tensor | None:
        """lambda * Omega of each run for this batch [K] (None: no penalty)."""
        return None

    def penalty_gradient(self) -> torch.Tensor | None:
        """The gradient [K, N] of the penalty just computed, when the method has it in
        closed form (then ``penalty`` may return a detached value); None: the trainer
        differentiates ``penalty``."""
        return None

    def direction(
        self,
        total: torch.Tensor,
        task_grad: torch.Tensor | None,
        penalty_grad: torch.Tensor | None,
        active: torch.Tensor,
    ) -> torch.Tensor:
        """The direction the optimiser follows, given the summed gradient [K, N]; rows of
        inactive runs (``active`` False) are discarded."""
        return total

    def retention(
        self, task_grad: torch.Tensor, penalty_grad: torch.Tensor | None, update: torch.Tensor
    ) -> torch.Tensor | None:
        """The "retention gradient" as the original study's code read it for its update
        statistics (None or a zero row: it recorded none)."""
        return None

    def after_step(self, task_grad: torch.Tensor | None) -> None:
        pass

    def store(self, images, labels, logits, active) -> None:
        """After each step: the batch's non-augmented uint8 images [B, K, C, S, S], labels
        [B, K], the logits the step computed for them [B, K, classes] (detached) and which
        runs trained ``active`` [K] (a replay memory's offer)."""

    def after_task(self, tasks: list[Task]) -> None:
        pass

    def task_stats(self) -> list[dict]:
        """Per run, what the method counted during the task just trained (for the record)."""
        return [{} for _ in range(self.runs.runs)]
