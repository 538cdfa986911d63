"""What a rerun needs besides a run's configuration: the facts of the machine and code
that touch its numbers, a digest of the images it trained and was tested on, and the
source digest of a method from outside the library.

``python -m cl_regimes verify`` compares these facts, as a record holds them, with
the rerun's (``verify.py``).
"""

from __future__ import annotations

import hashlib
import inspect
import os
import platform
import socket
from functools import cache
from importlib import metadata

import torch

from cl_regimes import __version__, data, methods, results

# the packages whose versions can change a run's numbers (sklearn: the digits split)
PACKAGES = ("torch", "torchvision", "numpy", "pillow", "scikit-learn")
# the facts that, when they differ, explain a rerun that differs
FACTS = (
    "packages",
    "cpu",
    "cpu_capability",
    "onednn_max_isa",
    "device",
    "threads",
    "precision",
    "images",
    "init_weights",
)
# The instruction set of torch's CPU kernels (ATen's, and oneDNN's convolutions) sets
# their roundings: the same code gives other numbers on an AVX-512 CPU than on an AVX2
# one. These variables, set before torch loads, make a CPU use a lower one (``verify``).
ISA_VARIABLES = {  # ATen's capability -> the environment that selects it
    "AVX512": {"ATEN_CPU_CAPABILITY": "avx512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "AVX2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "DEFAULT": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


@cache
def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@cache
def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what platform says."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def images_digest(blocks: list[data.Block]) -> str:
    """sha256 of every task's training and test images and labels, as the run used them
    (after resizing, subsampling and the scenario's transform), by task number."""
    digest = hashlib.sha256()
    for block in blocks:
        for t in (block.train.x, block.train.y, block.test.x, block.test.y):
            digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def initial_weights(config) -> dict:
    """``{"init_weights": sha256}`` of the ImageNet weights a pretrained run starts from
    (``init=pretrained``); nothing for a random initialisation."""
    if config.init != "pretrained":
        return {}
    from cl_regimes import initialisation

    return {"init_weights": initialisation.digest()}


def method_source(name: str) -> dict | None:
    """Where an outside method's class comes from (``module:Class``) and the sha256 of its
    module's source file; None for the library's own methods, whose code is the commit."""
    if methods.builtin(name):
        return None
    cls = methods.get(name)
    try:
        source = inspect.getsourcefile(cls)
        with open(source, "rb") as file:
            digest = hashlib.sha256(file.read()).hexdigest()
    except (OSError, TypeError):  # defined in a notebook or an interpreter: no file
        source, digest = None, None
    return {"path": f"{cls.__module__}:{cls.__qualname__}", "sha256": digest}


def environment(device: torch.device, precision: str, group_size: int) -> dict:
    """The machine and code facts of a run trained now on ``device``."""
    return {
        "cl_regimes": __version__,
        "commit": results.git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "packages": package_versions(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_max_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "precision": precision,
        "threads": torch.get_num_threads(),
        "group_size": group_size,
        "host": socket.gethostname(),
    }
