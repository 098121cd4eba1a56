"""A shape twin of DeepSeek-R1-Distill-Qwen-1.5B: the distill's architecture and sizes, its special tokens at their
ids and a simplified R1 chat template (the course's: no tool calls), with **random weights**. Its text is noise; its
shapes, memory and speed are the real model's.

It is written, without any download, where a Hugging Face Hub cache would keep the real model, in a cache of its own
(``home()``), so the course's Hub branch (resolve the repo id, size it, start vLLM's engine and server with its chat
template and reasoning parser) runs on it unchanged. Point a process at it with ``environment()``:

    python -m course_utils.twin build            # about 3.5 GB on disk, a minute on 2 cores
    HF_HUB_CACHE=$(python -m course_utils.twin home) HF_HUB_OFFLINE=1 python ...   # what environment() sets

It never goes into the real Hub cache, so a later download of the real distill cannot be confused with it; and
``is_twin`` tells any folder of it by the card it carries.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

REPO = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"
CONFIG_SOURCE = f"https://huggingface.co/{REPO}/blob/main/config.json"

# The distill's config.json as published (CONFIG_SOURCE); the catalog's copy of the sizes is checked against it.
PUBLISHED_CONFIG = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 1536, "initializer_range": 0.02,
    "intermediate_size": 8960, "max_position_embeddings": 131072, "max_window_layers": 21, "model_type": "qwen2",
    "num_attention_heads": 12, "num_hidden_layers": 28, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
    "rope_theta": 10000, "sliding_window": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "use_cache": True, "use_mrope": False, "use_sliding_window": False, "vocab_size": 151936,
}
# generation_config.json as published: DeepSeek's recommended sampling
GENERATION_CONFIG = {"bos_token_id": 151646, "eos_token_id": 151643, "do_sample": True, "temperature": 0.6,
                     "top_p": 0.95}
# The distill's added tokens and their ids (its tokenizer.json; Qwen2.5's first added tokens, renamed by DeepSeek).
# Only BOS and EOS are marked special there; the role tokens, <|EOT|>, <think> and </think> are ordinary added tokens
# ("special": false): they stay in decoded text, where the reasoning parser finds the think tags.
SPECIAL_IDS = {"<｜end▁of▁sentence｜>": 151643, "<｜User｜>": 151644, "<｜Assistant｜>": 151645,
               "<｜begin▁of▁sentence｜>": 151646, "<|EOT|>": 151647}
MARKED_SPECIAL = ("<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>")
THINK_IDS = {"<think>": 151648, "</think>": 151649}

# A much smaller model with the same tokenizer and layout, for tests of the mechanics (seconds, not a minute).
TINY = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 1,
        "num_key_value_heads": 1, "max_window_layers": 2}
CARD = "twin_card.json"


def home() -> Path:
    """The twin's own Hub cache: ``COURSE_TWIN_HOME``, or ``~/.cache/deepseek-hands-on/twin-hub``."""
    default = Path.home() / ".cache" / "deepseek-hands-on" / "twin-hub"
    return Path(os.environ.get("COURSE_TWIN_HOME", default)).expanduser()


def environment(cache: Path | None = None) -> dict[str, str]:
    """The variables that make a process (and every process it starts) find the twin as the Hub model, offline.
    huggingface_hub reads them when it is imported: set them before that, or in a child process's environment."""
    return {"HF_HUB_CACHE": str(cache or home()), "HF_HUB_OFFLINE": "1"}


def repo_folder(cache: Path | None = None) -> Path:
    """Where the Hub cache layout keeps everything of the model: models--owner--name."""
    return Path(cache or home()) / ("models--" + REPO.replace("/", "--"))


def snapshot(cache: Path | None = None) -> Path:
    """The folder the Hub cache layout gives the model: models--owner--name/snapshots/<revision>."""
    repo_dir = repo_folder(cache)
    refs = repo_dir / "refs" / "main"
    revision = refs.read_text().strip() if refs.exists() else ""
    return repo_dir / "snapshots" / revision


def is_twin(folder: str | os.PathLike) -> bool:
    """True for a folder the twin was written into (it carries a card that says its weights are random)."""
    return (Path(folder) / CARD).exists()


def config(tiny: bool = False) -> dict:
    return {**PUBLISHED_CONFIG, **(TINY if tiny else {})}


