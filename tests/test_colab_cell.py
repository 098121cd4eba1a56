"""Every notebook's set-up cell (tagged "setup") installs the course on Colab; a repository it cannot reach must fail
at once with what to do (not with a git password prompt or a stack trace from pip). Anywhere else it says which mode
the run is in."""

import json
import sys
import types
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9]*.ipynb"))


def colab_cell(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    tagged = [cell for cell in cells if "setup" in cell.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: one cell tagged setup"
    return "".join(tagged[0]["source"])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_an_unreachable_repository_stops_with_what_to_do(path, monkeypatch, tmp_path, capsys):
    source = colab_cell(path)
    assert source.count('REPO_URL = "') == 1
    url = (tmp_path / "not-a-repository").as_uri()          # fails like an unpublished URL, without the network
    source = source.replace(source.split('REPO_URL = "')[1].split('"')[0], url)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))   # pretend to be on Colab
    with pytest.raises(SystemExit, match="Cannot install the course from .*make set-repo-url"):
        exec(compile(source, path.name, "exec"), {})
    assert "installed" not in capsys.readouterr().out


def test_outside_colab_the_cell_installs_nothing_and_names_the_mode(capsys, monkeypatch):
    monkeypatch.delenv("COURSE_QUICK", raising=False)
    for path in NOTEBOOKS:
        exec(compile(colab_cell(path), path.name, "exec"), {})
        out = capsys.readouterr().out
        assert out.startswith("Not on Colab: nothing to install.\n") and "Full mode" in out
    monkeypatch.setenv("COURSE_QUICK", "1")
    exec(compile(colab_cell(NOTEBOOKS[0]), "quick", "exec"), {})
    assert "QUICK MODE (COURSE_QUICK=1)" in capsys.readouterr().out


def test_a_restart_is_asked_for_only_when_an_imported_package_changed():
    from course_utils.colab import loaded_versions, stale_modules

    modules = {"torch": types.SimpleNamespace(__version__="2.9.0+cu126"),
               "numpy": types.SimpleNamespace(__version__="2.1.0")}
    before = loaded_versions(modules)
    assert before == {"torch": "2.9.0+cu126", "numpy": "2.1.0"}
    same = {"torch": "2.9.0", "numpy": "2.1.0"}.get                   # PyPI's metadata has no +cu126 tag
    assert stale_modules(before, same) == []
    assert stale_modules(before, {"torch": "2.10.0", "numpy": "2.1.0"}.get) == ["torch 2.9.0+cu126 -> 2.10.0"]


def test_install_extras_runs_pip_with_the_tested_pins_and_asks_for_a_restart_when_needed(monkeypatch, capsys):
    from course_utils import colab
    from course_utils.flavour import COLAB_BASE

    calls = []
    monkeypatch.setattr(colab, "has_nvidia_gpu", lambda: True)
    monkeypatch.setattr(colab, "driver_cuda_version", lambda: (12, 8))          # Colab's GPU image: CUDA 12.8
    monkeypatch.setattr(colab.subprocess, "run", lambda command, check: calls.append(command))
    monkeypatch.setattr(colab.importlib.metadata, "version", lambda name: {"torch": "2.10.0"}.get(name, "0"))

    monkeypatch.setattr(colab, "loaded_versions", lambda: {})                  # a fresh runtime: nothing imported
    colab.install_extras(["vllm", "datasets"])
    assert calls[-1][1:3] == ["-m", "pip"] and calls[-1][4:] == [
        *COLAB_BASE, "vllm==0.19.1", "torch==2.10.0", "datasets==5.2.0"]
    assert "driver CUDA 12.8: installing vllm==0.19.1 + torch==2.10.0" in capsys.readouterr().out

    monkeypatch.setattr(colab, "loaded_versions", lambda: {"torch": "2.11.0+cu128"})   # torch imported before
    with pytest.raises(SystemExit, match=r"Restart needed.*torch 2\.11\.0\+cu128 -> 2\.10\.0"):
        colab.install_extras(["vllm"])
