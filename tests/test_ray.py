"""Sweeps on a real Ray runtime: a local instance, a two-node cluster simulated on this
machine, a worker killed mid-run, a resumed sweep, a failing run. Smoke profile only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from cl_regimes import cli, engines, profiles, results, runner, sweep

CELLS = dict(regimes=["head", "full"], methods=["finetune", "ewc", "lwf"])
GRID = profiles.get_profile("smoke").grid(**CELLS)  # 6 runs, 6 tasks


def records(folder: Path) -> dict[Path, dict]:
    return {p.relative_to(folder): results.read(p) for p in sorted(folder.rglob("*.json"))}


def assert_same_runs(got: dict, want: dict) -> None:
    assert list(got) == list(want)
    for path in want:
        assert got[path]["config"] == want[path]["config"]  # the same seeds and settings
        np.testing.assert_array_equal(got[path]["R"], want[path]["R"], err_msg=str(path))


@pytest.fixture(scope="module")
def local_pool(tmp_path_factory) -> dict:
    """The grid on the local engine, two worker processes of one thread each (as Ray's
    one-CPU tasks have)."""
    folder = tmp_path_factory.mktemp("local")
    sweep.sweep(GRID, results_dir=folder, device="cpu", jobs=2, progress=False)
    return records(folder)


@pytest.fixture(scope="module")
def on_ray(tmp_path_factory) -> dict:
    """The grid on a local Ray instance; then two records deleted and the sweep resumed."""
    folder = tmp_path_factory.mktemp("ray")
    first = sweep.sweep(GRID, results_dir=folder, engine="ray", progress=False)
    before = records(folder)
    deleted = first.paths[1:3]
    for path in deleted:
        path.unlink()
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.rglob("*.json")}
    resumed = sweep.sweep(GRID, results_dir=folder, engine="ray", progress=False)
    return dict(
        folder=folder,
        first=first,
        before=before,
        deleted=deleted,
        kept=kept,
        resumed=resumed,
        after=records(folder),
    )


def test_ray_writes_the_same_records_as_the_local_pool(on_ray, local_pool):
    assert len(on_ray["first"].trained) == 6 and not on_ray["first"].failed
    assert_same_runs(on_ray["before"], local_pool)
    assert not ray.is_initialized()  # the sweep ended the instance it started


def test_a_resumed_sweep_on_ray_redoes_only_the_missing_runs(on_ray, local_pool):
    resumed = on_ray["resumed"]
    assert sorted(resumed.trained) == sorted(on_ray["deleted"])
    assert sorted(resumed.skipped) == sorted(on_ray["kept"])
    for path, stamp in on_ray["kept"].items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == stamp, f"{path} rewritten"
    assert_same_runs(on_ray["after"], local_pool)


def test_a_two_node_cluster_runs_work_on_both_nodes(tmp_path, local_pool):
    cluster = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
    )
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes(timeout=120)  # a busy machine starts nodes slowly
        nodes = {n.node_id for n in cluster.list_all_nodes()}
        summary = sweep.sweep(GRID, results_dir=tmp_path, engine="ray", address=cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert len(summary.trained) == 6
    got = records(tmp_path)
    placed = {r["environment"]["node"] for r in got.values()}
    assert placed == nodes and len(nodes) == 2
    assert_same_runs(got, local_pool)


class InodeWatch(threading.Thread):
    """Every file a folder's records have been, seen by polling: a record written twice
    (any second write is a new file renamed or linked in) shows two inodes."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.seen, self.running = folder, {}, True

    def run(self):
        while self.running:
            for path in self.folder.rglob("*.json"):
                try:
                    self.seen.setdefault(path, set()).add(path.stat().st_ino)
                except FileNotFoundError:
                    pass
            time.sleep(0.02)


def test_a_worker_killed_mid_run_is_retried_and_no_record_is_written_twice(tmp_path):
    command = [sys.executable, "-m", "cl_regimes", "sweep", "--profile", "smoke"]
    command += ["--results", str(tmp_path), "--engine", "ray", "--set", "epochs=4"]
    command += ["--regimes", *CELLS["regimes"], "--methods", *CELLS["methods"]]
    watch = InodeWatch(tmp_path)
    watch.start()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline:
        running = subprocess.run(
            ["pgrep", "-f", "^ray::train_unit"], capture_output=True, text=True
        )
        if running.stdout.split():
            time.sleep(1.0)  # well inside the task: importing, loading data or training
            killed = int(running.stdout.split()[0])
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.1)
    stdout, stderr = proc.communicate(timeout=300)
    watch.running = False
    watch.join()
    assert killed is not None, "no Ray worker ran a unit"
    assert proc.returncode == 0, stderr
    assert "will be retried" in stdout + stderr  # Ray's own report of the retry
    got = records(tmp_path)
    assert len(got) == 6
    assert {p: len(inodes) for p, inodes in watch.seen.items()} == {tmp_path / p: 1 for p in got}, (
        "a record was written twice"
    )
    assert not list(tmp_path.rglob("*.tmp"))
    assert "trained 6, already done 0, failed 0" in stdout


