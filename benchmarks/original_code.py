"""The original study's code (github.com/PaulTiberiu/Trainable_Depth_CL, commit 4257301, not
part of this repository): checking a clone, importing its modules and configuring them
through their module constants only, and its datasets cut to our subset, so that its
training functions run unchanged in this process (``runners.run_original``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from torch.utils.data import Subset

from cl_regimes import data

ORIGINAL_URL = "https://github.com/PaulTiberiu/Trainable_Depth_CL"
ORIGINAL_COMMIT = "4257301"
# our regime -> the original's name for it (it has no head-only or BN-affine runs in its grid)
REGIME_NAMES = {
    "full": "full_finetune",
    "from_layer1": "last_6_blocks",
    "from_layer2": "last_3_blocks",
    "from_layer3": "last_2_blocks",
    "from_layer4": "last_block",
    "head": "head_only",
    "bn_affine": "bn_affine_only",
}
METHODS = ("ewc", "lwf", "si", "gem")
DATASET = "fashion_mnist"


def fail(message: str) -> None:
    """Stop the comparison with ``message`` on stderr and exit status 2."""
    print(f"compare_original: {message}", file=sys.stderr)
    sys.exit(2)


def check_original(path: Path) -> str:
    """The original's commit (or "unknown" outside a git clone); exit 2 if it is not there."""
    missing = [
        f for f in ("utils/tools.py", *(f"{m}.py" for m in METHODS)) if not (path / f).is_file()
    ]
    if missing:
        fail(
            f"{path} is not a clone of the original study's code "
            f"(missing {', '.join(missing)}); "
            f"get it with: git clone {ORIGINAL_URL} {path} && "
            f"git -C {path} checkout {ORIGINAL_COMMIT}"
        )
    done = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    commit = done.stdout.strip() if done.returncode == 0 else "unknown"
    if commit != "unknown" and not commit.startswith(ORIGINAL_COMMIT):
        print(f"warning: the original is at {commit[:7]}, not {ORIGINAL_COMMIT}", file=sys.stderr)
    return commit


class Original:
    """The original's modules, imported from its clone and configured by their constants."""

    def __init__(self, path: Path, args, data_dir: Path, log):
        self.log = log
        sys.path.insert(0, str(path))
        workdir = tempfile.mkdtemp(prefix="original-")  # it writes results/ where it runs
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            with contextlib.redirect_stdout(log):
                self.tools = importlib.import_module("utils.tools")
                self.modules = {m: importlib.import_module(m) for m in args.methods}
        finally:
            os.chdir(cwd)
        constants = {
            "DEVICE": "cpu",
            "PIN_MEMORY": False,
            "NUM_WORKERS": args.original_workers,
            "EPOCHS_PER_TASK": args.epochs,
            "BATCH_SIZE": args.batch_size,
            "DATA_ROOT": str(data_dir),
            "GEM_MEMORY_STRENGTH": args.gem_memories,
        }
        if args.deterministic:  # every task image in EWC's Fisher sample, as on our side
            constants["FISHER_N"] = args.train_per_task
        if args.image_size != 32:
            constants.update(self._transforms(args.image_size))
        for module in (self.tools, *self.modules.values()):
            for name, value in constants.items():
                if hasattr(module, name):
                    setattr(module, name, value)
        if "gem" in self.modules:  # GEM's memory images go through its own alias
            self.modules["gem"].mnist_store_transform = constants.get(
                "mnist_test_transform", self.tools.mnist_test_transform
            )
        ours = data.task_orders(data.spec(DATASET).num_tasks)
        theirs = [entry["order"] for entry in self.tools.TASK_ORDERS]
        if theirs != ours:
            fail(f"the original's task orders {theirs} differ from ours {ours}")

    def _transforms(self, size: int) -> dict:
        """The original's Fashion-MNIST pipelines at another size (crop padding size/8)."""
        from torchvision import transforms as T

        mean, std = (0.1307,) * 3, (0.3081,) * 3
        head = [T.Resize(size), T.Grayscale(num_output_channels=3)]
        tail = [T.ToTensor(), T.Normalize(mean, std)]
        return {
            "mnist_train_transform": T.Compose(
                [*head, T.RandomCrop(size, padding=size // 8), *tail]
            ),
            "mnist_test_transform": T.Compose([*head, *tail]),
        }

    def datasets(self, method: str, indices, fixed=None) -> list[list]:
        """The method's datasets as its own ``load_datasets()`` lists them ([train
        (augmented), (non-augmented train,) test]), each a list over tasks: its datasets
        cut to our subset, or with ``fixed`` ([(train, test)] per task) those instead."""
        with contextlib.redirect_stdout(self.log):
            loaded = self.modules[method].load_datasets()
        test = loaded[-1]
        if fixed is not None:
            return [[task[ds is test] for task in fixed] for ds in loaded]
        return [[Subset(ds, idx[ds is test].tolist()) for idx in indices] for ds in loaded]
