"""The continual loop of one run: train each task of the order in turn, then test on every task.

``run(config)`` returns the run record (results.py saves it): the full T x T
accuracy matrix R (unseen tasks included, so forward transfer can be read),
per-task training and update statistics, metrics, and the environment.
"""

from __future__ import annotations

import math
import platform
import random
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from cl_regimes import __version__, data, methods, metrics, regimes
from cl_regimes.config import ConfigError, RunConfig, check_choice
from cl_regimes.models import ResNet18, masked_cross_entropy, running_stats_frozen, task_logits

SCHEMA_VERSION = 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"``: CUDA when available, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA device")
    return dev


class Trainer:
    """Holds one run's model, tasks and method; methods reach the run through it."""

    def __init__(self, config: RunConfig, device: str | torch.device = "auto",
                 data_dir=None, progress: bool = False):
        check_choice("precision", config.precision, ("auto", "fp32", "bf16"))
        self.config = config
        self.device = resolve_device(device)
        self.bf16 = config.precision == "bf16" or (
            config.precision == "auto" and self.device.type == "cuda")
        self.progress = progress
        seed_everything(config.seed)
        self.generator = torch.Generator(self.device).manual_seed(config.seed)
        ds = data.load(config.dataset, data_dir, config.image_size)
        self.flip = ds.flip
        self.classes_per_task = ds.classes_per_task
        self.order = data.task_orders(ds.num_tasks)[config.order]
        self.tasks = data.make_tasks(ds, self.order, config.train_per_task,
                                     config.test_per_task, self.device)
        self.inputs = data.Normalizer(ds, self.device)
        self.model = ResNet18(ds.num_classes, config.width).to(
            self.device, memory_format=self.inputs.memory_format)
        self.params = regimes.apply(self.model, config.regime)
        self.head_params = list(self.model.fc.parameters())
        self.method = methods.make(config.method, self, config.method_params)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def _grad(self, loss, params, retain=False) -> torch.Tensor:
        return methods.flatten(torch.autograd.grad(loss, params, retain_graph=retain))

    def loss_gradient(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Flat gradient of the task loss on non-augmented uint8 images ``x``, over the
        trainable parameters, in the current mode, leaving BatchNorm statistics untouched."""
        with running_stats_frozen(self.model), self.autocast():
            loss = masked_cross_entropy(self.model(self.inputs(x)), y, self.classes_per_task)
        return self._grad(loss, self.params)

    def fit(self, x, y, params, epochs: int, method=None, bar=None) -> dict:
        """Train ``params`` on (x, y) for up to ``epochs`` (Adam, cosine schedule, early
        stopping on the training loss); ``method``'s hooks apply when given."""
        cfg = self.config
        opt = torch.optim.Adam(params, lr=cfg.lr, foreach=True)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=cfg.lr_min)
        update_stats = metrics.UpdateStats(self.device) if method and cfg.track_updates else None
        losses, best, waited = [], math.inf, 0
        for _ in range(epochs):
            regimes.set_train_mode(self.model, cfg.bn_stats, params)
            total = torch.zeros((), device=self.device)
            perm = torch.randperm(len(y), device=self.device, generator=self.generator)
            for idx in perm.split(cfg.batch_size):
                batch = self.inputs(data.augment(x[idx], self.flip, self.generator))
                total += self._step(batch, y[idx], params, opt, method, update_stats) * len(idx)
            schedule.step()
            losses.append(total.item() / len(y))
            if bar is not None:
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
                bar.update()
            if losses[-1] < best - cfg.min_delta:
                best, waited = losses[-1], 0
            else:
                waited += 1
                if waited >= cfg.patience:
                    break
        out = {"train_loss": losses, "epochs_run": len(losses)}
        return out | (update_stats.summary() if update_stats else {})

    def _step(self, x, y, params, opt, method, update_stats) -> torch.Tensor:
        with self.autocast():
            logits = self.model(x)
            loss = masked_cross_entropy(logits, y, self.classes_per_task)
            penalty = method.penalty(x, logits, y) if method else None
        if penalty is None:
            task_grad = update = self._grad(loss, params)
        elif update_stats is not None or method.needs_task_gradient:
            task_grad = self._grad(loss, params, retain=True)
            update = task_grad + self._grad(penalty, params)
        else:
            task_grad, update = None, self._grad(loss + penalty, params)
        if method:
            update = method.after_backward(update, task_grad)
        if update_stats is not None:
            update_stats.add(task_grad, update)
        for p, g in zip(params, update.split([p.numel() for p in params])):
            p.grad = g.view_as(p)
        opt.step()
        if method:
            method.after_step(task_grad)
        return loss.detach()

    @torch.no_grad()
    def evaluate(self) -> list[float]:
        """Test accuracy on every task of the order (eval mode, no augmentation)."""
        self.model.eval()
        cpt, size = self.classes_per_task, self.config.eval_batch_size
        accuracies = []
        for task in self.tasks:
            correct = torch.zeros((), device=self.device)
            for xb, yb in zip(task.test.x.split(size), task.test.y.split(size)):
                with self.autocast():
                    logits = self.model(self.inputs(xb))
                correct += (task_logits(logits, yb, cpt).argmax(1) == yb % cpt).sum()
            accuracies.append(correct / len(task.test.y))
        return torch.stack(accuracies).tolist()

    def run(self) -> dict:
        """Train every task of the order; return R and per-task statistics."""
        cfg = self.config
        frozen = regimes.frozen_state(self.model, cfg.bn_stats)
        R, per_task = [], []
        desc = f"{cfg.dataset} {cfg.regime} {cfg.method} order {cfg.order}"
        with tqdm(total=len(self.tasks) * cfg.epochs, desc=desc, disable=not self.progress,
                  leave=False) as bar:
            for task in self.tasks:
                start = methods.flatten(self.params).detach().clone()
                self.method.before_task(task)
                stats = self.fit(*self.method.train_data(task), self.params, cfg.epochs,
                                 self.method, bar)
                self.method.after_task(task)
                R.append(self.evaluate())
                drift = (methods.flatten(self.params).detach() - start).norm().item()
                per_task.append({"task": task.block, "classes": task.classes, **stats,
                                 "drift": drift})
        moved = regimes.moved(self.model, frozen)
        if moved:
            raise RuntimeError(f"frozen coordinates moved under {cfg.regime}: {moved[:5]}")
        return {"order": self.order, "R": R, "tasks": per_task}


def environment(device: torch.device, bf16: bool) -> dict:
    return {"cl_regimes": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "numpy": np.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "precision": "bf16" if bf16 else "fp32", "threads": torch.get_num_threads()}


def run(config: RunConfig, device="auto", data_dir=None, progress: bool = False,
        profile: str | None = None) -> dict:
    """One seeded continual-learning run -> its record (a JSON-ready dict)."""
    started = time.perf_counter()
    trainer = Trainer(config, device, data_dir, progress)
    outcome = trainer.run()
    return {"schema": SCHEMA_VERSION, "profile": profile, "config": config.to_dict(),
            **outcome, "metrics": metrics.summary(outcome["R"]),
            "environment": environment(trainer.device, trainer.bf16),
            "wall_time_s": time.perf_counter() - started,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