def tokenizer():
    """A byte-level BPE tokenizer (Qwen2's kind: transformers loads any Qwen2 model's tokenizer as Qwen2Tokenizer,
    which rebuilds it from a BPE vocabulary and merges) with the distill's special tokens at the distill's ids and
    the course's simplified R1 chat template. Its few hundred merges are learnt from the course's own texts, so
    prompts take more tokens than with Qwen's 151k-entry vocabulary; the rest of the ids, up to the first special
    token, are fillers that decode to " tok<id>": what a random model writes reads as the noise it is."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from course_utils import toy_reasoner

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    texts = [toy_reasoner.question(a, b, instruction=True) + "\n" + toy_reasoner.completion(a, b)
             for a in range(100, 1000, 37) for b in range(100, 1000, 53)]
    core.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1000, show_progress=False,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    layout = json.loads(core.to_str())
    vocab = layout["model"]["vocab"]
    first_special = min(SPECIAL_IDS.values())
    vocab.update({f"Ġtok{i}": i for i in range(len(vocab), first_special)})   # Ġ is a space in byte-level
    core = Tokenizer.from_str(json.dumps(layout))
    core.add_tokens([AddedToken(t, special=t in MARKED_SPECIAL, normalized=False) for t in [*SPECIAL_IDS, *THINK_IDS]])
    eos, bos = "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"
    wrapped = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos, pad_token=eos,
                                      chat_template=toy_reasoner.CHAT_TEMPLATE, model_max_length=16384)
    wrapped.add_bos_token = False   # the chat template writes BOS itself
    return wrapped


def random_weights(model_config: dict, seed: int = 0) -> dict:
    """One bf16 tensor per weight of transformers' Qwen2ForCausalLM for this config, drawn as the model's own
    initialisation does (normal, std = initializer_range; norms 1; biases 0). Names and shapes come from the class
    itself, built on the meta device (no memory)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    options = {k: v for k, v in model_config.items() if k not in ("architectures", "model_type", "torch_dtype")}
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.for_model("qwen2", **options))
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, meta in skeleton.state_dict().items():
        if name.endswith("norm.weight"):
            weights[name] = torch.ones(meta.shape, dtype=torch.bfloat16)
        elif name.endswith(".bias"):
            weights[name] = torch.zeros(meta.shape, dtype=torch.bfloat16)
        else:
            values = torch.empty(meta.shape).normal_(0.0, model_config["initializer_range"], generator=generator)
            weights[name] = values.to(torch.bfloat16)
    return weights


def build(cache: Path | None = None, *, tiny: bool = False, seed: int = 0) -> Path:
    """Write the twin into ``cache`` (default ``home()``) in the Hub cache layout and return its snapshot folder.
    Nothing is downloaded. Rebuilt only when its card says something else (size, seed) was built there."""
    from safetensors.torch import save_file

    cache = Path(cache or home())
    card = {"what": f"shape twin of {REPO}", "weights": "random (normal, std 0.02): its text is noise",
            "config_source": CONFIG_SOURCE, "tiny": tiny, "seed": seed}
    revision = hashlib.sha1(json.dumps(card, sort_keys=True).encode()).hexdigest()   # 40 hex, like a commit
    repo_dir = repo_folder(cache)
    folder = repo_dir / "snapshots" / revision
    if (folder / CARD).exists() and (folder / "model.safetensors").exists():
        (repo_dir / "refs" / "main").write_text(revision)
        return folder
    shutil.rmtree(repo_dir, ignore_errors=True)
    folder.mkdir(parents=True)
    model_config = config(tiny)
    save_file(random_weights(model_config, seed), str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(model_config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(GENERATION_CONFIG, indent=2))
    tokenizer().save_pretrained(folder)
    settings = json.loads((folder / "tokenizer_config.json").read_text())
    settings.update(tokenizer_class="LlamaTokenizerFast", unk_token=None)   # as the distill's file says
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2, ensure_ascii=False))
    (folder / CARD).write_text(json.dumps(card, indent=2))
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(revision)   # written last: a half-built twin has no ref
    return folder


def main(argv: list[str]) -> int:
    if argv[:1] == ["home"]:
        print(home())
        return 0
    if argv[:1] == ["build"]:
        folder = build(tiny="--tiny" in argv)
        size = sum(f.stat().st_size for f in folder.iterdir()) / 1e9
        print(f"twin of {REPO} (random weights) in {folder} ({size:.2f} GB)")
        return 0
    print("usage: python -m course_utils.twin build [--tiny] | home", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
