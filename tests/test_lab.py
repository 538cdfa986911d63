"""`make lab`: JupyterLab from .venv on localhost, behind a token, with Jupytext."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers)) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, b""
    except urllib.error.URLError:  # not listening yet
        return 0, b""


@pytest.fixture
def lab():
    """`make lab` on a free port with a known token; stopped (with its process group) after."""
    port, token = free_port(), "test-token-0123456789"
    server = subprocess.Popen(
        ["make", "-s", "lab", f"LAB_PORT={port}", "LAB_ARGS=--no-browser"],
        cwd=ROOT,
        env=os.environ | {"JUPYTER_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while get(f"{base}/api/status", token)[0] != 200:
            assert server.poll() is None, "make lab exited"
            assert time.time() < deadline, "JupyterLab did not start within 60 s"
            time.sleep(0.2)
        yield base, token
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)


def test_make_lab_serves_the_notebook_sources_as_notebooks_behind_a_token(lab):
    base, token = lab
    url = f"{base}/api/contents/notebooks/regime.py?type=notebook"
    status, body = get(url, token)
    assert status == 200
    notebook = json.loads(body)["content"]
    tags = [c["metadata"].get("tags", []) for c in notebook["cells"]]
    assert ["parameters", "remove-cell"] in tags  # a notebook, through Jupytext
    assert get(url)[0] in (401, 403)
    assert get(url, "wrong-token")[0] in (401, 403)
