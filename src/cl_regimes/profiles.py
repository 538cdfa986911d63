"""Named parameter sets: the single source of every hyperparameter value.

``paper`` is the protocol of the original study (DESIGN section 3, checked
against its code); ``quick`` is a reduced but real experiment that builds the
whole book on a laptop CPU; ``smoke`` takes seconds and exists for tests.
Method hyperparameters are "<method>.<parameter>" keys; which ones a method
takes, and their valid ranges, the method's own file declares.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field

from cl_regimes import data, initialisation, methods, regimes
from cl_regimes.config import FIELDS, ConfigError, RunConfig, check_choice
from cl_regimes.results import Run

NUM_ORDERS = 11  # the canonical order + 10 permutations
IDENTITY = ("dataset", "regime", "method", "order", "seed")

REPLAY = ("er", "agem", "derpp", "er_ace")


def replay_settings(memory_size: int, batch_size: int) -> dict:
    """The replay methods' memory, one size for all (GEM's total: memories_per_task times
    the tasks), and replay batches as large as the training batches (Mammoth's
    ``minibatch_size`` = ``batch_size``)."""
    return {
        f"{m}.{k}": v
        for m in REPLAY
        for k, v in (("memory_size", memory_size), ("replay_batch_size", batch_size))
    }


PAPER_SETTINGS = {
    "seeding": "independent",  # the original seeded nothing: every run its own weights and data
    "scenario": "task_incremental",  # the study's: task identity known at test
    "permuted_tasks": 10,  # domain-incremental only: Permuted-MNIST as the field runs it,
    "permuted_images": "pad",  # 10 tasks, 28x28 images zero-padded to 32x32
    "permuted_first": "permuted",  # as the committed records ran; van de Ven's: identity
    "bn_stats": "always_update",  # the original put the whole network in training mode
    "init": "random",  # the original's INIT_MODE; pretrained: ImageNet weights (--weights)
    "width": 64,
    "image_size": 32,
    "epochs": 3,
    "batch_size": 256,
    "lr": 1e-3,
    "lr_min": 1e-5,
    "patience": 5,
    "min_delta": 1e-4,
    "train_per_task": None,
    "test_per_task": None,
    "validation_per_task": None,  # tuning runs only (tuning.py)
    "eval_batch_size": 1024,
    "precision": "fp32",
    "track_updates": True,
    "ewc.lam": 5000.0,
    "ewc.gamma": 1.0,
    "ewc.fisher_samples": 200,
    "lwf.lam": 1.0,
    "lwf.temperature": 2.0,
    "lwf.warmup_epochs": 3,
    "lwf.warmup_outputs": "new",  # the new task's outputs alone (Li & Hoiem, the original)
    "lwf.student_forwards": 2,
    "si.c": 100.0,
    "si.xi": 0.1,
    "si.clip": 1.0,
    "gem.memories_per_task": 200,
    "gem.margin": 0.0,
    "gem.ridge": 1e-5,
    "gem.memory_bn": "update",
    **replay_settings(memory_size=1000, batch_size=256),
    "derpp.alpha": 0.2,  # Mammoth's best_args, seq-cifar10 (a ResNet-18), memory 500
    "derpp.beta": 0.5,
    "der.alpha": 1.0,  # DER_ALPHA: the auxiliary loss's weight
    "der.old_bn": "follow_bn_stats",  # earlier extractors' BatchNorm: as bn_stats says
}


@dataclass(frozen=True)
class Variant:
    """Runs a profile adds to its grid with some settings changed (e.g. the other value of
    a quirk of the original code), for the given regimes and methods (None: all)."""

    settings: dict
    regimes: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Profile:
    """Settings plus the grid a sweep covers."""

    name: str
    description: str
    settings: dict
    datasets: tuple[str, ...]
    orders: tuple[int, ...]
    seeds: tuple[int, ...] = (0,)
    regimes: tuple[str, ...] = tuple(regimes.REGIMES)
    methods: tuple[str, ...] | None = None  # None: every registered method
    per_dataset: dict[str, dict] = field(default_factory=dict)
    variants: tuple[Variant, ...] = ()

    def grid_methods(self) -> tuple[str, ...]:
        """The methods of its grid: the library's own unless named (never a plug-in), but
        not those run only when named (``Method.in_grid``: DER)."""
        return self.methods or tuple(
            n for n in methods.names(plugins=False) if methods.get(n).in_grid
        )

    def values(self, dataset: str, overrides: dict | None = None) -> dict:
        """Its values for a dataset: its settings, the dataset's, then ``overrides``."""
        settings = {**plugin_settings(), **self.settings}
        for key in overrides or {}:
            check_choice("setting", key, tuple(settings))
        return {**settings, **self.per_dataset.get(dataset, {}), **(overrides or {})}

    def config(
        self,
        *,
        dataset: str,
        regime: str,
        method: str,
        order: int = 0,
        seed: int = 0,
        overrides: dict | None = None,
    ) -> RunConfig:
        """The full configuration of one run, every value checked against its valid range."""
        spec = data.spec(dataset)
        regimes.get(regime)
        methods.get(method)
        check_choice("order", order, range(NUM_ORDERS))
        values = self.values(dataset, overrides)
        run = {k: v for k, v in values.items() if "." not in k}
        params = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(method + ".")}
        if set(run) | set(IDENTITY) | {"method_params"} != set(FIELDS):
            missing = set(FIELDS) - set(run) - set(IDENTITY) - {"method_params"}
            raise ConfigError(f"profile {self.name!r} misses settings {sorted(missing)}")
        for key in ("train_per_task", "test_per_task", "validation_per_task"):  # a class each
            value = run[key]
            if isinstance(value, int) and value < spec.classes_per_task:
                raise ConfigError(
                    f"setting {key}={value!r} is out of range; valid: None or >= "
                    f"{spec.classes_per_task} (the classes of a {dataset} task)"
                )
        config = RunConfig(
            dataset=dataset,
            regime=regime,
            method=method,
            order=order,
            seed=seed,
            method_params=params,
            **run,
        )
        methods.check_params(method, params)
        initialisation.check(config)
        applies = methods.get(method).scenarios
        if config.scenario not in applies:
            raise ConfigError(
                f"method {method!r} does not apply to the {config.scenario} scenario; "
                f"valid for it: {', '.join(applies)}"
            )
        return config

    def variant(self, config: RunConfig) -> dict:
        """The settings of ``config`` that differ from its own ("<method>.<key>" for method
        hyperparameters): part of a run's identity, so that variants coexist."""
        ids = {k: getattr(config, k) for k in IDENTITY if k != "seed"}  # a tuning seed needs
        default = {**self.config(**ids).to_dict(), "seed": config.seed}  # validation images
        wanted = config.to_dict()
        out = {k: v for k, v in wanted.items() if k != "method_params" and v != default[k]}
        for key, value in wanted["method_params"].items():
            if value != default["method_params"][key]:
                out[f"{config.method}.{key}"] = value
        return dict(sorted(out.items()))

    def run(self, **identity) -> Run:
        """One run of it (``config``'s arguments), with its variant."""
        config = self.config(**identity)
        return Run(config, self.name, self.variant(config))

    def grid(
        self,
        *,
        datasets=None,
        regimes=None,
        methods=None,
        orders=None,
        seeds=None,
        overrides: dict | None = None,
        variants: bool = True,
    ) -> list[Run]:
        """The runs of a sweep: its grid and its variants, restricted where asked, with
        ``overrides`` applied to every run; every value checked."""
        regimes = regimes or self.regimes
        methods = methods or self.grid_methods()
        sets = [({}, regimes, methods)]
        if variants:
            sets += [
                (
                    v.settings,
                    [r for r in regimes if v.regimes is None or r in v.regimes],
                    [m for m in methods if v.methods is None or m in v.methods],
                )
                for v in self.variants
            ]
        runs = {}
        for settings, regs, meths in sets:
            cells = itertools.product(  # in the order of IDENTITY
                datasets or self.datasets,
                regs,
                meths,
                self.orders if orders is None else orders,
                seeds or self.seeds,
            )
            for cell in cells:
                identity = dict(zip(IDENTITY, cell))
                run = self.run(**identity, overrides={**settings, **(overrides or {})})
                runs[repr(run.config)] = run
        return list(runs.values())


