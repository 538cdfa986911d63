"""The two sides of the comparison on the same work: one run of the original's own training
function and one run of this library, each giving its ACC, forgetting and the accuracies on
the tasks trained so far (R); for ``--deterministic``, the shared start (the original's
initial weights) and the shared inputs (our normalised tensors as its datasets).
"""

from __future__ import annotations

import contextlib
import functools

import torch
from original_code import DATASET, REGIME_NAMES, Original
from torch.utils.data import TensorDataset

from cl_regimes import inputs, metrics, profiles, train


def config_of(args, method: str, order: int, seed: int):
    """Our paper-profile run on the comparison's work."""
    overrides = {
        "width": 64,
        "image_size": args.image_size,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "train_per_task": args.train_per_task,
        "test_per_task": args.test_per_task,
        "gem.memories_per_task": args.gem_memories,
    }
    if args.deterministic:  # every task image in the Fisher sample, as the original's FISHER_N
        overrides["ewc.fisher_samples"] = args.train_per_task
    return profiles.get_profile("paper").config(
        dataset=DATASET,
        regime=args.regime,
        method=method,
        order=order,
        seed=seed,
        overrides=overrides,
    )


def run_ours(config, initial=None) -> dict:
    """One run of this library; from ``initial`` weights without random crops when given."""
    trainer = train.Trainer([config], "cpu", initial=None if initial is None else [initial])
    trainer.scenario.augment = initial is None  # the deterministic work has no crops
    R = trainer.run()[0]["R"]
    return {
        "acc": metrics.acc(R),
        "forgetting": metrics.forgetting(R),
        "R": [row[: i + 1] for i, row in enumerate(R)],  # the tasks trained so far, as theirs
    }


def fixed_tasks(ds, indices) -> list[tuple[TensorDataset, TensorDataset]]:
    """Per task, (train, test) of the normalised network inputs our side computes, as
    datasets the original's loaders read: both sides see the same tensors."""
    normalise = inputs.Normalizer(ds.spec, torch.device("cpu"))

    def split(images, labels):
        return TensorDataset(normalise(images[:, None]), labels)

    return [
        (split(ds.train.x[tr], ds.train.y[tr]), split(ds.test.x[te], ds.test.y[te]))
        for tr, te in indices
    ]


def original_initial(original: Original, stream_seed: int) -> dict[str, torch.Tensor]:
    """The weights the original's ``build_model`` gives after seeding with ``stream_seed``."""
    train.seed_everything(stream_seed)
    return original.tools.build_model().state_dict()


def _built_from(build_model, state, pretrained=False):
    model = build_model(pretrained)
    model.load_state_dict(state)
    return model


def run_original(
    original: Original, method: str, regime: str, order: int, tasks, stream_seed: int, initial=None
) -> dict:
    """One run of the original's own training function; from ``initial`` weights when
    given (its ``build_model`` then loads them), else from its own initialisation."""
    train.seed_everything(stream_seed)  # the original seeds nothing: reruns repeat
    tools, module = original.tools, original.modules[method]
    module.build_model = (
        tools.build_model
        if initial is None
        else functools.partial(_built_from, tools.build_model, initial)
    )
    with contextlib.redirect_stdout(original.log):
        out = getattr(module, f"run_experiment_{method}")(
            REGIME_NAMES[regime], tools.TASK_ORDERS[order], *tasks
        )
    seen = out["acc_matrix"]  # per position trained: {task: accuracy} of the tasks so far
    tasks_in_order = tools.TASK_ORDERS[order]["order"]
    return {
        "acc": out["avg_acc"],
        "forgetting": out["avg_forgetting"],
        "R": [[row[tasks_in_order[j]] for j in range(i + 1)] for i, row in enumerate(seen)],
    }
