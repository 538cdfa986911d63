"""Online EWC (Schwarz et al. 2018) over the regime's trainable parameters."""

from __future__ import annotations

from typing import Annotated

import torch
from torch.func import functional_call, grad, vmap

from cl_regimes.config import AT_LEAST_ONE, NON_NEGATIVE, Range
from cl_regimes.methods.quadratic import QuadraticPenalty
from cl_regimes.models import per_run, upcast

CHUNK_FLOATS = 2**27  # per-sample gradient floats held at once on a CPU (512 MB)


def chunk_floats(device: torch.device) -> int:
    """Per-sample gradient floats to hold at once: CHUNK_FLOATS, or 1/16 of free GPU memory."""
    if device.type == "cuda":
        return max(CHUNK_FLOATS, torch.cuda.mem_get_info(device)[0] // 4 // 16)
    return CHUNK_FLOATS


def fisher_diagonal(
    model, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, score
) -> torch.Tensor:
    """Diagonal Fisher of each run over ``params``: E_x sum_c p(c|x) (d log p(c|x) / d theta)^2,
    as [K, N] (x: network inputs [n, K * 3, S, S], y: labels [n, K]).

    p is the softmax over the C outputs that score each sample (``Runs.score``: its
    task's classes, task-incrementally), model in eval mode. With J the Jacobian of
    those logits z, the per-sample Fisher is
    J^T (diag(p) - p p^T) J; writing that C x C matrix as sum_k l_k v_k v_k^T
    (the all-ones direction has l = 0), its diagonal is sum_k l_k (d v_k.z / d theta)^2:
    C - 1 per-sample gradients (one for two classes) instead of C, each from
    torch.func (vmap of grad) over a chunk of samples. Runs never mix in the grouped
    network, so one gradient of the sum over runs holds every run's in its rows.
    """
    was_training = model.training
    model.eval()
    runs = y.shape[1]
    rest = {
        n: t.detach()
        for n, t in {**dict(model.named_parameters()), **dict(model.named_buffers())}.items()
        if n not in params
    }
    theta = {n: p.detach() for n, p in params.items()}

    def logits_of(theta, xs, ys):
        return score(upcast(functional_call(model, {**rest, **theta}, (xs,))), ys)[0]

    def projected(theta, xi, yi, v):  # sum over runs of v . z for one sample
        return (logits_of(theta, xi[None], yi[None])[0] * v).sum()

    per_sample = vmap(grad(projected), in_dims=(None, 0, 0, 0))
    numel = sum(p.numel() for p in theta.values())
    chunk = max(1, chunk_floats(x.device) // numel)
    fisher = {n: torch.zeros_like(per_run(t, runs)) for n, t in theta.items()}
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        with torch.no_grad():
            p = torch.softmax(logits_of(theta, xs, ys), -1)  # [b, K, C]
            covariance = torch.diag_embed(p) - p[..., :, None] * p[..., None, :]
            weights, directions = torch.linalg.eigh(covariance)
        for k in range(1, p.shape[-1]):  # k = 0: the all-ones direction, weight 0
            for n, g in per_sample(theta, xs, ys, directions[..., k]).items():
                fisher[n] += torch.einsum(
                    "bk,bkn->kn", weights[..., k], g.reshape(len(xs), runs, -1).pow(2)
                )
    model.train(was_training)
    return torch.cat(list(fisher.values()), 1) / len(x)


class EWC(QuadraticPenalty):
    """Penalty lam/2 * sum gamma F (theta - theta*)^2, with F <- gamma * F + F_task after each
    task (the decay applied once more in the penalty, as in the original's online EWC)."""

    name = "ewc"
    stop_on_total_loss = True

    def __init__(
        self,
        runs,
        lam: Annotated[float, NON_NEGATIVE],
        gamma: Annotated[float, Range(0, 1, low_open=True)],
        fisher_samples: Annotated[int, AT_LEAST_ONE],
    ):
        super().__init__(runs)
        self.scale, self.gamma, self.fisher_samples = lam / 2, gamma, fisher_samples
        self.fisher: torch.Tensor | None = None

    def retention(self, task_grad, penalty_grad, update):
        # read after both backward passes: the accumulated gradient g + penalty gradient,
        # which is the update (EWC leaves the direction as it is)
        return None if penalty_grad is None else update

    def after_task(self, tasks):
        r = self.runs
        x, y = r.sample(tasks, self.fisher_samples)
        names = {id(p): n for n, p in r.model.named_parameters()}
        new = fisher_diagonal(r.model, {names[id(p)]: p for p in r.params}, r.inputs(x), y, r.score)
        self.fisher = new if self.fisher is None else self.gamma * self.fisher + new
        self.importance = self.gamma * self.fisher
        self.anchor = r.flat(r.params).detach().clone()