@pytest.mark.parametrize("engine", ["ray", "local"])
def test_a_failing_run_is_reported_and_the_others_finish(engine, tmp_path, capsys):
    """MNIST with corrupt files (a half-copied dataset on a node) fails; digits runs."""
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (raw / f"{name}-{kind}-ubyte").write_bytes(b"\x00" * 64)
    argv = ["sweep", "--profile", "smoke", "--results", str(tmp_path / "r"), "--engine", engine]
    argv += ["--data-dir", str(tmp_path / "data"), "--datasets", "digits", "mnist"]
    argv += ["--regimes", "head", "--methods", "finetune"]
    (tmp_path / "r").mkdir()
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 1
    assert "trained 1, already done 0, failed 1" in out
    failed = next(line for line in out.splitlines() if "failed:" in line)
    assert "mnist/head/finetune/order00-seed0.json" in failed and "Error" in failed
    assert "1 of the sweep's runs failed" in err
    assert [p.parts[-4:] for p in (tmp_path / "r").rglob("*.json")] == [
        ("digits", "head", "finetune", "order00-seed0.json")
    ]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "nosuch"], "unknown engine 'nosuch'; valid: local, ray"),
        (["--engine", "ray", "--address", "127.0.0.1:{port}"], "cannot reach a Ray cluster"),
        (["--engine", "ray", "--results", "{missing}"], "does not exist"),
        (["--address", "127.0.0.1:{port}"], "--address is an option of --engine ray"),
        (["--engine", "ray", "--runs-per-gpu", "2"], "0 GPUs); lower --cpus-per-task, or leave"),
    ],
)
@pytest.mark.parametrize("command", ["sweep", "book"])
def test_bad_engine_input_is_one_line(command, extra, message, tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [command, "--profile", "smoke", "--results", str(tmp_path)]
    argv += [a.format(port=port, missing=tmp_path / "nosuch") for a in extra]
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not list(tmp_path.rglob("*.json")) and not ray.is_initialized()


def test_an_address_that_is_not_a_ray_cluster_is_one_line(tmp_path, capsys, monkeypatch):
    """A port that accepts connections but is no Ray cluster (``ray.init`` would wait
    forever): refused after the probe's time limit."""
    monkeypatch.setattr(engines, "PROBE_TIMEOUT_S", 3.0)
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        argv = ["sweep", "--profile", "smoke", "--results", str(tmp_path), "--engine", "ray"]
        code = cli.main([*argv, "--address", address])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "answered as a Ray cluster within 3 s" in err
    assert not list(tmp_path.rglob("*.json")) and not ray.is_initialized()


def test_a_run_another_task_finished_meanwhile_counts_as_done(tmp_path, monkeypatch):
    """Two attempts at one run (a retry racing the attempt it replaces, or a stale view
    of a shared folder): the second to finish keeps the first's record and reports it
    done, not failed; a record of another configuration there is still an error."""
    [run] = profiles.get_profile("smoke").grid(regimes=["head"], methods=["finetune"])
    real, other_task = runner.run_group, {}

    def finished_meanwhile(runs, *args, on_group, **kwargs):  # the other task saves first
        def other_first(group, records):
            record = {**records[0], "created": "by the other task"}
            record["config"] = {**record["config"], **other_task["changes"]}
            results.save(record, other_task["path"])
            on_group(group, records)

        return real(runs, *args, on_group=other_first, **kwargs)

    monkeypatch.setattr(runner, "run_group", finished_meanwhile)
    for name, changes in (("same", {}), ("other", {"lr": 0.5})):
        other_task.update(path=tmp_path / f"{name}.json", changes=changes)
        unit = engines.Unit([run], [other_task["path"]])
        outcome = engines.train_unit(unit, "cpu", None)
        assert results.read(unit.paths[0])["created"] == "by the other task"  # kept
        if name == "same":
            assert (outcome.written, outcome.skipped, outcome.error) == ([], unit.paths, None)
        else:
            assert outcome.written == [] and "another configuration" in outcome.error
