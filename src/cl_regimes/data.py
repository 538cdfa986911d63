"""Datasets as uint8 tensors, and their task splits and orders.

Every dataset is loaded once through its real loader (torchvision's dataset
classes, scikit-learn's bundled ``digits``) into uint8 tensors of shape
[N, C, S, S]; everything after that is tensor indexing on the device (``inputs``:
what the network sees of a batch).
``DATASETS`` is the one table of what differs between datasets.
"""

from __future__ import annotations

import functools
import gzip
import os
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cl_regimes.config import ConfigError, check_choice

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "CL_REGIMES_DATA"


class DataNotFoundError(ConfigError):
    """A dataset is on none of the places looked at, and could not be downloaded."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8 [N, C, S, S]
    y: torch.Tensor  # int64 [N]


Loader = Callable[[str, Path, bool], tuple[np.ndarray, np.ndarray]]


def _torchvision(class_name: str) -> Loader:
    """A loader of one of torchvision's datasets: (name, root, train) -> (images, labels)."""

    def load(name: str, root: Path, train: bool):
        import torchvision.datasets as tvd

        ds = _open_torchvision(getattr(tvd, class_name), name, root, train)
        x, y = np.asarray(ds.data), np.asarray(ds.targets)
        return x, (y[:, 0] if y.ndim == 2 else y)  # QMNIST keeps extra label columns

    return load


