"""Endpoint mode and the workshop server against real servers on this CPU: the workshop server (the course's vLLM
server behind its keyed proxy) probed on every route vLLM has, notebooks 03 and 04 in endpoint mode against it, and
notebook 04 against a stand-in for DeepSeek's API (tests/deepseek_standin.py). A recognisable key is used throughout
and searched for in every output and log afterwards."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from course_utils import hardware, workshop
from course_utils.processes import BackgroundServer, claim_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "ws-RECOGNISABLE-test-key-5f3a9c"
pytestmark = [pytest.mark.server, pytest.mark.notebook, pytest.mark.slow]


@pytest.fixture(scope="module")
def room():
    plan = workshop.plan_workshop(hardware.Device("cpu", "CPU", 0, 16.0, 16.0, True, 2, 16.0), students=8)
    with workshop.WorkshopServer(plan, key=KEY) as server:
        yield server


def status_of(url: str, method: str, key: str | None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=b"{}" if method == "POST" else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_every_route_vllm_has_is_refused_without_the_key(room):
    with urllib.request.urlopen(room.vllm.url + "/openapi.json", timeout=30) as response:
        spec = json.loads(response.read())
    routes = [(path, method.upper()) for path, item in spec["paths"].items() for method in item
              if "{" not in path] + [("/metrics", "GET"), ("/docs", "GET")]
    assert len(routes) >= 20 and ("/invocations", "POST") in routes and ("/tokenize", "POST") in routes
    answered = []
    for path, method in routes:
        for key in (None, "wrong-key"):
            status, _ = status_of(room.proxy.url + path, method, key)
            if status != 401:
                answered.append((method, path, key, status))
        status, _ = status_of(room.proxy.url + path, method, KEY)
        if (method, path) not in workshop.ROUTES and status != 404:
            answered.append((method, path, "the key", status))
    assert answered == [], answered
    assert status_of(room.proxy.url + "/v1/models", "GET", KEY)[0] == 200


def test_the_engine_listens_on_loopback_with_its_own_key_and_no_key_is_on_a_command_line(room):
    args = room.vllm.args
    assert args[args.index("--host") + 1] == "127.0.0.1" and room.proxy.host == "127.0.0.1"
    for process in (room.vllm, room.proxy):
        assert not any(KEY in arg or room.upstream_key in arg for arg in process.args)
        assert Path(f"/proc/{process.process.pid}/cmdline").read_bytes().find(KEY.encode()) == -1
    status, _ = status_of(room.vllm.url + "/v1/models", "GET", KEY)       # vLLM wants its own key, not the room's
    assert status == 401


def execute(notebook: str, env: dict, timeout: int = 900):
    """Run a notebook in a kernel with ``env``; returns the executed notebook as text (every output in it)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / f"{notebook}.ipynb", as_version=4)
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nbformat.writes(nb)


def endpoint_env(base_url: str, key: str) -> dict:
    return {"COURSE_ENDPOINT": base_url, "COURSE_API_KEY": key, "COURSE_QUICK": "1"}


def test_notebook_04_in_endpoint_mode_against_the_course_s_keyed_server(room):
    text = execute("04_examining_reasoning", endpoint_env(room.base_url, KEY))
    assert KEY not in text and "this endpoint (127.0.0.1" in text and "checked: the toy's figures" in text
    for log in (room.vllm.log_path, room.proxy.log_path):
        assert KEY not in log.read_text(errors="replace")


def test_notebook_03_in_endpoint_mode_sends_its_chat_and_load_test_there(room):
    text = execute("03_serving_distills", endpoint_env(room.base_url, KEY))
    assert KEY not in text and "requests sent to 127.0.0.1" in text and "skipped: this needs a vLLM engine" in text


class StandIn(BackgroundServer):
    what = "DeepSeek stand-in"
    health_path = "/v1/models"

    def __init__(self, upstream: str, upstream_key: str, key: str):
        self.port, self.startup_timeout = claim_port(None), 60
        self.health_headers = {"Authorization": f"Bearer {key}"}
        self.env = {**os.environ, "STANDIN_KEY": key, "STANDIN_UPSTREAM_KEY": upstream_key}
        self.args = [sys.executable, str(ROOT / "tests" / "deepseek_standin.py"), "--upstream", upstream,
                     "--port", str(self.port)]
        self._prepare("deepseek-standin-")


def test_notebook_04_against_a_stand_in_for_deepseek_s_api(room):
    standin_key = "sk-STANDIN-recognisable-77d1"
    with StandIn(room.vllm.base_url, room.upstream_key, standin_key) as standin:
        text = execute("04_examining_reasoning", endpoint_env(standin.base_url, standin_key))
    assert standin_key not in text and "standin_key" not in text
    assert "reasoning_content" in text                 # the capability table names DeepSeek's field
    assert "refused or absent" in text                 # no log-probabilities: section 5 says why it skips
    assert "ignored (temperature 0 still varies)" in text


def test_the_workshop_load_benchmark_runs_small(room):
    """benchmarks/workshop_load.py's simulated students, a few of them, against this server: no errors."""
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "workshop_load.py"), "--students", "4",
                           "--problems", "2", "--endpoint", room.base_url], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "COURSE_API_KEY": KEY}, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "0 errors" in done.stdout and KEY not in done.stdout + done.stderr
