"""Fine-tuning regimes as named trainable subspaces of the ResNet-18: the one table of them.

A regime fixes which coordinates S of the parameter vector move; every SGD
step is then the projected step theta <- theta - eta * P_S grad J. How a
regime is applied to a network (freezing, BatchNorm modes, the check that
frozen coordinates did not move) lives with the network in ``models.py``;
this module is torch-free so that tables and analyses can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cl_regimes.config import check_choice

# each regime's chapter text: what trains and what the theory predicts (MyST Markdown)
CHAPTER_TEXT = Path(__file__).resolve().parents[2] / "book" / "regimes"
BLOCKS = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc")


@dataclass(frozen=True)
class Regime:
    name: str
    blocks: tuple[str, ...]  # top-level modules that train entirely
    paper_name: str | None  # how the original study calls it
    description: str
    depth: int | None  # position in the nested family head < ... < full (None: not nested)
    bn_affine: bool = False  # also every BatchNorm's weight and bias

    def is_trainable(self, name: str, is_batchnorm: bool) -> bool:
        """Whether parameter ``name`` (of a BatchNorm layer or not) lies in the subspace."""
        return name.split(".")[0] in self.blocks or (self.bn_affine and is_batchnorm)


REGIMES = {
    r.name: r
    for r in (
        Regime(
            "head",
            ("fc",),
            "head only",
            "the linear head only: a linear probe on random features",
            0,
        ),
        Regime(
            "bn_affine",
            ("fc",),
            "BN affine only (without the head; not analysed)",
            "every BatchNorm's scale and shift, plus the head",
            None,
            bn_affine=True,
        ),
        Regime("from_layer4", ("layer4", "fc"), "last block", "layer4 and the head", 1),
        Regime(
            "from_layer3",
            ("layer3", "layer4", "fc"),
            "last 2 blocks",
            "layer3, layer4 and the head",
            2,
        ),
        Regime(
            "from_layer2",
            ("layer2", "layer3", "layer4", "fc"),
            "last 3 blocks",
            "layer2 to layer4 and the head",
            3,
        ),
        Regime(
            "from_layer1",
            ("layer1", "layer2", "layer3", "layer4", "fc"),
            "last 6 blocks",
            "layer1 to layer4 and the head (the stem stays frozen)",
            4,
        ),
        Regime("full", BLOCKS, "full finetune", "every parameter", 5),
    )
}
NESTED = tuple(name for name, r in REGIMES.items() if r.depth is not None)


def get(name: str) -> Regime:
    check_choice("regime", name, tuple(REGIMES))
    return REGIMES[name]


def chapter_text(name: str) -> tuple[str, str]:
    """The regime chapter's title (its first line, a ``#`` heading) and the rest of its text,
    from ``book/regimes/<name>.md``."""
    title, _, text = (CHAPTER_TEXT / f"{get(name).name}.md").read_text().partition("\n")
    return title, text.strip()