PROFILES = {
    "paper": Profile(
        "paper",
        "the protocol of the original study, float32 (GPU: hours)",
        PAPER_SETTINGS,
        datasets=("mnist", "fashion_mnist", "kmnist", "qmnist", "cifar100"),
        orders=tuple(range(NUM_ORDERS)),
        per_dataset={
            "cifar100": {
                "epochs": 20,
                "lwf.warmup_epochs": 10,
                **replay_settings(memory_size=2000, batch_size=256),  # GEM's: 200 x 10 tasks
                "derpp.alpha": 0.3,  # Mammoth's seq-cifar100, memory 500
            }
        },
    ),
    "quick": Profile(
        "quick",
        "Fashion-MNIST at 16x16, 500 images per task, ResNet-18 of width 8, 3 orders "
        "(the whole book in about 11 minutes on 2 CPU cores)",
        {
            **PAPER_SETTINGS,
            "width": 8,
            "image_size": 16,
            "batch_size": 32,
            "train_per_task": 500,
            "test_per_task": 200,
            "eval_batch_size": 500,
            "gem.memories_per_task": 32,
            **replay_settings(memory_size=160, batch_size=32),
        },
        datasets=("fashion_mnist",),
        orders=(0, 1, 2),
        variants=(
            Variant({"bn_stats": "follow_regime"}, regimes=("from_layer4", "full")),
            Variant({"gem.memory_bn": "frozen"}, regimes=("from_layer4", "full"), methods=("gem",)),
        ),
    ),
    "medium": Profile(
        "medium",
        "Fashion-MNIST at 16x16, 3000 images per task, ResNet-18 of width 8, the paper's 11 "
        "orders (records committed under records/medium: hours on 2 CPU cores)",
        {
            **PAPER_SETTINGS,
            "width": 8,
            "image_size": 16,
            "batch_size": 32,
            "train_per_task": 3000,
            "test_per_task": 500,
            "eval_batch_size": 500,
            "gem.memories_per_task": 32,
            **replay_settings(memory_size=160, batch_size=32),
        },
        datasets=("fashion_mnist",),
        orders=tuple(range(NUM_ORDERS)),
    ),
    "smoke": Profile(
        "smoke",
        "sklearn digits, width 8, one epoch: seconds per run, for tests",
        {
            **PAPER_SETTINGS,
            "width": 8,
            "image_size": 16,
            "epochs": 1,
            "batch_size": 32,
            "train_per_task": 270,
            "lwf.warmup_epochs": 1,
            "permuted_tasks": 5,
            "gem.memories_per_task": 32,
            **replay_settings(memory_size=160, batch_size=32),
            "ewc.fisher_samples": 64,
            "eval_batch_size": 512,
        },
        datasets=("digits",),
        orders=(0,),
    ),
}


