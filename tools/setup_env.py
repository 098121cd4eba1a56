"""Create or update the course's virtual environment in .venv (idempotent: a second run takes a second).

    python3 tools/setup_env.py            # picks cpu / cuda / mac for this machine
    COURSE_FLAVOUR=cpu python3 tools/setup_env.py
    COURSE_FLAVOUR=cuda12 COURSE_VENV=.venv-cuda12 python3 tools/setup_env.py   # make test-cuda12's side environment

Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from course_utils.flavour import (  # noqa: E402
    CPU_UNWANTED,
    CUDA_SETS,
    FLAVOURS,
    NO_SMI_NOTE,
    build_tools_here,
    build_tools_problem,
    capability_problem,
    detect_flavour,
    driver_cuda_version,
    driver_problem,
    gpu_capabilities,
    nvidia_device_without_driver_tools,
)

VENV = ROOT / os.environ.get("COURSE_VENV", ".venv")
PY = VENV / "bin" / "python"
STAMP = VENV / ".course-environment"
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def fingerprint(flavour: str) -> str:
    text = flavour + "".join((ROOT / "requirements" / f).read_text() for f in sorted(os.listdir(ROOT / "requirements")))
    text += (ROOT / "pyproject.toml").read_text()
    return hashlib.sha256(text.encode()).hexdigest()


def reachable(url: str, seconds: float = 5.0) -> bool:
    try:
        urllib.request.urlopen(url, timeout=seconds)
        return True
    except Exception:
        return False


def pip(*args: str) -> None:
    cmd = [str(PY), "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


# JupyterLab asks a new user "get notified about official Jupyter news?" in a pop-up (and would fetch a website to
# find news, offline or not). The course's Jupyter answers no once, for everyone, in the environment's settings.
LAB_OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}


def quiet_jupyterlab(prefix: Path) -> Path:
    """Write JupyterLab's settings overrides into the environment (``share/jupyter/lab/settings``)."""
    import json

    path = prefix / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(LAB_OVERRIDES, indent=1) + "\n")
    return path


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036  (this script runs under whatever python3 the user has)
        print(f"Python 3.11 or newer is needed; this is {sys.version.split()[0]}. "
              "Run with a newer python3, e.g. `make PY=python3.11 test`.", file=sys.stderr)
        return 1
    try:
        flavour = detect_flavour(os.environ.get("COURSE_FLAVOUR"))
    except ValueError as err:
        print(f"Cannot set up here: {err}", file=sys.stderr)
        return 1
    if flavour in CUDA_SETS and (problem := driver_problem(driver_cuda_version(), flavour)):
        print(f"Cannot set up the {flavour} flavour: {problem}", file=sys.stderr)
        return 1
    if flavour in CUDA_SETS and (problem := capability_problem(gpu_capabilities())):
        print(f"Cannot set up the {flavour} flavour: {problem}", file=sys.stderr)
        return 1
    if flavour in CUDA_SETS and (problem := build_tools_problem(*build_tools_here())):
        print(f"Warning: {problem}", file=sys.stderr)
    if flavour == "cpu" and not os.environ.get("COURSE_FLAVOUR") and nvidia_device_without_driver_tools():
        print(f"Note: {NO_SMI_NOTE}", file=sys.stderr)
    wanted = fingerprint(flavour)
    if STAMP.exists() and STAMP.read_text() == wanted and PY.exists():
        quiet_jupyterlab(VENV)
        print(f"Environment {VENV.name} is up to date ({flavour} flavour).")
        return 0

    started = time.time()
    print(f"Setting up {VENV.name} with the {flavour} flavour ({FLAVOURS[flavour]}); a cold install takes a few "
          "minutes.")
    if not PY.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    extra = []
    if flavour == "cpu" and reachable(TORCH_CPU_INDEX):
        extra = ["--extra-index-url", TORCH_CPU_INDEX]   # where torch's +cpu wheels live
    try:
        pip("install", "--progress-bar", "on", *extra, "-r", str(ROOT / FLAVOURS[flavour]))
    except subprocess.CalledProcessError:
        print("\nInstalling the packages failed (see pip's message above). If pip could not find "
              "torch==2.13.0+cpu, PyTorch's CPU index is unreachable: download the wheel for your Python from "
              f"{TORCH_CPU_INDEX}/torch/ and `pip install` it into {VENV.name}, then run this again.", file=sys.stderr)
        return 1
    if flavour == "cpu":
        pip("uninstall", "--yes", *CPU_UNWANTED)
    pip("install", "--no-deps", "-e", str(ROOT))
    quiet_jupyterlab(VENV)
    STAMP.write_text(wanted)
    print(f"Environment ready in {time.time() - started:.0f} s. Check it with: {VENV.name}/bin/python -m "
          "course_utils.doctor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