def _digits(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits (16 grey levels), a stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    tr, te = train_test_split(
        np.arange(len(images)), test_size=0.2, stratify=digits.target, random_state=0
    )
    idx = tr if train else te
    return images[idx], digits.target[idx]


@dataclass(frozen=True)
class DatasetSpec:
    """What the protocol needs to know of a dataset; its hyperparameters live in profiles."""

    name: str
    load: Loader  # (name, root, train) -> native-size uint8 images, labels
    num_classes: int
    num_tasks: int
    mean: tuple[float, ...]  # normalisation, per channel
    std: tuple[float, ...]
    flip: bool  # horizontal flips in training augmentation
    sizes: tuple[int, int]  # (train, test) images, for estimates made without loading

    @property
    def classes_per_task(self) -> int:
        return self.num_classes // self.num_tasks


MNIST_STATS = dict(mean=(0.1307,), std=(0.3081,))
DATASETS = {
    d.name: d
    for d in (
        DatasetSpec("digits", _digits, 10, 5, **MNIST_STATS, flip=False, sizes=(1437, 360)),
        DatasetSpec(
            "mnist", _torchvision("MNIST"), 10, 5, **MNIST_STATS, flip=False, sizes=(60000, 10000)
        ),
        DatasetSpec(
            "fashion_mnist",
            _torchvision("FashionMNIST"),
            10,
            5,
            **MNIST_STATS,
            flip=False,
            sizes=(60000, 10000),
        ),
        DatasetSpec(
            "kmnist", _torchvision("KMNIST"), 10, 5, **MNIST_STATS, flip=False, sizes=(60000, 10000)
        ),
        DatasetSpec(
            "qmnist", _torchvision("QMNIST"), 10, 5, **MNIST_STATS, flip=False, sizes=(60000, 60000)
        ),
        DatasetSpec(
            "cifar100",
            _torchvision("CIFAR100"),
            100,
            10,
            mean=(0.5071, 0.4867, 0.4408),
            std=(0.2675, 0.2565, 0.2761),
            flip=True,
            sizes=(50000, 10000),
        ),
    )
}


def spec(name: str) -> DatasetSpec:
    check_choice("dataset", name, tuple(DATASETS))
    return DATASETS[name]


@dataclass(frozen=True)
class Dataset:
    spec: DatasetSpec
    train: Split
    test: Split


def default_data_dir() -> Path:
    """``$CL_REGIMES_DATA`` if set, else ``data/`` in the repository (or the working directory)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / "data"


def _install_debian_fashion_mnist(root: Path) -> None:
    """Decompress Debian's Fashion-MNIST into ``root/FashionMNIST/raw`` for torchvision.

    Debian recompressed the .gz files, so their checksums differ from
    torchvision's and it would try to download; the raw IDX files it accepts.
    """
    raw = root / "FashionMNIST" / "raw"
    for gz in sorted(DEBIAN_FASHION_MNIST.glob("*-ubyte.gz")):
        target = raw / gz.name[:-3]
        if not target.exists():
            raw.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")  # one per process
            with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(target)


def _open_torchvision(cls, name: str, root: Path, train: bool):
    fashion = name == "fashion_mnist"
    if fashion and DEBIAN_FASHION_MNIST.is_dir():
        _install_debian_fashion_mnist(root)
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # no internet, a proxy, a half-written file...
        hint = (
            "`apt-get install dataset-fashion-mnist` (Debian), or run once on a machine "
            "with internet"
            if fashion
            else "run once on a machine with internet (torchvision downloads it), or copy "
            f"torchvision's folder for it into {root}"
        )
        looked = [str(root)] + ([str(DEBIAN_FASHION_MNIST)] if fashion else [])
        raise DataNotFoundError(
            f"dataset {name!r} not found (looked in {', '.join(looked)}; download failed: "
            f"{type(err).__name__}); get it with: {hint}; or set {DATA_ENV}"
        ) from None


def resize(images: np.ndarray, size: int, pad: bool = False) -> torch.Tensor:
    """uint8 [N, H, W] or [N, H, W, C] -> uint8 [N, C, size, size], each image resized by
    PIL's bilinear filter, as torchvision's ``Resize`` does on the PIL images the
    original study's data loaders produced. With ``pad``, each image is first
    zero-padded to the next power-of-two side (28 -> 32, as the field runs
    Permuted-MNIST): at size 32 a 28x28 image is padded, not resized."""
    if images.ndim == 3:
        images = images[..., None]
    side = images.shape[1]
    if pad and side & (side - 1):
        before = ((1 << side.bit_length()) - side) // 2
        after = (1 << side.bit_length()) - side - before
        images = np.pad(images, ((0, 0), (before, after), (before, after), (0, 0)))
    if images.shape[1] != size:
        grey = images.shape[-1] == 1
        images = np.stack(
            [
                np.asarray(
                    Image.fromarray(im[..., 0] if grey else im).resize((size, size), Image.BILINEAR)
                )
                for im in images
            ]
        )
        images = images.reshape(len(images), size, size, -1)
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


@functools.lru_cache(maxsize=4)
def load(
    name: str, data_dir: str | Path | None = None, image_size: int = 32, pad: bool = False
) -> Dataset:
    """Load a dataset once into uint8 tensors of image_size x image_size (cached per
    process); ``pad``: see ``resize``."""
    ds = spec(name)
    root = Path(data_dir) if data_dir else default_data_dir()
    splits = []
    for train in (True, False):
        x, y = ds.load(name, root, train)
        splits.append(Split(resize(x, image_size, pad), torch.as_tensor(y).long()))
    return Dataset(ds, *splits)


def class_blocks(num_classes: int, num_tasks: int) -> list[list[int]]:
    """Contiguous class blocks: task k holds classes k*C .. (k+1)*C - 1."""
    per = num_classes // num_tasks
    return [list(range(k * per, (k + 1) * per)) for k in range(num_tasks)]


def task_orders(num_tasks: int, count: int = 10, seed: int = 42) -> list[list[int]]:
    """The canonical order plus ``count`` distinct permutations, drawn as the original study did."""
    rng = random.Random(seed)
    orders = [list(range(num_tasks))]
    seen = {tuple(orders[0])}
    while len(orders) < count + 1:
        perm = list(range(num_tasks))
        rng.shuffle(perm)
        if tuple(perm) not in seen:
            seen.add(tuple(perm))
            orders.append(perm)
    return orders


def subsample(
    y: torch.Tensor, classes: list[int], per_task: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Indices of a task's samples, stratified: ``per_task // len(classes)`` of each class."""
    picks = []
    for c in classes:
        idx = (y == c).nonzero().squeeze(1)
        if per_task is not None:
            idx = idx[torch.randperm(len(idx), generator=generator)[: per_task // len(classes)]]
        picks.append(idx)
    return torch.cat(picks).sort().values


@dataclass(frozen=True)
class Block:
    """One class block (a task) of a dataset, its images resident on the device."""

    block: int
    classes: list[int]
    train: Split
    test: Split


@dataclass(frozen=True)
class Task:
    """A block as one run meets it: ``position`` is when it is trained (0 = first)."""

    position: int
    block: int
    classes: list[int]
    train: Split
    test: Split


def block_indices(
    ds: Dataset,
    train_per_task: int | None,
    test_per_task: int | None,
    classes: list[list[int]] | None = None,
    validation_per_task: int | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(train, test) indices into the dataset's splits of every task, subsampled with a
    fixed seed: the same images in every run (and for benchmarks/compare_original.py).
    A task holds a class block, or the classes ``classes`` gives it. With
    ``validation_per_task``, the second indices are a validation set held out of the
    task's training images (into ``ds.train``; the test images are never read), and
    every task's training images are drawn from the images no task holds out. Tasks of
    the same classes (domain-incremental) share one validation draw, each seeing it
    under its own permutation: no task trains on another's validation images, and the
    training images left are as many as with one task."""
    gen = torch.Generator().manual_seed(0)
    held_gen = torch.Generator().manual_seed(1)
    tasks = classes or class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    if validation_per_task is None:
        return [
            (
                subsample(ds.train.y, c, train_per_task, gen),
                subsample(ds.test.y, c, test_per_task, gen),
            )
            for c in tasks
        ]
    held = {}
    for c in map(tuple, tasks):
        if c not in held:
            held[c] = subsample(ds.train.y, list(c), validation_per_task, held_gen)
    train_y = ds.train.y.clone()
    train_y[torch.cat(list(held.values()))] = -1  # no class: never drawn for training
    return [(subsample(train_y, c, train_per_task, gen), held[tuple(c)]) for c in tasks]


def make_blocks(
    ds: Dataset,
    train_per_task: int | None,
    test_per_task: int | None,
    device: torch.device,
    classes: list[list[int]] | None = None,
    validation_per_task: int | None = None,
) -> list[Block]:
    """Every task (``block_indices``), its images moved to ``device``; with
    ``validation_per_task`` a block's ``test`` holds its validation images."""
    classes = classes or class_blocks(ds.spec.num_classes, ds.spec.num_tasks)
    scored = ds.test if validation_per_task is None else ds.train
    pairs = block_indices(ds, train_per_task, test_per_task, classes, validation_per_task)
    return [
        Block(
            block,
            classes[block],
            *(
                Split(split.x[idx].to(device), split.y[idx].to(device))
                for split, idx in zip((ds.train, scored), pair)
            ),
        )
        for block, pair in enumerate(pairs)
    ]


def tasks_in_order(blocks: list[Block], order: list[int]) -> list[Task]:
    """The blocks in the order a run trains them (sharing their tensors)."""
    if sorted(order) != list(range(len(blocks))):
        raise ConfigError(f"order {order} is not a permutation of the {len(blocks)} tasks")
    return [
        Task(position, b, blocks[b].classes, blocks[b].train, blocks[b].test)
        for position, b in enumerate(order)
    ]
