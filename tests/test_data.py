"""Datasets, task splits and orders, augmentation and normalisation.

The torchvision loaders are exercised on small IDX / pickle files written here in
the exact layouts torchvision reads, so no test needs the internet.
"""

from __future__ import annotations

import pickle
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets as tvd

from cl_regimes import data, inputs
from cl_regimes.config import ConfigError

IDX_TYPE = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file: big-endian magic (0x0000, type code, number of dimensions), the
    dimensions as big-endian uint32, then the values big-endian."""
    code = IDX_TYPE[array.dtype]
    header = struct.pack(">I", (code << 8) | array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + array.astype(array.dtype.newbyteorder(">")).tobytes())


def fake_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def fake_labels(n: int) -> np.ndarray:
    return (np.arange(n) % 10).astype(np.uint8)


def write_mnist_like(root: Path, folder: str, n_train: int = 20, n_test: int = 10) -> dict:
    """MNIST / KMNIST layout: <root>/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte."""
    raw = root / folder / "raw"
    written = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        x, y = fake_images(n, seed), fake_labels(n)[::-1].copy()
        write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
        written[prefix] = (x, y)
    return written


def write_qmnist(root: Path, n_train: int = 20, n_test: int = 10) -> dict:
    """QMNIST raw layout: images idx3 uint8; labels idx2 int32 [N, 8], the class in column 0."""
    raw = root / "QMNIST" / "raw"
    written = {}
    for split, n, seed in (("train", n_train, 3), ("test", n_test, 4)):
        x = fake_images(n, seed)
        y = np.random.default_rng(seed).integers(0, 10_000, (n, 8)).astype(np.int32)
        y[:, 0] = fake_labels(n)
        write_idx(raw / f"qmnist-{split}-images-idx3-ubyte", x)
        write_idx(raw / f"qmnist-{split}-labels-idx2-int", y)
        written[split] = (x, y[:, 0])
    return written


@pytest.fixture
def fresh_load():
    data.load.cache_clear()
    yield data.load
    data.load.cache_clear()


# ---------------------------------------------------------------- class blocks and orders


@pytest.mark.parametrize("num_classes, num_tasks", [(10, 5), (100, 10)])
def test_class_blocks_disjoint_and_covering(num_classes, num_tasks):
    blocks = data.class_blocks(num_classes, num_tasks)
    assert len(blocks) == num_tasks
    assert all(len(b) == num_classes // num_tasks for b in blocks)
    flat = [c for b in blocks for c in b]
    assert len(flat) == len(set(flat))  # disjoint
    assert sorted(flat) == list(range(num_classes))  # covering
    assert all(b == sorted(b) and b[-1] - b[0] == len(b) - 1 for b in blocks)  # contiguous


def reference_orders(num_tasks: int) -> list[list[int]]:
    """DESIGN section 3, written independently of the library."""
    rng = random.Random(42)
    canonical = list(range(num_tasks))
    kept, seen = [], {tuple(canonical)}
    while len(kept) < 10:
        perm = list(range(num_tasks))
        rng.shuffle(perm)
        if tuple(perm) not in seen:
            seen.add(tuple(perm))
            kept.append(perm)
    return [canonical] + kept


@pytest.mark.parametrize("num_tasks", [5, 10])
def test_task_orders(num_tasks):
    orders = data.task_orders(num_tasks)
    assert len(orders) == 11
    assert orders[0] == list(range(num_tasks))
    assert all(sorted(o) == list(range(num_tasks)) for o in orders)
    assert len({tuple(o) for o in orders}) == 11
    assert data.task_orders(num_tasks) == orders  # identical on every call
    assert orders == reference_orders(num_tasks)


# ---------------------------------------------------------------- subsampling and tasks


def test_subsample_stratified():
    y = torch.tensor([0] * 30 + [1] * 50 + [2] * 7 + [3] * 12)[torch.randperm(99)]
    gen = torch.Generator().manual_seed(0)
    idx = data.subsample(y, [0, 1], 20, gen)
    assert torch.equal(idx, idx.sort().values)
    assert len(idx.unique()) == len(idx) == 20
    assert torch.bincount(y[idx], minlength=4).tolist() == [10, 10, 0, 0]
    # a class with fewer samples than its share gives all it has
    idx = data.subsample(y, [2, 3], 20, gen)
    assert torch.bincount(y[idx], minlength=4).tolist() == [0, 0, 7, 10]
    # no cap: every sample of the classes
    idx = data.subsample(y, [1, 3], None, gen)
    assert torch.equal(idx, (y == 1).logical_or(y == 3).nonzero().squeeze(1))


def test_tasks_follow_order_and_are_reproducible():
    ds = data.load("digits", image_size=16)
    order = data.task_orders(5)[3]
    shared = data.make_blocks(ds, 40, 20, torch.device("cpu"))
    tasks = data.tasks_in_order(shared, order)
    again = data.tasks_in_order(data.make_blocks(ds, 40, 20, torch.device("cpu")), order)
    # a block is the same images in every order (the tensors are shared, not copied)
    other = data.tasks_in_order(shared, data.task_orders(5)[0])
    assert other[order[0]].train.x is tasks[0].train.x
    blocks = data.class_blocks(10, 5)
    for pos, (task, twin) in enumerate(zip(tasks, again, strict=True)):
        assert task.position == pos and task.block == order[pos]
        assert task.classes == blocks[order[pos]]
        assert torch.bincount(task.train.y, minlength=10)[task.classes].tolist() == [20, 20]
        assert torch.bincount(task.test.y, minlength=10)[task.classes].tolist() == [10, 10]
        assert set(task.train.y.tolist()) == set(task.classes)
        assert torch.equal(task.train.x, twin.train.x) and torch.equal(task.test.y, twin.test.y)
    with pytest.raises(ConfigError, match="permutation"):
        data.tasks_in_order(shared, [0, 1, 2, 3, 3])


def test_no_task_trains_on_another_tasks_validation_images():
    ds = data.load("digits", image_size=16)
    every = [list(range(10))] * 5  # domain-incremental: every task holds every class
    pairs = data.block_indices(ds, None, None, every, validation_per_task=50)
    held = set(pairs[0][1].tolist())
    for train, val in pairs:  # one validation draw, every other image trained on
        assert set(val.tolist()) == held and len(held) == 50
        assert set(train.tolist()) == set(range(len(ds.train.y))) - held
    # class blocks share no class: the same images as when each task held out its own only
    gen, held_gen = torch.Generator().manual_seed(0), torch.Generator().manual_seed(1)
    for task_classes, (train, val) in zip(
        data.class_blocks(10, 5), data.block_indices(ds, 60, None, validation_per_task=20)
    ):
        assert torch.equal(val, data.subsample(ds.train.y, task_classes, 20, held_gen))
        own = ds.train.y.clone()
        own[val] = -1
        assert torch.equal(train, data.subsample(own, task_classes, 60, gen))


def test_digits_loads():
    ds = data.load("digits")
    assert ds.spec.num_classes == 10 and ds.spec.num_tasks == 5
    assert ds.spec.classes_per_task == 2
    assert ds.train.x.shape[1:] == (1, 32, 32) and ds.train.x.dtype == torch.uint8
    assert len(ds.train.x) + len(ds.test.x) == 1797
    assert len(ds.train.y) == len(ds.train.x) and ds.train.y.dtype == torch.int64
    assert sorted(ds.train.y.unique().tolist()) == list(range(10))
    assert not ds.spec.flip
    with pytest.raises(ConfigError, match="unknown dataset 'nosuch'"):
        data.load("nosuch")


def test_resize_is_pils_bilinear_as_torchvision_resize_does_it():
    import torchvision.transforms as T
    from PIL import Image

    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    ours = data.resize(images, 32)
    for image, mine in zip(images, ours, strict=True):
        theirs = np.asarray(T.Resize(32)(Image.fromarray(image)))
        assert np.array_equal(mine[0].numpy(), theirs)
    rgb = np.random.default_rng(1).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    assert torch.equal(data.resize(rgb, 32), torch.from_numpy(rgb).permute(0, 3, 1, 2))


def test_normalisation_constants_are_the_originals():
    assert data.spec("cifar100").mean == (0.5071, 0.4867, 0.4408)
    assert data.spec("cifar100").std == (0.2675, 0.2565, 0.2761)
    for name in ("digits", "mnist", "fashion_mnist", "kmnist", "qmnist"):
        assert (data.spec(name).mean, data.spec(name).std) == ((0.1307,), (0.3081,))


# ---------------------------------------------------------------- augmentation


def matching_crops(image: torch.Tensor, out: torch.Tensor, pad: int, flips) -> list:
    """Every (dy, dx, flipped) for which ``out`` is that crop of the zero-padded ``image``."""
    padded = F.pad(image, (pad, pad, pad, pad))
    h, w = image.shape[-2:]
    hits = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            for flipped in flips:
                if torch.equal(out, crop.flip(-1) if flipped else crop):
                    hits.append((dy, dx, flipped))
    return hits


def augmented(x, flip, generator):
    return inputs.augment(x, *inputs.draw_augmentation(len(x), x.shape[-1], flip, generator))


@pytest.mark.parametrize("channels, size", [(1, 16), (3, 32)])
def test_augment_is_a_crop_of_the_padded_image(channels, size):
    x = torch.randint(1, 256, (24, channels, size, size), dtype=torch.uint8)
    out = augmented(x, False, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    pad = size // 8
    offsets = set()
    for image, result in zip(x, out, strict=True):
        hits = matching_crops(image, result, pad, flips=(False,))
        assert len(hits) == 1, "each output must be exactly one crop of the padded input"
        offsets.add(hits[0][:2])
    assert len(offsets) > 1  # the offsets are random, not a fixed shift
    again = augmented(x, False, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # seeded by the generator


def test_augment_flip_variant():
    x = torch.randint(1, 256, (32, 3, 32, 32), dtype=torch.uint8)
    out = augmented(x, True, torch.Generator().manual_seed(1))
    assert out.shape == x.shape and out.dtype == torch.uint8
    flipped = []
    for image, result in zip(x, out, strict=True):
        hits = matching_crops(image, result, 4, flips=(False, True))
        assert len(hits) == 1
        flipped.append(hits[0][2])
    assert any(flipped) and not all(flipped)


# ---------------------------------------------------------------- normalisation


def test_normalizer_grey_to_three_channels():
    ds = data.spec("mnist")
    x = torch.randint(0, 256, (5, 1, 1, 16, 16), dtype=torch.uint8)
    kept = x.clone()
    out = inputs.Normalizer(ds, torch.device("cpu"))(x)
    assert out.shape == (5, 3, 16, 16) and out.dtype == torch.float32
    assert torch.equal(x, kept)
    expected = (x[:, 0].double() / 255 - 0.1307) / 0.3081
    for c in range(3):
        torch.testing.assert_close(out[:, c : c + 1].double(), expected, rtol=1e-5, atol=1e-5)
    assert out[0, 0, 0, 0].item() == pytest.approx(
        (x[0, 0, 0, 0, 0].item() / 255 - 0.1307) / 0.3081, rel=1e-5
    )


def test_normalizer_rgb_per_channel_and_runs_side_by_side():
    ds = data.spec("cifar100")
    x = torch.full((2, 2, 3, 8, 8), 255, dtype=torch.uint8)  # [N, K runs, C, S, S]
    x[:, :, 1] = 0
    x[:, 1] = 255 - x[:, 1]
    out = inputs.Normalizer(ds, torch.device("cpu"))(x)
    assert out.shape == (2, 6, 8, 8)  # run k in channels 3k .. 3k + 2
    for c, value in enumerate((1.0, 0.0, 1.0, 0.0, 1.0, 0.0)):
        assert torch.allclose(out[:, c], torch.tensor((value - ds.mean[c % 3]) / ds.std[c % 3]))


# ---------------------------------------------------------------- torchvision loaders


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("kmnist", "KMNIST")])
def test_mnist_family_loads_idx_files(tmp_path, fresh_load, name, folder):
    written = write_mnist_like(tmp_path, folder)
    ds = fresh_load(name, data_dir=tmp_path, image_size=32)
    for split, prefix in ((ds.train, "train"), (ds.test, "t10k")):
        x, y = written[prefix]
        assert split.x.shape == (len(x), 1, 32, 32) and split.x.dtype == torch.uint8
        assert split.y.dtype == torch.int64 and split.y.tolist() == y.tolist()
    assert ds.spec.num_classes == 10 and ds.spec.num_tasks == 5 and not ds.spec.flip
    # at the native size the images come through untouched
    same = fresh_load(name, data_dir=tmp_path, image_size=28)
    assert torch.equal(same.train.x[:, 0], torch.from_numpy(written["train"][0]))
    assert torch.equal(same.test.x[:, 0], torch.from_numpy(written["t10k"][0]))


def test_qmnist_loads_idx_files(tmp_path, fresh_load):
    written = write_qmnist(tmp_path)
    ds = fresh_load("qmnist", data_dir=tmp_path, image_size=32)
    for split, key in ((ds.train, "train"), (ds.test, "test")):
        x, y = written[key]
        assert split.x.shape == (len(x), 1, 32, 32) and split.x.dtype == torch.uint8
        assert split.y.ndim == 1 and split.y.tolist() == y.tolist()  # column 0 only
    same = fresh_load("qmnist", data_dir=tmp_path, image_size=28)
    assert torch.equal(same.train.x[:, 0], torch.from_numpy(written["train"][0]))


def test_resize_keeps_a_constant_image_constant(tmp_path, fresh_load):
    raw = tmp_path / "MNIST" / "raw"
    for prefix, n in (("train", 4), ("t10k", 2)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.full((n, 28, 28), 200, np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", fake_labels(n))
    ds = fresh_load("mnist", data_dir=tmp_path, image_size=32)
    assert (ds.train.x == 200).all() and (ds.test.x == 200).all()


def write_cifar100(root: Path, monkeypatch, n_train: int = 20, n_test: int = 10) -> dict:
    """CIFAR-100's python layout: <root>/cifar-100-python/{train,test,meta} pickles, labels
    (7 i) mod 100; torchvision is told to accept their checksums, which are not the real
    files'."""
    folder = root / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)  # rows: R plane, G, B
        labels = [(7 * i) % 100 for i in range(n)]
        with open(folder / split, "wb") as f:
            pickle.dump({"data": pixels, "fine_labels": labels, "coarse_labels": [0] * n}, f)
        written[split] = (pixels.reshape(n, 3, 32, 32), labels)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"class{i}" for i in range(100)]}, f)
    monkeypatch.setattr(tvd.CIFAR100, "_check_integrity", lambda self: True)
    monkeypatch.setattr(
        "torchvision.datasets.cifar.check_integrity", lambda path, md5=None: Path(path).is_file()
    )
    return written


