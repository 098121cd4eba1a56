"""The course as Colab gets it: a non-editable install, with the notebooks opened from somewhere else. Nothing a
notebook or ``course_utils`` reads at run time may come from the repository around the package.

A wheel is built from this checkout once per session (``--no-build-isolation``: nothing is downloaded) and installed
with ``--no-deps`` into a folder put first on ``PYTHONPATH``, on top of the test environment's packages; every check
then runs in a fresh Python process from a temporary directory outside the repository."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.install


def run(code: str, site: Path, cwd: Path, timeout: float = 600, env: dict | None = None):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(site), **(env or {})})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(site folder holding the installed course, a working folder outside the repository)."""
    wheels, site = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("deepseek_hands_on-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True, capture_output=True)
    return site, tmp_path_factory.mktemp("elsewhere")


def test_every_module_imports_from_the_installed_package(installed):
    site, elsewhere = installed
    out = run("""
        import importlib, json, pkgutil
        import course_utils
        names = sorted(m.name for m in pkgutil.iter_modules(course_utils.__path__))
        places = {name: importlib.import_module(f"course_utils.{name}").__file__ for name in names}
        print(json.dumps({"package": course_utils.__file__, "modules": places}))
    """, site, elsewhere)
    found = json.loads(out.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(site)
    assert len(found["modules"]) >= 40
    assert all(Path(path).is_relative_to(site) for path in found["modules"].values())


def test_every_file_the_package_opens_is_inside_it(installed):
    """The checkpoints, what the full recipes trained (the quick mode loads them), the Bento's recipe and its build
    context: each resolved, opened and loaded from the installed package."""
    site, elsewhere = installed
    out = run("""
        import json
        from pathlib import Path
        from course_utils import deploy, r1_zero, toy_reasoner
        opened = [toy_reasoner.checkpoint_path(), toy_reasoner.TRAINED, r1_zero.COMMITTED, deploy.BENTO_FILES]
        for label in ("teacher", *toy_reasoner.TRAINED_NAMES):
            toy_reasoner.load_trained(label)
        for name in ("base", "weak_base", *r1_zero.TRAINED):
            r1_zero.load(name)
        card = r1_zero.trained_card()
        deploy.bentofile_text()
        context = deploy.build_context(Path("context"))
        built = sorted(str(p.relative_to(context)) for p in context.rglob("*") if p.is_file())
        print(json.dumps({"opened": [str(p) for p in opened], "built": built, "runs": sorted(card["runs"])}))
    """, site, elsewhere)
    found = json.loads(out.strip().splitlines()[-1])
    assert all(Path(path).is_relative_to(site) for path in found["opened"])
    assert {"bentofile.yaml", "requirements.txt", "course_utils/bento_service.py",
            "course_utils/toy_r1/model.safetensors"} <= set(found["built"])
    assert found["runs"] == sorted(["rl", "weak_rl", "distilled", "weak_distilled", "rl_language"])


@pytest.mark.parametrize("notebook, quick", [
    ("00_deepseek_family", "0"),
    pytest.param("06_serving_as_a_service", "1", marks=pytest.mark.slow),   # a quick-mode run: the slow lane
])
def test_a_notebook_runs_to_its_end_from_the_installed_package(installed, notebook, quick):
    """Notebook 06 builds a Bento and serves the toy R1 (the quick mode: the same steps, fewer requests); notebook
    00 is the first a learner opens. Each runs from a copy outside the repository, in a kernel that imports the
    installed course."""
    site, elsewhere = installed
    copy = elsewhere / f"{notebook}.ipynb"
    copy.write_text((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())
    run(f"""
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read({str(copy)!r}, as_version=4)
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={{"metadata": {{"path": {str(elsewhere)!r}}}}}).execute()
        out = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
        assert not out, out
        print("ran", len(nb.cells), "cells")
    """, site, elsewhere, timeout=1200, env={"COURSE_QUICK": quick})


def test_the_colab_cell_installs_the_course_from_git(tmp_path):
    """The set-up cell as Colab runs it: its real ``pip install git+URL``, here with a ``file://`` URL of a clone of
    this checkout, into a fresh virtual environment (which sees the test environment's packages through a .pth
    file, so pip finds every dependency installed and downloads nothing: no index, no build isolation)."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "-q", "--detach"], check=True)
    _copy_working_tree(clone)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    fresh_site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                     capture_output=True, text=True, check=True).stdout.strip())
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "pip").exists())
    (fresh_site / "test-environment.pth").write_text(ours + "\n")
    fake = tmp_path / "fake"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text("")
    cell = next(c for c in json.loads((ROOT / "notebooks" / "00_deepseek_family.ipynb").read_text())["cells"]
                if "setup" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    source = source.replace(source.split('REPO_URL = "')[1].split('"')[0], clone.as_uri())
    program = "import google.colab\n" + source + "\nimport course_utils; print('FROM', course_utils.__file__)\n"
    env = {**os.environ, "PYTHONPATH": str(fake), "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    done = subprocess.run([str(python), "-c", program], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    installed_at = Path(done.stdout.split("FROM ")[-1].strip())
    assert installed_at.is_relative_to(fresh_site) and "Colab: the course package" in done.stdout


def _copy_working_tree(clone: Path) -> None:
    """The clone holds the last commit; copy this checkout's tracked and new files over it, so that the test checks
    the working tree (what is about to be committed) and not only what was committed before."""
    import shutil

    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    subprocess.run(["git", "-C", str(clone), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(clone), "-c", "user.name=test", "-c", "user.email=test@example.invalid",
                    "commit", "-q", "-m", "the working tree", "--allow-empty"], check=True)
