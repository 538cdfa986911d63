"""The continual loop: the runs of one cell trained together as one grouped network.

Runs that share dataset, regime, method and settings (different task orders
or seeds) have computations of the same shape, so ``Trainer`` trains K of them
as one network of K grouped ResNet-18s: kernels K times larger for the same
number of launches. Each run keeps its own semantics: its task order, data
stream and augmentation (drawn from its own generator), BatchNorm statistics,
optimiser state (Adam is elementwise), early stopping (a stopped run's
parameters and statistics are held where it stopped), method state, update
statistics and record. A group of one is a plain run.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from cl_regimes import (
    checkpoints,
    data,
    inputs,
    methods,
    models,
    results,
    scenarios,
)
from cl_regimes.config import ConfigError, RunConfig
from cl_regimes.initialisation import grouped
from cl_regimes.initialisation import seed_everything as seed_everything
from cl_regimes.models import cross_entropy, flatten
from cl_regimes.steps import Hold, UpdateStats

results.git_commit()  # the commit of the code this process imported (see git_commit)
ZERO_WHERE_UNUSED = {"allow_unused": True, "materialize_grads": True}  # DER's two heads


class Trainer:
    """K runs of one cell (differing only in task order and seed) in one grouped network."""

    def __init__(
        self,
        configs: list[RunConfig],
        device: str | torch.device = "auto",
        data_dir=None,
        progress: bool = False,
        initial: list[dict[str, torch.Tensor]] | None = None,
        on_epoch: Callable[[int], None] | None = None,
    ):
        """``initial``: per run, the state dict of a single-run network to start from
        (another code's initialisation); by default each run's own seeded initialisation
        (``init``: random or pretrained). ``on_epoch(runs)`` is called after every epoch of a
        task's training with the number of runs that trained in it (a sweep's progress)."""
        cfg = configs[0]
        if initial is not None and len(initial) != len(configs):
            raise ConfigError(
                f"initial: {len(initial)} state dicts for {len(configs)} runs; give one per run"
            )
        if any(not cfg.differs_only_in_order_and_seed(c) for c in configs):
            raise ConfigError("runs trained as one group may differ in order and seed only")
        self.configs, self.cfg, self.runs = configs, cfg, len(configs)
        self.device = models.resolve_device(device)
        self.progress, self.on_epoch = progress, on_epoch
        self.scenario = scenarios.of(cfg)
        ds = data.load(cfg.dataset, data_dir, cfg.image_size, self.scenario.pad)
        self.spec = ds.spec
        if self.scenario.seeded_tasks and len({c.seed for c in configs}) > 1:
            raise ConfigError(f"runs of one group share one seed under {cfg.scenario}")
        self.blocks = self.scenario.blocks(
            ds,
            cfg.train_per_task,
            cfg.test_per_task,
            self.device,
            cfg.seed,
            cfg.validation_per_task,
        )
        self.seen: torch.Tensor | None = None  # each run's classes met so far [K, m]
        self.incoming: torch.Tensor | None = None  # outputs the batch's loss scores [K, m]
        self.orders = [data.task_orders(self.scenario.num_tasks)[c.order] for c in configs]
        self.tasks = [data.tasks_in_order(self.blocks, order) for order in self.orders]
        if len({tuple(len(t.train.y) for t in tasks) for tasks in self.tasks}) > 1:
            raise ConfigError(
                "runs trained as one group need tasks of equal sizes at every "
                "position (use runner.groups_of_equal_task_sizes)"
            )
        self.generators = [torch.Generator(self.device).manual_seed(c.stream_seed) for c in configs]
        self.inputs = inputs.Normalizer(ds.spec, self.device)
        self.network = functools.partial(  # network(salt): fresh networks (DER's extractors)
            grouped,
            configs,
            ds.spec.num_classes,
            self.device,
            self.inputs.memory_format,
            initial=initial,
        )
        self.model = self.network()
        self.params = models.apply_regime(self.model, cfg.regime)
        view = methods.Runs(
            self.model,
            self.params,
            self.runs,
            self.score,
            self.inputs,
            self.generators,
            self.fit,
            self.task_gradients,
            self.network,
            self.augment,
            self.streams,
        )
        self.method = methods.make(cfg.method, view, cfg.method_params)
        self.model = self.method.network()  # DER's grows; the others' is self.model
        self._buffers: tuple | None = None  # see ``buffers``

    def autocast(self):
        return torch.autocast(
            self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"
        )

    def score(
        self, logits: torch.Tensor, labels: torch.Tensor, seen: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """(the logits [B, K, n] each sample is scored over under the scenario, the
        position of its label among them [B, K]), given logits [B, K, classes]; as if the
        classes met so far were ``seen`` [K, m] when given."""
        return self.scenario.score(logits, labels, self.seen if seen is None else seen)

    def streams(self, salt: str) -> list[torch.Generator]:
        """Each run's own further random stream, named by ``salt`` (a replay memory's)."""
        return [torch.Generator(self.device).manual_seed(c.seed_for(salt)) for c in self.configs]

    def augment(self, images: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
        """uint8 images [N, K, C, S, S] with run k's crops and flips drawn from
        ``generators[k]`` (unchanged where the scenario does not augment)."""
        if not self.scenario.augment:
            return images
        n = len(images)
        draws = [
            inputs.draw_augmentation(n, images.shape[-1], self.spec.flip, g) for g in generators
        ]
        flat = images.transpose(0, 1).flatten(0, 1)
        return (
            inputs.augment(flat, *(torch.cat(d) for d in zip(*draws)))
            .unflatten(0, (len(generators), n))
            .transpose(0, 1)
        )

    def _grad(self, loss, params, retain=False, out=None) -> torch.Tensor:
        grads = torch.autograd.grad(loss, params, retain_graph=retain, **ZERO_WHERE_UNUSED)
        return flatten(grads, self.runs, out)

    def task_gradients(
        self, x: torch.Tensor, y: torch.Tensor, update_bn: bool, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Each run's flat gradient [K, N] of the task loss on non-augmented uint8 images
        x [N, K, C, S, S], over the trainable parameters, in the current mode (into
        ``out`` when given)."""
        statistics = (
            contextlib.nullcontext() if update_bn else models.running_stats_frozen(self.model)
        )
        with statistics, self.autocast():
            loss = cross_entropy(*self.score(self.model(self.inputs(x)), y))
        return self._grad(loss.sum(), self.params, out=out)

    def _batch(self, x, y, perms: dict[int, torch.Tensor], step: int):
        """Batch ``step`` of each live run (its own permutation and augmentation draws);
        zeros for stopped runs. -> (network input [B, K * 3, S, S], labels [B, K], the
        non-augmented uint8 images [B, K, C, S, S])"""
        size = self.cfg.batch_size
        live = list(perms)
        idx = torch.stack([perms[k][step * size : (step + 1) * size] for k in live])
        runs_idx = torch.tensor(live, device=x.device)[:, None]
        raw = x[runs_idx, idx]  # [live, n, C, S, S]
        generators = [self.generators[k] for k in live]
        images = self.augment(raw.transpose(0, 1), generators).transpose(0, 1)
        labels = y[runs_idx, idx]
        if len(live) < self.runs:
            full = [t.new_zeros((self.runs, *t.shape[1:])) for t in (raw, images, labels)]
            for whole, part in zip(full, (raw, images, labels)):
                whole[live] = part
            raw, images, labels = full
        return self.inputs(images.transpose(0, 1)), labels.T, raw.transpose(0, 1)

    def fit(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        params,
        epochs: int,
        method=None,
        schedule: bool = True,
        early_stopping: bool = True,
        on_epoch: Callable[[int, float], None] | None = None,
        outputs: torch.Tensor | None = None,
    ) -> list[dict]:
        """Train ``params`` on each run's (x[k], y[k]) ([K, n, C, S, S], [K, n]) for up to
        ``epochs``: Adam, a cosine schedule to lr_min over the epochs (or a constant
        rate), early stopping per run on the epoch's mean over batches of the training
        loss: the task loss plus the penalty for methods with ``stop_on_total_loss``
        (EWC, LwF), the task loss alone otherwise (SI and GEM act on the gradient, as in
        the original); ``method``'s hooks apply when given. ``on_epoch(runs, loss)``
        follows each epoch: the runs that trained in it and their mean loss. ``outputs``
        [K, m]: each run's outputs its batches' task loss scores over (sorted), as if they
        were the classes met so far (LwF's warm-up of a new task's outputs, ER-ACE's
        incoming batches); a method's replayed samples are still scored over those met."""
        if outputs is not None:
            incoming, self.incoming = self.incoming, outputs
            try:
                return self.fit(x, y, params, epochs, method, schedule, early_stopping, on_epoch)
            finally:
                self.incoming = incoming
        cfg, runs = self.cfg, self.runs
        opt = torch.optim.Adam(params, lr=cfg.lr, foreach=True)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs, eta_min=cfg.lr_min)
        stats = None
        if method and cfg.track_updates:
            stats = UpdateStats(runs, self.device, self.head_columns(params))
        norms = [t for m in models.batchnorms(self.model) for t in (m.running_mean, m.running_var)]
        hold = Hold(list(params) + norms, runs)
        steps = math.ceil(y.shape[1] / cfg.batch_size)
        losses, best, waited = [[] for _ in range(runs)], [math.inf] * runs, [0] * runs
        for _ in range(epochs):
            models.set_train_mode(self.model, cfg.bn_stats, self.params)
            live = [k for k in range(runs) if not hold.stopped[k]]
            perms = {
                k: torch.randperm(y.shape[1], device=self.device, generator=self.generators[k])
                for k in live
            }
            total = torch.zeros(runs, device=self.device)
            for step in range(steps):
                batch = self._batch(x, y, perms, step)
                total += self._step(*batch, params, opt, method, stats, ~hold.stopped, hold)
            if schedule:
                cosine.step()
            for k, loss in enumerate((total / steps).tolist()):
                if k not in live:
                    continue
                losses[k].append(loss)
                if loss < best[k] - cfg.min_delta:
                    best[k], waited[k] = loss, 0
                else:
                    waited[k] += 1
                    if early_stopping and waited[k] >= cfg.patience:
                        hold.stop(k)
            if on_epoch is not None:
                on_epoch(len(live), float(np.mean([losses[k][-1] for k in live])))
            if bool(hold.stopped.all()):
                break
        summaries = stats.summary() if stats else [{}] * runs
        return [
            {"train_loss": losses[k], "epochs_run": len(losses[k]), **summaries[k]}
            for k in range(runs)
        ]

    def _step(self, x, y, raw, params, opt, method, stats, active, hold) -> torch.Tensor:
        """One step of every run. The [K, N] gradients go to buffers reused step after
        step (``buffers``): valid until the next step, never kept by a method."""
        b = len(y)
        if method:
            method.before_step()
            x, y = method.join(x, y)
        with self.autocast():
            logits = self.model(x)
            loss = cross_entropy(*self.score(logits[:b], y[:b], self.incoming))
            penalty = method.penalty(x, logits, y) if method else None
        g, t = self.buffers(params)
        closed = method.penalty_gradient() if penalty is not None else None
        if penalty is None:
            task_grad = total = self._grad(loss.sum(), params, out=g)
            penalty_grad = None
        elif closed is not None:
            task_grad, penalty_grad = self._grad(loss.sum(), params, out=g), closed
            total = torch.add(task_grad, penalty_grad, out=t)
        elif stats is not None or method.needs_task_gradient:
            task_grad = self._grad(loss.sum(), params, retain=True, out=g)
            penalty_grad = self._grad(penalty.sum(), params)
            total = torch.add(task_grad, penalty_grad, out=t)
        else:
            task_grad = penalty_grad = None
            total = self._grad((loss + penalty).sum(), params, out=t)
        update = method.direction(total, task_grad, penalty_grad, active) if method else total
        if stats is not None:
            stats.add(task_grad, update, method.retention(task_grad, penalty_grad, update), active)
        for p, u in zip(params, update.split([p.numel() // self.runs for p in params], 1)):
            if p.grad is None:
                p.grad = torch.empty_like(p)
            p.grad.copy_(u.reshape(p.shape))
        opt.step()
        hold.restore()
        if method:
            method.after_step(task_grad)
            method.store(raw, y[:b], logits[:b].detach(), active)
        if penalty is not None and method.stop_on_total_loss:
            loss = loss + penalty
        return loss.detach()

    def head_columns(self, params) -> torch.Tensor:
        """The columns of the head's parameters in each run's flat vector of ``params``."""
        head, columns, start = {id(p) for p in self.model.fc.parameters()}, [], 0
        for p in params:
            size = p.numel() // self.runs
            if id(p) in head:
                columns.append(torch.arange(start, start + size, device=self.device))
            start += size
        return torch.cat(columns)

    def buffers(self, params) -> tuple[torch.Tensor, torch.Tensor]:
        """Two [K, N] buffers for ``params`` (task gradient, total), kept while the
        parameters trained stay the same."""
        key = tuple(id(p) for p in params)
        if self._buffers is None or self._buffers[0] != key:
            size = (self.runs, sum(p.numel() for p in params) // self.runs)
            empty = [torch.empty(size, dtype=params[0].dtype, device=self.device) for _ in range(2)]
            self._buffers = (key, *empty)
        return self._buffers[1:]

    @torch.no_grad()
    def evaluate(self) -> torch.Tensor:
        """Test accuracy [K, T] of each run on each task of its order (eval mode, no
        augmentation): every task's images go to every run at once."""
        self.model.eval()
        size, runs = self.cfg.eval_batch_size, self.runs
        accuracy = torch.zeros(runs, len(self.blocks), device=self.device)
        for block in self.blocks:
            correct = torch.zeros(runs, device=self.device)
            for xb, yb in zip(block.test.x.split(size), block.test.y.split(size)):
                with self.autocast():
                    logits = self.model(self.inputs(xb[:, None].expand(-1, runs, -1, -1, -1)))
                scored, target = self.score(logits, yb[:, None].expand(-1, runs))
                correct += (scored.argmax(-1) == target).sum(0)
            accuracy[:, block.block] = correct / len(block.test.y)
        return torch.stack([accuracy[k, order] for k, order in enumerate(self.orders)])

    def run(self, checkpoint: checkpoints.Checkpoint | None = None) -> list[dict]:
        """Train every task of each run's order; return, per run, R and per-task statistics.
        With ``checkpoint``, resume from the checkpoint there when it holds this group, and
        save one after every task (``checkpoints``)."""
        cfg, runs = self.cfg, self.runs
        frozen = models.frozen_state(self.model, cfg.bn_stats)
        start, rows, per_task = 0, [], [[] for _ in range(runs)]
        state = checkpoint and checkpoint.load(self.device)
        if state:
            start, rows, per_task = checkpoints.restore(self, state)
        desc = (
            f"{cfg.dataset} {cfg.regime} {cfg.method} "
            f"order{'s' if runs > 1 else ''} {','.join(str(c.order) for c in self.configs)}"
        )
        positions = len(self.tasks[0])
        with tqdm(
            total=positions * cfg.epochs,
            initial=start * cfg.epochs,
            desc=desc,
            disable=not self.progress,
            leave=False,
        ) as bar:

            def epoch_done(runs: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.3f}")
                bar.update()
                if self.on_epoch:
                    self.on_epoch(runs)

            for position in range(start, positions):
                current = [tasks[position] for tasks in self.tasks]
                self.seen = torch.tensor(
                    [
                        sorted({c for t in tasks[: position + 1] for c in t.classes})
                        for tasks in self.tasks
                    ],
                    device=self.device,
                )
                self.params = self.method.grow(position) or self.params
                start = flatten(self.params, runs).detach().clone()
                self.method.before_task(current)
                x, y = self.method.train_data([tasks[: position + 1] for tasks in self.tasks])
                stats = self.fit(
                    x,
                    y,
                    self.params,
                    cfg.epochs,
                    self.method,
                    on_epoch=epoch_done,
                    outputs=self.method.incoming_outputs(current),
                )
                self.method.after_task(current)
                rows.append(self.evaluate())
                drift = (flatten(self.params, runs).detach() - start).norm(dim=1).tolist()
                for k, extra in enumerate(self.method.task_stats()):
                    per_task[k].append(
                        {
                            "task": current[k].block,
                            "classes": current[k].classes,
                            "scored_classes": self.scenario.scored_classes(self.seen),
                            **stats[k],
                            **extra,
                            "drift": drift[k],
                        }
                    )
                if checkpoint and position + 1 < positions:
                    checkpoint.save(checkpoints.capture(self, position + 1, rows, per_task))
        for config, names in zip(self.configs, models.moved(self.model, frozen, runs)):
            if names:
                raise RuntimeError(
                    f"frozen coordinates moved under {cfg.regime} "
                    f"(order {config.order}, seed {config.seed}): {names[:5]}"
                )
        R = torch.stack(rows, 1).tolist()
        return [
            {
                "order": self.orders[k],
                "R": R[k],
                "tasks": per_task[k],
                "classes_per_task": len(self.tasks[k][0].classes),
                "n_trainable": sum(p.numel() for p in self.params) // runs,
            }
            for k in range(runs)
        ]
