"""pytest's start-up hook for the whole repository (tests/ and the notebooks nbval runs)."""


def pytest_configure(config):
    # On a CUDA machine the notebooks take their GPU path: one cell can generate hundreds of reasoning completions or
    # download a distill, far beyond the CPU path's 900 s per cell (pyproject.toml). An explicit larger value stays.
    if getattr(config.option, "nbval_cell_timeout", None) is None:
        return
    from course_utils import gpu_path, hardware

    on_gpu = hardware.detect_device().kind == "cuda"
    config.option.nbval_cell_timeout = gpu_path.cell_timeout(on_gpu, int(config.option.nbval_cell_timeout))
