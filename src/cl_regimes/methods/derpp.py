"""DER++ (Buzzega et al. 2020): dark experience replay of logits and labels."""

from __future__ import annotations

from typing import Annotated

from cl_regimes.config import NON_NEGATIVE
from cl_regimes.methods.memory import Replay
from cl_regimes.models import upcast


class DERpp(Replay):
    """The memory keeps, with each image, the logits the network gave it when it was
    offered; the penalty is ``alpha`` times the mean squared error between the network's
    logits on one replay batch and those stored (every output), plus ``beta`` times the
    cross-entropy on another replay batch (Mammoth's ``derpp``). Named apart from DER,
    the expandable representation the original study also ran."""

    name = "derpp"
    stop_on_total_loss = True
    stores_logits = True

    def __init__(
        self,
        runs,
        memory_size,
        replay_batch_size,
        alpha: Annotated[float, NON_NEGATIVE],
        beta: Annotated[float, NON_NEGATIVE],
    ):
        super().__init__(runs, memory_size, replay_batch_size)
        self.alpha, self.beta = alpha, beta

    def penalty(self, x, logits, y):
        if not self.memory.held():
            return None
        images, _, stored = self.replayed()
        replayed = upcast(self.runs.model(self.runs.inputs(images)))
        mse = (replayed - stored).pow(2).mean((0, 2))
        return self.alpha * mse + self.beta * self.replay_loss()
