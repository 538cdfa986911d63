"""init=pretrained (initialisation.py): listed in ``run --help``, refused in one line
before anything trains when the weights are missing or are not a ResNet-18's, loaded
exactly (all but the replaced stem and head, as the original), with the regime freezing
what it should on top of them."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torchvision

from cl_regimes import cli, initialisation, models, regimes, runner, train
from conftest import make_smoke_config

WIDE = {  # the ImageNet network's width, on tiny tasks
    "width": 64,
    "image_size": 8,
    "train_per_task": 20,
    "test_per_task": 10,
    "batch_size": 10,
}


def kept(name: str) -> bool:
    """Whether the original kept the ImageNet value (it replaced the stem conv and the head)."""
    return not name.startswith(("conv1.", "fc."))


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A file laid out as torchvision's ImageNet ResNet-18 (every tensor random, BatchNorm
    statistics included), named by $CL_REGIMES_WEIGHTS."""
    generator = torch.Generator().manual_seed(7)
    state = {
        name: (
            torch.randint(1, 9, t.shape, generator=generator, dtype=t.dtype)
            if not t.is_floating_point()
            else torch.rand(t.shape, generator=generator) + 0.5
        )
        for name, t in torchvision.models.resnet18().state_dict().items()
    }
    path = tmp_path / initialisation.WEIGHTS_FILE
    torch.save(state, path)
    monkeypatch.setenv(initialisation.WEIGHTS_ENV, str(path))
    return state


def pretrained(regime="from_layer4", method="finetune", order=0, **overrides):
    settings = {**WIDE, **overrides}
    return make_smoke_config(regime, method, order=order, init="pretrained", **settings)


def run_argv(tmp_path, *extra, command="run"):
    """``run`` (or ``sweep``) of finetune under head at the smoke profile, on the CPU."""
    s = "s" if command == "sweep" else ""
    grid = [f"--dataset{s}", "digits", f"--regime{s}", "head", f"--method{s}", "finetune"]
    return [command, "--profile", "smoke", *grid, "--results", str(tmp_path / "r"), *extra]


def test_run_help_lists_the_setting_and_where_the_weights_go():
    text = cli.parser()._subparsers._group_actions[0].choices["run"].format_help()
    line = next(line for line in text.splitlines() if line.strip().startswith("init "))
    assert line.split()[1:5] == ["random"] * 4 and "one of random, pretrained" in line
    assert "--weights" in text and initialisation.WEIGHTS_FILE in text


@pytest.mark.parametrize("where", ["torchvision's cache", "--weights"])
def test_missing_weights_are_one_line_naming_where_to_put_them(
    where, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(initialisation.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(train.Trainer, "__init__", lambda *a, **k: pytest.fail("it trained"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / initialisation.WEIGHTS_FILE
    extra = ["--set", "init=pretrained", "width=64"]
    if where == "--weights":
        expected = tmp_path / "elsewhere.pth"
        extra += ["--weights", str(expected)]
    for command in ("run", "sweep"):
        code = cli.main(run_argv(tmp_path, *extra, command=command))
        lines = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(lines) == 1, lines
        assert str(expected) in lines[0] and "put torchvision's resnet18-f37072fd.pth" in lines[0]
    assert not list(tmp_path.rglob("*.json"))


def test_other_widths_and_other_files_are_refused(weights, tmp_path, capsys):
    code = cli.main(run_argv(tmp_path, "--set", "init=pretrained"))  # smoke: width 8
    err = capsys.readouterr().err
    assert code == 2 and "init='pretrained' needs width=64" in err and "width=8" in err
    path = initialisation.weights_path()
    torch.save({**weights, "layer2.1.bn2.weight": torch.ones(3)}, path)
    code = cli.main(run_argv(tmp_path, "--set", "init=pretrained", "width=64"))
    err = capsys.readouterr().err
    assert code == 2 and "layer2.1.bn2.weight is of shape (3,), expected (128,)" in err
    path.write_text("not weights")
    code = cli.main(run_argv(tmp_path, "--set", "init=pretrained", "width=64"))
    assert code == 2 and "cannot read" in capsys.readouterr().err


def test_the_weights_load_exactly_into_every_run_but_stem_and_head(weights):
    configs = [pretrained(order=o) for o in (0, 1)]
    group = train.Trainer(configs, device="cpu").model.state_dict()
    random = train.Trainer([make_smoke_config("from_layer4", "finetune", **WIDE)], device="cpu")
    for name, t in group.items():
        for k in range(2):
            run = models.per_run(t, 2)[k] if t.ndim else t
            if kept(name):
                assert torch.equal(run, weights[name].reshape(run.shape).to(run.dtype)), name
            elif k == 0:  # the stem and head keep run 0's seeded random initialisation
                assert torch.equal(run, random.model.state_dict()[name].reshape(-1)), name


def test_the_regime_freezes_what_it_should_on_top_of_them(weights):
    trainer = train.Trainer([pretrained(bn_stats="follow_regime")], device="cpu")
    trainer.run()
    rule = regimes.get("from_layer4")
    state = trainer.model.state_dict()
    frozen, trained = [], []
    for name, is_bn, _ in models._named_parameters(trainer.model):
        (trained if rule.is_trainable(name, is_bn) else frozen).append(name)
        if is_bn and not rule.is_trainable(name, is_bn):  # its running statistics too
            frozen += [name.rsplit(".", 1)[0] + s for s in (".running_mean", ".running_var")]
    assert sum(kept(n) for n in frozen) > 40 and trained
    for name in filter(kept, frozen):
        assert torch.equal(state[name], weights[name]), name
    assert all(not torch.equal(state[n], weights[n]) for n in trained if kept(n))


def test_der_starts_every_extractor_from_them(weights):
    trainer = train.Trainer([pretrained(method="der")], device="cpu")
    trainer.method.grow(2)
    state = trainer.model.state_dict()
    for index in range(3):
        for name, t in weights.items():
            if kept(name):
                assert torch.equal(state[f"extractors.{index}.{name}"], t), (index, name)


def test_a_pretrained_record_names_its_weights(weights):
    record = runner.run(pretrained("head", epochs=1, train_per_task=10), device="cpu")
    digest = hashlib.sha256(initialisation.weights_path().read_bytes()).hexdigest()
    assert record["config"]["init"] == "pretrained"
    assert record["environment"]["init_weights"] == digest
