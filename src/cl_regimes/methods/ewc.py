"""Online EWC (Schwarz et al. 2018) over the regime's trainable parameters."""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from cl_regimes.methods.base import Method, flatten

CHUNK_FLOATS = 2**27  # per-sample gradients held at once (512 MB of float32)


def fisher_diagonal(model, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                    classes_per_task: int) -> torch.Tensor:
    """Diagonal Fisher over ``params``, flat: E_x sum_c p(c|x) (d log p(c|x) / d theta)^2.

    p is the softmax over each sample's task classes, the model in eval mode;
    per-sample gradients come from torch.func (vmap of grad), in chunks.
    """
    was_training = model.training
    model.eval()
    rest = {n: t.detach() for n, t in {**dict(model.named_parameters()),
                                       **dict(model.named_buffers())}.items() if n not in params}

    def log_prob(theta, xi, yi, c):
        logits = functional_call(model, {**rest, **theta}, (xi.unsqueeze(0),))
        block = logits.view(-1, classes_per_task).index_select(0, (yi // classes_per_task)[None])
        return torch.log_softmax(block[0].float(), 0)[c]

    per_class = vmap(grad(log_prob), in_dims=(None, 0, 0, None))
    theta = {n: p.detach() for n, p in params.items()}
    numel = sum(p.numel() for p in theta.values())
    fisher = torch.zeros(numel, device=x.device)
    for xs, ys in zip(x.split(max(1, CHUNK_FLOATS // numel)), y.split(max(1, CHUNK_FLOATS // numel))):
        with torch.no_grad():
            logits = functional_call(model, {**rest, **theta}, (xs,))
            probs = torch.softmax(logits.view(len(xs), -1, classes_per_task)[
                torch.arange(len(xs)), ys // classes_per_task].float(), 1)
        for c in range(classes_per_task):
            g = flatten_batched(per_class(theta, xs, ys, c))
            fisher += (probs[:, c, None] * g.pow(2)).sum(0)
    model.train(was_training)
    return fisher / len(x)


def flatten_batched(grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample gradients {name: [B, *shape]} -> [B, numel]."""
    return torch.cat([g.flatten(1) for g in grads.values()], 1)


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
