"""The conventional way to train and feed a run: torchvision's FashionMNIST, PIL transforms
and a ``DataLoader`` over the library's own subsets, the reference that sections ``run``
and ``input`` time cl_regimes against (and report alike), and ``paper`` counts evaluated
images with."""

from __future__ import annotations

import functools

import torch
import torchvision.datasets as tvd
import torchvision.transforms as T
from timing import ratios, row
from torch.utils.data import DataLoader, Subset

from cl_regimes import data, models, scenarios, train
from cl_regimes.models import ResNet18, cross_entropy


@functools.cache
def torchvision_fashion(train_split: bool, size: int):
    """torchvision's FashionMNIST in the library's data dir, with the usual PIL transforms."""
    mean, std = data.MNIST_STATS["mean"], data.MNIST_STATS["std"]
    steps = [T.Resize(size), T.Grayscale(3)]
    if train_split:
        steps.append(T.RandomCrop(size, padding=size // 8))
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])
    return tvd.FashionMNIST(str(data.default_data_dir()), train=train_split, transform=transform)


def loader(dataset, indices, batch_size: int, shuffle: bool, workers: int, device) -> DataLoader:
    return DataLoader(
        Subset(dataset, indices.tolist()),
        batch_size,
        shuffle=shuffle,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )


def task_indices(cfg) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) dataset indices per task of the order, drawn exactly as data.make_blocks
    draws them (block by block, train then test), then put in the run's order."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    gen = torch.Generator().manual_seed(0)
    blocks = [
        tuple(
            data.subsample(split.y, classes, n, gen)
            for split, n in ((ds.train, cfg.train_per_task), (ds.test, cfg.test_per_task))
        )
        for classes in data.class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    ]
    return [blocks[b] for b in data.task_orders(ds.spec.num_tasks)[cfg.order]]


def check_indices(cfg) -> None:
    """The conventional pipeline trains and tests on exactly the library's images."""
    ds = data.load(cfg.dataset, None, cfg.image_size)
    blocks = data.make_blocks(ds, cfg.train_per_task, cfg.test_per_task, torch.device("cpu"))
    tasks = data.tasks_in_order(blocks, data.task_orders(ds.spec.num_tasks)[cfg.order])
    for task, (tr, te) in zip(tasks, task_indices(cfg), strict=True):
        assert torch.equal(ds.train.x[tr], task.train.x) and torch.equal(ds.test.x[te], task.test.x)


def run(cfg, device: torch.device, workers: int) -> list[list[float]]:
    """The textbook pipeline for the run ``cfg``; returns its accuracy matrix R."""
    train.seed_everything(cfg.seed)
    spec = data.spec(cfg.dataset)
    model = ResNet18(spec.num_classes, cfg.width).to(device)  # one run: logits [B, 1, classes]
    params = models.apply_regime(model, cfg.regime)
    bf16 = cfg.precision == "bf16"
    til = scenarios.get("task_incremental", spec)
    indices = task_indices(cfg)
    tests = [
        loader(
            torchvision_fashion(False, cfg.image_size),
            te,
            cfg.eval_batch_size,
            False,
            workers,
            device,
        )
        for _, te in indices
    ]
    R = []
    for tr, _ in indices:
        batches = loader(
            torchvision_fashion(True, cfg.image_size), tr, cfg.batch_size, True, workers, device
        )
        opt = torch.optim.Adam(params, lr=cfg.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs, eta_min=cfg.lr_min)
        for _ in range(cfg.epochs):
            models.set_train_mode(model, cfg.bn_stats, params)
            for x, y in batches:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = cross_entropy(*til.score(model(x), y[:, None], None)).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            schedule.step()
        model.eval()
        row_acc = []
        with torch.no_grad():
            for test in tests:
                correct = total = 0
                for x, y in test:
                    x, y = x.to(device), y[:, None].to(device)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                        logits = model(x)
                    scored, target = til.score(logits, y, None)
                    correct += (scored.argmax(-1) == target).sum().item()
                    total += len(y)
                row_acc.append(correct / total)
        R.append(row_acc)
    return R


@functools.cache
def working_workers(requested: tuple[int, ...], device) -> list[int]:
    """The requested num_workers values that DataLoader accepts here (tried once)."""
    ok = []
    for w in requested:
        try:
            next(iter(loader(torchvision_fashion(True, 16), torch.arange(64), 32, True, w, device)))
            ok.append(w)
        except Exception as err:  # e.g. no shared memory in a container
            print(f"note: DataLoader with num_workers={w} fails here ({err!r}); skipped")
    return ok


def ratio_rows(section: str, what: str, times: dict, workers: list[int]) -> None:
    """Per DataLoader contender (``{w}`` in ``what``: its workers), its time / cl_regimes'."""
    for w in workers:
        row(section, what.format(w=w), ratios(times[f"DataLoader w{w}"], times["cl_regimes"]), "x")