def test_cifar100_loads_pickles(tmp_path, fresh_load, monkeypatch):
    written = write_cifar100(tmp_path, monkeypatch)
    ds = fresh_load("cifar100", data_dir=tmp_path, image_size=32)
    assert ds.spec.num_classes == 100 and ds.spec.num_tasks == 10 and ds.spec.flip
    for split, key in ((ds.train, "train"), (ds.test, "test")):
        x, y = written[key]
        assert split.x.shape == (len(y), 3, 32, 32) and split.x.dtype == torch.uint8
        assert torch.equal(split.x, torch.from_numpy(x))  # channels first, planes in order
        assert split.y.tolist() == y


@pytest.mark.parametrize(
    "name, cls",
    [
        ("mnist", tvd.MNIST),
        ("kmnist", tvd.KMNIST),
        ("qmnist", tvd.QMNIST),
        ("cifar100", tvd.CIFAR100),
    ],
)
def test_missing_dataset_raises_data_not_found(tmp_path, fresh_load, monkeypatch, name, cls):
    def offline(self):
        raise OSError("no network in tests")

    monkeypatch.setattr(cls, "download", offline)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(data.DataNotFoundError) as err:
        fresh_load(name, data_dir=empty, image_size=32)
    message = str(err.value)
    assert repr(name) in message and str(empty) in message
    assert "\n" not in message
    assert isinstance(err.value, ConfigError)


def test_fashion_mnist_from_debian_package(tmp_path, fresh_load):
    if not data.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    ds = fresh_load("fashion_mnist", data_dir=tmp_path)
    assert ds.train.x.shape == (60000, 1, 32, 32) and ds.test.x.shape == (10000, 1, 32, 32)
    assert torch.bincount(ds.train.y).tolist() == [6000] * 10
    assert torch.bincount(ds.test.y).tolist() == [1000] * 10
    assert sorted(p.name for p in (tmp_path / "FashionMNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ]


def test_concurrent_first_loads_of_fashion_mnist(tmp_path):
    """Parallel notebooks may all find the IDX files missing and decompress them at once."""
    if not data.DEBIAN_FASHION_MNIST.is_dir():
        pytest.skip("Debian package dataset-fashion-mnist not installed")
    code = (
        "import sys; from cl_regimes import data; "
        "print(len(data.load('fashion_mnist', sys.argv[1]).train.y))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-300:] for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == ["60000"] * 3
    assert not list((tmp_path / "FashionMNIST" / "raw").glob("*.tmp"))
