"""Online EWC (Schwarz et al. 2018) over the regime's trainable parameters."""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from cl_regimes.methods.base import Method, flatten

CHUNK_FLOATS = 2**27  # per-sample gradient floats held at once on a CPU (512 MB)


def chunk_floats(device: torch.device) -> int:
    """Per-sample gradient floats to hold at once: CHUNK_FLOATS, or 1/16 of free GPU memory."""
    if device.type == "cuda":
        return max(CHUNK_FLOATS, torch.cuda.mem_get_info(device)[0] // 4 // 16)
    return CHUNK_FLOATS


def fisher_diagonal(model, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    classes_per_task: int) -> torch.Tensor:
    """Diagonal Fisher over ``params``, flat: E_x sum_c p(c|x) (d log p(c|x) / d theta)^2.

    p is the softmax over each sample's task classes (model in eval mode). With J
    the Jacobian of the task's logits z, the per-sample Fisher is
    J^T (diag(p) - p p^T) J; writing that C x C matrix as sum_k l_k v_k v_k^T
    (the all-ones direction has l = 0), its diagonal is sum_k l_k (d v_k.z / d theta)^2:
    C - 1 per-sample gradients (one for two classes) instead of C, each from
    torch.func (vmap of grad) over a chunk of samples.
    """
    was_training = model.training
    model.eval()
    rest = {n: t.detach() for n, t in {**dict(model.named_parameters()),
                                       **dict(model.named_buffers())}.items() if n not in params}
    theta = {n: p.detach() for n, p in params.items()}

    def task_logits(theta, xs, ys):
        logits = functional_call(model, {**rest, **theta}, (xs,)).float()
        blocks = logits.view(len(xs), -1, classes_per_task)
        return blocks.gather(1, (ys // classes_per_task).view(-1, 1, 1).expand(
            -1, 1, classes_per_task)).squeeze(1)

    def projected(theta, xi, yi, v):  # v . z for one sample
        return (task_logits(theta, xi[None], yi[None])[0] * v).sum()

    per_sample = vmap(grad(projected), in_dims=(None, 0, 0, 0))
    numel = sum(p.numel() for p in theta.values())
    chunk = max(1, chunk_floats(x.device) // numel)
    fisher = {n: torch.zeros_like(t) for n, t in theta.items()}
    for xs, ys in zip(x.split(chunk), y.split(chunk)):
        with torch.no_grad():
            p = torch.softmax(task_logits(theta, xs, ys), 1)
            covariance = torch.diag_embed(p) - p[:, :, None] * p[:, None]
            weights, directions = torch.linalg.eigh(covariance)
        for k in range(1, classes_per_task):  # k = 0: the all-ones direction, weight 0
            for n, g in per_sample(theta, xs, ys, directions[:, :, k]).items():
                fisher[n] += torch.einsum("b,b...->...", weights[:, k], g.pow(2))
    model.train(was_training)
    return flatten(fisher.values()) / len(x)


class EWC(Method):
    """Penalty lam/2 * sum F (theta - theta*)^2, with F <- gamma * F + F_task after each task."""

    def __init__(self, trainer, lam: float, gamma: float, fisher_samples: int):
        super().__init__(trainer)
        self.lam, self.gamma, self.fisher_samples = lam, gamma, fisher_samples
        self.fisher: torch.Tensor | None = None
        self.anchor: torch.Tensor | None = None

    def penalty(self, x, logits, y):
        if self.fisher is None:
            return None
        theta = flatten(self.trainer.params)
        return self.lam / 2 * (self.fisher * (theta - self.anchor).pow(2)).sum()

    def after_task(self, task):
        t = self.trainer
        x, y = self.sample(task, self.fisher_samples)
        names = {id(p): n for n, p in t.model.named_parameters()}
        params = {names[id(p)]: p for p in t.params}
        new = fisher_diagonal(t.model, params, t.inputs(x), y, t.classes_per_task)
        self.fisher = new if self.fisher is None else self.gamma * self.fisher + new
        self.anchor = flatten(t.params).detach().clone()
