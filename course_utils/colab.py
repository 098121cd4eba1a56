"""The logic of every notebook's set-up cell: on Colab, install the notebook's extras pinned for this runtime (vLLM
with the torch its GPU driver can run), and stop with what to do when the runtime must restart to use them;
everywhere, say which mode (full or quick) this run is in.

Standard library only (it runs right after the course package is installed, before anything else is imported).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from collections.abc import Callable

from course_utils import quick
from course_utils.flavour import colab_packages, driver_cuda_version, has_nvidia_gpu

WATCHED = ("torch", "numpy", "transformers")   # packages a runtime may have imported before this cell ran


def loaded_versions(modules: dict | None = None) -> dict[str, str]:
    """Versions of the watched packages this Python process has already imported."""
    modules = sys.modules if modules is None else modules
    return {name: str(modules[name].__version__) for name in WATCHED
            if name in modules and hasattr(modules[name], "__version__")}


def stale_modules(before: dict[str, str], installed: Callable[[str], str]) -> list[str]:
    """Packages whose installed version no longer matches the one already imported (local tags like +cu128 aside)."""
    local = lambda v: v.split("+")[0]   # noqa: E731
    return [f"{name} {version} -> {installed(name)}" for name, version in before.items()
            if local(installed(name)) != local(version)]


def install_extras(extras: list[str]) -> None:
    packages, chosen = colab_packages(extras, has_nvidia_gpu(), driver_cuda_version())
    if chosen:
        print(chosen, flush=True)
    if not packages:
        return
    before = loaded_versions()
    subprocess.run([sys.executable, "-m", "pip", "install", *packages], check=True)   # pip's progress stays visible
    if stale := stale_modules(before, importlib.metadata.version):
        raise SystemExit(f"Restart needed: this runtime had already imported {', '.join(stale)}. Use Runtime > "
                         "Restart session, then run the notebook from the top (the packages stay installed).")


def set_up(extras: list[str]) -> None:
    """The set-up cell: on Colab the extras (``install_extras``); everywhere one line on where and in which mode this
    runs. (Importing course_utils, as the cell does before anything imports torch, also sets torch's OpenMP spin.)"""
    if "google.colab" in sys.modules:
        install_extras(extras)
        print("Colab: the course package and this notebook's extras are installed.")
    else:
        print("Not on Colab: nothing to install.")
    print(quick.banner())
