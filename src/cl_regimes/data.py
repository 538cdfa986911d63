"""Datasets as uint8 tensors, task splits and orders, and batched on-device augmentation.

Every dataset is loaded once through its real loader (torchvision's dataset
classes, scikit-learn's bundled ``digits``) into uint8 tensors of shape
[N, C, 32, 32]; everything after that is tensor indexing on the device.
"""

from __future__ import annotations

import functools
import gzip
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from cl_regimes.config import ConfigError, check_choice
from cl_regimes.profiles import DATASETS

MNIST_STATS = ((0.1307,), (0.3081,))
CIFAR100_STATS = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATA_ENV = "CL_REGIMES_DATA"
# (train, test) images per dataset, for estimates made without loading them
SIZES = {"digits": (1437, 360), "mnist": (60000, 10000), "fashion_mnist": (60000, 10000),
         "kmnist": (60000, 10000), "qmnist": (60000, 60000), "cifar100": (50000, 10000)}


class DataNotFoundError(ConfigError):
    """A dataset is on none of the places looked at, and could not be downloaded."""


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8 [N, C, S, S]
    y: torch.Tensor  # int64 [N]


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split
    num_classes: int
    num_tasks: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # horizontal flips in training augmentation

    @property
    def classes_per_task(self) -> int:
        return self.num_classes // self.num_tasks


def default_data_dir() -> Path:
    """``$CL_REGIMES_DATA`` if set, else ``data/`` in the repository (or the working directory)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    repo = Path(__file__).resolve().parents[2]
    return (repo if (repo / "pyproject.toml").exists() else Path.cwd()) / "data"


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, H, W] -> uint8 [N, C, size, size] (bilinear, antialiased)."""
    if images.shape[-1] == size:
        return images.contiguous()
    out = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True,
                        align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8)


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


def _torchvision(name: str, root: Path, train: bool):
    import torchvision.datasets as tvd

    cls = {"mnist": tvd.MNIST, "fashion_mnist": tvd.FashionMNIST, "kmnist": tvd.KMNIST,
           "qmnist": tvd.QMNIST, "cifar100": tvd.CIFAR100}[name]
    if name == "fashion_mnist" and DEBIAN_FASHION_MNIST.is_dir():
        _install_debian_fashion_mnist(root)
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:
        pass
    try:
        return cls(str(root), train=train, download=True)
    except Exception as err:  # no internet, a proxy, a half-written file...
        hint = ("`apt-get install dataset-fashion-mnist` (Debian), or run once on a machine "
                "with internet" if name == "fashion_mnist" else
                "run once on a machine with internet (torchvision downloads it), or copy "
                f"torchvision's folder for it into {root}")
        looked = [str(root)] + ([str(DEBIAN_FASHION_MNIST)] if name == "fashion_mnist" else [])
        raise DataNotFoundError(
            f"dataset {name!r} not found (looked in {', '.join(looked)}; download failed: "
            f"{type(err).__name__}); get it with: {hint}; or set {DATA_ENV}") from None


def _split_from_torchvision(ds, size: int) -> Split:
    x = torch.as_tensor(ds.data)
    x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)  # grey [N,H,W] or RGB [N,H,W,C]
    y = torch.as_tensor(ds.targets)
    y = y[:, 0] if y.ndim == 2 else y  # QMNIST keeps extra label columns
    return Split(_resize(x, size), y.long())


def _digits(size: int) -> tuple[Split, Split]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.as_tensor(digits.images * (255 / 16)).round().to(torch.uint8).unsqueeze(1)
    labels = torch.as_tensor(digits.target).long()
    tr, te = train_test_split(range(len(labels)), test_size=0.2, stratify=digits.target,
                              random_state=0)
    images = _resize(images, size)
    return Split(images[tr], labels[tr]), Split(images[te], labels[te])


@functools.lru_cache(maxsize=4)
def load(name: str, data_dir: str | Path | None = None, image_size: int = 32) -> Dataset:
    """Load a dataset once into uint8 tensors of image_size x image_size (cached per process)."""
    check_choice("dataset", name, DATASETS)
    if name == "digits":
        train, test = _digits(image_size)
    else:
        root = Path(data_dir) if data_dir else default_data_dir()
        train, test = (_split_from_torchvision(_torchvision(name, root, flag), image_size)
                       for flag in (True, False))
    cifar = name == "cifar100"
    mean, std = CIFAR100_STATS if cifar else MNIST_STATS
    return Dataset(name, train, test, num_classes=100 if cifar else 10,
                   num_tasks=10 if cifar else 5, mean=mean, std=std, flip=cifar)


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


def subsample(y: torch.Tensor, classes: list[int], per_task: int | None,
              generator: torch.Generator) -> torch.Tensor:
    """Indices of a task's samples, stratified: ``per_task // len(classes)`` of each class."""
    picks = []
    for c in classes:
        idx = (y == c).nonzero().squeeze(1)
        if per_task is not None:
            idx = idx[torch.randperm(len(idx), generator=generator)[: per_task // len(classes)]]
        picks.append(idx)
    return torch.cat(picks).sort().values


@dataclass(frozen=True)
class Task:
    """One task of a run, its images resident on the run's device."""

    position: int  # when it is trained (0 = first)
    block: int  # which class block it is
    classes: list[int]
    train: Split
    test: Split


def make_tasks(ds: Dataset, order: list[int], train_per_task: int | None,
               test_per_task: int | None, device: torch.device) -> list[Task]:
    """The tasks of one order, subsampled with a fixed seed (the same images in every run)."""
    if sorted(order) != list(range(ds.num_tasks)):
        raise ConfigError(f"order {order} is not a permutation of the {ds.num_tasks} tasks")
    gen = torch.Generator().manual_seed(0)
    blocks = class_blocks(ds.num_classes, ds.num_tasks)
    tasks = []
    for position, block in enumerate(order):
        splits = []
        for split, per_task in ((ds.train, train_per_task), (ds.test, test_per_task)):
            idx = subsample(split.y, blocks[block], per_task, gen)
            splits.append(Split(split.x[idx].to(device), split.y[idx].to(device)))
        tasks.append(Task(position, block, blocks[block], *splits))
    return tasks


def augment(x: torch.Tensor, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random crop with zero padding of 1/8 of the side (4 pixels at 32x32), plus a
    horizontal flip if asked, of a uint8 batch, on its device."""
    n, c, h, w = x.shape
    pad = w // 8
    padded = F.pad(x, (pad, pad, pad, pad))
    dev = x.device
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), device=dev, generator=generator)
    rows = (dy + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None],
                 torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    if flip:
        mirror = torch.rand(n, device=dev, generator=generator) < 0.5
        out = torch.where(mirror[:, None, None, None], out.flip(3), out)
    return out


class Normalizer:
    """uint8 images -> normalised float inputs with 3 channels, channels_last (the faster
    convolution layout on CUDA and, by about 15% for this ResNet, on CPU)."""

    def __init__(self, ds: Dataset, device: torch.device):
        self.mean = torch.tensor(ds.mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(ds.std, device=device).view(1, -1, 1, 1)
        self.memory_format = torch.channels_last

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.float().div_(255) - self.mean) / self.std
        return out.expand(-1, 3, -1, -1).contiguous(memory_format=self.memory_format)
