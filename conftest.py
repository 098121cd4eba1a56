"""pytest's start-up hooks for the whole repository (tests/ and the notebooks nbval runs).

`make test` runs the suite in two worker processes (pytest-xdist, ``--dist loadfile``: each notebook, like each test
file, stays whole in one worker). On a 2-core machine each worker then gets one core: its torch threads, and the
vLLM engines its notebooks start (bound to that core), so a notebook that trains and one that waits on a server
share the machine instead of fighting over both cores. Every trained figure the notebooks assert holds with one
thread as with two (benchmarks/robustness.py measures seeds 0-4 x 1-2 threads).
"""

import os

import pytest


def _one_share_of_the_cores() -> None:
    """In an xdist worker: this worker's share of the cores, before anything loads torch or starts a kernel (the
    notebooks' kernels and servers inherit the environment). A value set by hand wins."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2:
        return
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    per_worker = max(1, len(cores) // count)
    index = int(worker.removeprefix("gw")) % count
    mine = cores[index * per_worker:(index + 1) * per_worker] or cores[:1]
    os.environ.setdefault("OMP_NUM_THREADS", str(len(mine)))
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, mine)))


_one_share_of_the_cores()


def _cpu_path_only() -> None:
    """On a machine with an NVIDIA GPU the suite checks the CPU path (course_utils.gpu_path.test_suite_environment
    says why); set before anything imports torch or vLLM, so that the notebooks' kernels inherit it."""
    import importlib.metadata

    from course_utils import flavour, gpu_path

    try:
        importlib.metadata.version("vllm-cpu")
        cpu_build = True
    except importlib.metadata.PackageNotFoundError:
        cpu_build = False
    os.environ.update(gpu_path.test_suite_environment(flavour.has_nvidia_gpu(), cpu_build))


_cpu_path_only()


# The longest first, so that two workers finish together (minutes measured on 2 cores; see benchmarks/README.md).
LONGEST_FIRST = ["notebooks/05_r1_zero_rl.ipynb", "notebooks/02_distillation.ipynb", "notebooks/01_moe_routing.ipynb",
                 "tests/test_installed_package.py", "tests/test_endpoint_servers.py",
                 "notebooks/06_serving_as_a_service.ipynb", "notebooks/04_examining_reasoning.ipynb",
                 "notebooks/07_latent_attention.ipynb", "notebooks/03_serving_distills.ipynb",
                 "tests/test_robustness.py", "tests/test_deploy.py", "tests/test_serving.py",
                 "tests/test_notebooks_without_vllm.py", "tests/test_twin.py"]


def pytest_collection_modifyitems(config, items):
    """Whole notebooks carry the ``notebook`` marker (``make check`` leaves them out); files run longest first."""
    for item in items:
        if item.nodeid.split("::")[0].endswith(".ipynb"):
            item.add_marker(pytest.mark.notebook)
    if os.environ.get("COURSE_NO_VLLM") == "1":   # the CUDA build of vLLM with its GPU hidden: no engine can start
        skip = pytest.mark.skip(reason="starts a vLLM engine; with the GPU hidden from the suite, the CUDA build of "
                                       "vLLM cannot run (make gpu-check runs the GPU path)")
        for item in items:
            if item.get_closest_marker("server"):
                item.add_marker(skip)
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))   # stable: order within a file kept
