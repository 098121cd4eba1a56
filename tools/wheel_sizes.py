"""How much a package set downloads: the size of each wheel on PyPI, from PyPI's JSON simple API (no download).

    python tools/wheel_sizes.py --python 313 torch==2.13.0 vllm==0.32.0 nvidia-cublas==13.1.1.3

Each argument is a requirement; the newest wheel that matches it, this CPython and Linux x86-64 counts. Used for the
README's Colab download figure when a full dry-run resolution is not possible (this machine's package mirror lacks
some of torch's CUDA-13 pins). Needs the network and the `packaging` package.
"""

from __future__ import annotations

import argparse
import json
import urllib.request

from packaging.requirements import Requirement
from packaging.utils import parse_wheel_filename


def wheel_files(name: str) -> list[dict]:
    request = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["files"]


def installs_here(tag, python: str) -> bool:
    """Would pip take a wheel with this tag on CPython ``python`` (e.g. "313") on Linux x86-64?"""
    platform_ok = tag.platform == "any" or ("linux" in tag.platform and "x86_64" in tag.platform)
    abi_ok = tag.abi in ("none", f"cp{python}") or (tag.abi == "abi3" and int(tag.interpreter[2:]) <= int(python))
    return platform_ok and abi_ok and tag.interpreter in (f"cp{python}", "py3", "py2") + (
        (tag.interpreter,) if tag.abi == "abi3" else ())


def newest_wheel(requirement: str, python: str) -> tuple[str, int] | None:
    """(file name, bytes) of the newest matching wheel, or None."""
    wanted = Requirement(requirement)
    best = None
    for file in wheel_files(wanted.name):
        if not file["filename"].endswith(".whl"):
            continue
        _, version, _, tags = parse_wheel_filename(file["filename"])
        if version.is_prerelease or version not in wanted.specifier:
            continue
        if any(installs_here(tag, python) for tag in tags) and (best is None or version > best[0]):
            best = (version, file["filename"], file["size"])
    return best[1:] if best else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="313", help="CPython version without the dot (Colab: 313)")
    parser.add_argument("requirements", nargs="+")
    args = parser.parse_args()
    total = 0
    for requirement in args.requirements:
        found = newest_wheel(requirement, args.python)
        print(f"{requirement:32s} {found[1] / 1e6:8.1f} MB  {found[0]}" if found else f"{requirement:32s} not found")
        total += found[1] if found else 0
    print(f"total: {total / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
