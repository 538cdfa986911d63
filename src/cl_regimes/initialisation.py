"""How a run's network starts: random, seeded per run, or from ImageNet weights (``init``).

Every script of the original study has an init mode: ``random`` (its default) or
``pretrained``, torchvision's ImageNet ResNet-18 (``resnet18(weights=IMAGENET1K_V1)``)
whose stem convolution and head it then replaces by fresh ones (3x3 stride 1;
``Linear(512, classes)``). Under ``init=pretrained`` every layer here but ``conv1``
and ``fc`` holds those weights, BatchNorm running statistics included, and ``conv1``
and ``fc`` keep their random initialisation, as there. The weights are the file
torchvision downloads, ``resnet18-f37072fd.pth``, looked for at ``$CL_REGIMES_WEIGHTS``
(``--weights``) or else in torchvision's cache folder; nothing is downloaded here.
"""

from __future__ import annotations

import hashlib
import os
import random
from functools import cache
from pathlib import Path

import numpy as np
import torch

from cl_regimes.config import ConfigError, RunConfig
from cl_regimes.models import ResNet18

WEIGHTS_ENV = "CL_REGIMES_WEIGHTS"
WEIGHTS_FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1
WEIGHTS_WIDTH = 64
REPLACED = ("conv1.", "fc.")  # layers the original replaced after loading the weights


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global streams (a network's initialisation)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def weights_path() -> Path:
    """Where the ImageNet weights are looked for: ``$CL_REGIMES_WEIGHTS``, else
    torchvision's cache (``$TORCH_HOME/hub/checkpoints``, by default under ~/.cache/torch)."""
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV]).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILE


def check(config: RunConfig) -> None:
    """Raise ConfigError (one line) unless a run of ``config`` can be initialised: under
    ``init=pretrained``, width 64 and a readable ResNet-18 state dict where it is looked for."""
    if config.init != "pretrained":
        return
    if config.width != WEIGHTS_WIDTH:
        raise ConfigError(
            f"setting init='pretrained' needs width={WEIGHTS_WIDTH} (the ImageNet "
            f"ResNet-18's), got width={config.width}"
        )
    path = weights_path()
    if not path.is_file():
        raise ConfigError(
            f"init=pretrained: no ImageNet ResNet-18 weights at {path}; put torchvision's "
            f"{WEIGHTS_FILE} there (torchvision.models.resnet18(weights='IMAGENET1K_V1') "
            f"downloads it there), or give its path with --weights (${WEIGHTS_ENV})"
        )
    weights(str(path), path.stat().st_mtime_ns)


@cache
def weights(path: str, mtime_ns: int = 0) -> dict[str, torch.Tensor]:
    """The state dict at ``path`` (read once per file version), checked against this
    library's ResNet-18 of width 64 on every parameter and buffer the original kept."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a file of another kind is one line, whatever it raises
        raise ConfigError(f"init=pretrained: cannot read {path}: {type(err).__name__}") from None
    if not isinstance(state, dict):
        raise ConfigError(f"init=pretrained: {path} holds no state dict")
    for name, t in ResNet18(10, WEIGHTS_WIDTH).state_dict().items():
        if name.startswith(REPLACED):
            continue
        got = state.get(name)
        if not isinstance(got, torch.Tensor) or got.shape != t.shape:
            what = "missing" if got is None else f"of shape {tuple(getattr(got, 'shape', ()))}"
            raise ConfigError(
                f"init=pretrained: {path} is not a ResNet-18 state dict: {name} is {what}, "
                f"expected {tuple(t.shape)}"
            )
    return state


def digest() -> str:
    """sha256 of the weights file in use (for the records of pretrained runs)."""
    return hashlib.sha256(weights_path().read_bytes()).hexdigest()


def load_pretrained(network: ResNet18) -> None:
    """Copy the ImageNet weights into a single-run network, all but ``conv1`` and ``fc``."""
    path = weights_path()
    state = weights(str(path), path.stat().st_mtime_ns)
    with torch.no_grad():
        for name, t in network.state_dict().items():
            if not name.startswith(REPLACED):
                t.copy_(state[name])


def networks(
    configs: list[RunConfig], num_classes: int, salt: str = "", initial: list[dict] | None = None
) -> list[ResNet18]:
    """Run k's single-run network: built with the global random state seeded from its
    stream seed (``salt=""``: the run's own network) or from a seed derived from it and
    ``salt`` (a further draw, left outside the global state), then the ImageNet weights
    under ``init=pretrained``, then ``initial[k]`` when given."""
    out = []
    for k, c in enumerate(configs):
        if salt:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(c.seed_for(salt))
                net = ResNet18(num_classes, c.width)
        else:
            seed_everything(c.stream_seed)
            net = ResNet18(num_classes, c.width)
        if c.init == "pretrained":
            check(c)
            load_pretrained(net)
        if initial is not None:
            net.load_state_dict(initial[k])
        out.append(net)
    return out


def grouped(
    configs: list[RunConfig],
    num_classes: int,
    device: torch.device,
    memory_format: torch.memory_format,
    salt: str = "",
    initial: list[dict] | None = None,
) -> ResNet18:
    """``networks`` side by side as one grouped network on ``device`` (``initial`` applies
    to the runs' own networks only, ``salt=""``)."""
    nets = networks(configs, num_classes, salt, None if salt else initial)
    model = nets[0] if len(nets) == 1 else ResNet18.stack(nets)
    return model.to(device, memory_format=memory_format)
