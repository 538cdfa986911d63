"""What the network sees of a batch: each run's random crops and flips, drawn from its
own generator and applied in one gather on the device, and the normalised input of K
grouped runs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cl_regimes.data import DatasetSpec


def draw_augmentation(
    n: int, size: int, flip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, ...]:
    """One run's random crop offsets (zero padding of 1/8 of the side: 4 pixels at 32x32)
    and horizontal flips for a batch of ``n`` images, drawn from its generator."""
    pad = size // 8
    dev = generator.device
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), device=dev, generator=generator)
    mirror = (
        torch.rand(n, device=dev, generator=generator) < 0.5
        if flip
        else torch.zeros(n, dtype=torch.bool, device=dev)
    )
    return dy, dx, mirror


def augment(
    x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, mirror: torch.Tensor
) -> torch.Tensor:
    """Apply crops and flips to a uint8 batch [N, C, S, S] in one gather, on its device."""
    n, c, h, w = x.shape
    pad = w // 8
    padded = F.pad(x, (pad, pad, pad, pad))
    dev = x.device
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = dx[:, None] + torch.arange(w, device=dev)
    cols = torch.where(mirror[:, None], cols.flip(1), cols)[:, None, None, :]
    return padded[
        torch.arange(n, device=dev)[:, None, None, None],
        torch.arange(c, device=dev)[None, :, None, None],
        rows,
        cols,
    ]


class Normalizer:
    """uint8 images of K runs [N, K, C, S, S] -> normalised float network inputs
    [N, K * 3, S, S] (grey replicated to 3 channels; run k in channels 3k..3k+2)."""

    def __init__(self, ds: DatasetSpec, device: torch.device):
        self.dtype = torch.get_default_dtype()  # float32 (float64 in equivalence tests)
        self.mean = torch.tensor(ds.mean, device=device).view(1, 1, -1, 1, 1)
        self.std = torch.tensor(ds.std, device=device).view(1, 1, -1, 1, 1)
        # channels_last is the faster convolution layout on CUDA; on a CPU oneDNN's
        # channels_last backward is slower and, with several threads, corrupts the heap
        self.memory_format = (
            torch.channels_last if device.type == "cuda" else torch.contiguous_format
        )

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = (x.to(self.dtype).div_(255) - self.mean) / self.std
        n, k, _, h, w = out.shape
        out = out.expand(-1, -1, 3, -1, -1).reshape(n, k * 3, h, w)
        return out.contiguous(memory_format=self.memory_format)
