"""What the trainer keeps step by step for each of its runs: the update statistics
(``UpdateStats``) and, once early stopping stops a run, its parameters and BatchNorm
statistics held where they stopped (``Hold``)."""

from __future__ import annotations

import math

import torch

from cl_regimes.models import row_dot


class UpdateStats:
    """Per-step update statistics of each run, summed on the device, averaged per task.

    The book's definitions: g is the task-loss gradient and r what the method adds
    to it (penalty gradient, GEM's correction, SI's clipping), over trainable
    parameters: g2 = E||g||^2, r2 = E||r||^2, u = E||g + r||^2 = g2 + r2 + 2 E<g, r>,
    cos = E<g, r> / sqrt(g2 r2) (so that u = g2 + r2 + 2 cos sqrt(g2 r2) holds
    exactly), cos_step the mean of per-step cosines.
    The original study's definitions (``orig_*``), with its "retention" vector q
    (``Method.retention``): norm_g = E||g||, norm_r = E||q||, cos = E cos(g, q)
    (0 where either is 0), u = E(||g||^2 + ||q||^2 + 2 cos ||g|| ||q||).
    ``u_head``: u over the ``head`` columns alone (the head's parameters, which every
    regime trains: u on a footing common to the regimes; by default every column).
    """

    KEYS = (
        "g2",
        "r2",
        "dot",
        "cos_step",
        "orig_norm_g",
        "orig_norm_r",
        "orig_cos",
        "orig_u",
        "u_head",
        "steps",
    )

    def __init__(self, runs: int, device: torch.device, head: torch.Tensor | None = None):
        self.sums = torch.zeros(runs, len(self.KEYS), dtype=torch.float64, device=device)
        self.r: torch.Tensor | None = None  # update - g, in a buffer reused every step
        self.head = head

    def add(
        self,
        g: torch.Tensor,
        update: torch.Tensor,
        retention: torch.Tensor | None,
        active: torch.Tensor,
    ) -> None:
        if self.r is None:
            self.r = torch.empty_like(g)
        r = torch.sub(update, g, out=self.r)
        g2, r2, dot = row_dot(g, g), row_dot(r, r), row_dot(g, r)
        norm_g = g2.sqrt()
        if retention is None:
            norm_q = cos_q = torch.zeros_like(g2)
        else:
            norm_q = row_dot(retention, retention).sqrt()
            both = (norm_g > 0) & (norm_q > 0)
            cos_q = torch.where(
                both, row_dot(g, retention) / (norm_g * norm_q).clamp_min(1e-30), 0.0
            ).clamp(-1, 1)
        values = torch.stack(
            [
                g2,
                r2,
                dot,
                dot / (g2 * r2).sqrt().clamp_min(1e-30),
                norm_g,
                norm_q,
                cos_q,
                g2 + norm_q**2 + 2 * cos_q * norm_g * norm_q,
                row_dot(update, update)
                if self.head is None
                else row_dot(*[update[:, self.head]] * 2),
                torch.ones_like(g2),
            ],
            1,
        )
        self.sums += values.double() * active[:, None]

    def summary(self) -> list[dict[str, float]]:
        out = []
        for row in self.sums.tolist():
            s = dict(zip(self.KEYS, row))
            steps = int(s.pop("steps"))
            m = {k: v / max(steps, 1) for k, v in s.items()}
            cos = m["dot"] / math.sqrt(m["g2"] * m["r2"]) if m["g2"] * m["r2"] > 0 else 0.0
            out.append(
                {
                    "g2": m["g2"],
                    "r2": m["r2"],
                    "cos": cos,
                    "u": m["g2"] + m["r2"] + 2 * m["dot"],
                    "cos_step": m["cos_step"],
                    **{k: m[k] for k in self.KEYS[4:9]},
                    "steps": steps,
                }
            )
        return out


class Hold:
    """Keeps the rows of stopped runs (parameters, BatchNorm statistics) where they stopped."""

    def __init__(self, tensors: list[torch.Tensor], runs: int):
        self.tensors, self.runs = tensors, runs
        self.saved: list[torch.Tensor] | None = None
        self.stopped = torch.zeros(runs, dtype=torch.bool, device=tensors[0].device)

    def stop(self, k: int) -> None:
        if self.saved is None:
            self.saved = [t.detach().clone() for t in self.tensors]
        for t, s in zip(self.tensors, self.saved):
            s.unflatten(0, (self.runs, -1))[k] = t.detach().unflatten(0, (self.runs, -1))[k]
        self.stopped[k] = True

    @torch.no_grad()
    def restore(self) -> None:
        if self.saved is not None:
            for t, s in zip(self.tensors, self.saved):
                rows = t.unflatten(0, (self.runs, -1))
                rows[self.stopped] = s.unflatten(0, (self.runs, -1))[self.stopped]