def get_profile(name: str) -> Profile:
    check_choice("profile", name, tuple(PROFILES))
    return PROFILES[name]


def plugin_settings() -> dict:
    """The values of the settings of methods that have none here (plug-ins), as
    ``"<method>.<setting>"``: their constructors' defaults."""
    out = {}
    for name in methods.names():
        method = methods.get(name)
        defaults = method.defaults()
        for key in method.parameters():
            if f"{name}.{key}" in PAPER_SETTINGS:
                continue
            if key not in defaults:
                raise ConfigError(
                    f"method {name!r}: setting {key!r} has no value; give it a default in "
                    "the constructor (a plug-in's values) or a value in profiles.py"
                )
            out[f"{name}.{key}"] = defaults[key]
    return out


def parse_overrides(
    pairs: list[str] | None, settings: dict | None = None, methods_: list[str] | None = None
) -> dict:
    """Turn ``["epochs=2", "ewc.lam=100"]`` into typed values, checking each key exists
    (in ``settings``; by default the paper's and the plug-in methods') and, given the
    command's ``methods_``, that one of them takes it (else it would be ignored)."""
    settings = settings or {**PAPER_SETTINGS, **plugin_settings()}
    overrides = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        check_choice("setting", key, tuple(settings))
        owner = key.split(".")[0] if "." in key else None
        if owner and methods_ is not None and owner not in methods_:
            raise ConfigError(
                f"setting {key} is method {owner}'s, which this command does not run "
                f"(it runs {', '.join(methods_)}); drop the setting or run {owner}"
            )
        default = settings[key]
        if isinstance(default, bool):  # as users type them: true/false in any case, or 1/0
            value = {"true": True, "1": True, "false": False, "0": False}.get(text.lower())
            if value is None:
                raise ConfigError(
                    f"setting {key}={text!r} is out of range; valid: true, false, 1, 0"
                )
        else:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if default is not None and type(value) is not type(default):
            raise ConfigError(f"setting {key} expects {type(default).__name__}, got {text!r}")
        overrides[key] = value
    return overrides
