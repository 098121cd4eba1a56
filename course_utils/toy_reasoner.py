"""A toy R1: a tiny Llama model that adds 3-digit numbers by thinking step by step, in R1's format.

Everything about it is real except its size: a ``transformers`` LlamaForCausalLM (R1-Distill-Llama's class),
a tokenizer with DeepSeek's special tokens, a chat template whose generation prompt ends in
``<｜Assistant｜><think>\\n`` like the R1 distills', and a generation config with DeepSeek's recommended
temperature 0.6 and top-p 0.95. vLLM serves it.

``checkpoint_path()`` gives a ready checkpoint: the copy committed with the course (``course_utils/toy_r1``), or,
if that is missing, one built into a cache folder by ``build()`` (about 1.5 minutes on 2 CPU cores). ``build()``
runs the recipe of notebook 02: train a teacher on programmatic traces, let it write traces, keep the correct ones
(rejection sampling), fine-tune a smaller student on them (sequence-level distillation, as DeepSeek did).

    python -m course_utils.toy_reasoner build [--out DIR]
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from course_utils.distill import kd_loss
from course_utils.reasoning import BOXED_INSTRUCTION, extract_boxed, split_reasoning

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
PAD, UNK = "<｜▁pad▁｜>", "<｜unk｜>"
THINK_START, THINK_END = "<think>", "</think>"
TOKEN_PATTERN = r"\d|[A-Za-z]+|\s|[^\sA-Za-z\d]"   # one token per digit, word, space or symbol
WORDS = ("What is write carry final the answer Please reason step by and put your within boxed " +
         "You are a helpful assistant").split()
SYMBOLS = list("0123456789+-=?:,.{}\\") + [" ", "\n"]
COMMITTED = Path(__file__).resolve().parent / "toy_r1"

# Renders like the R1 distills' template: system text after BOS, <｜User｜>, <｜Assistant｜>, earlier answers without
# their thinking, and a generation prompt that opens the thinking.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}"
    "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}"
    "{% elif message['role'] == 'assistant' %}<｜Assistant｜>{{ message['content'].split('</think>')[-1] | trim }}"
    "<｜end▁of▁sentence｜>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}"
)


# ---------------------------------------------------------------- the task


def question(a: int, b: int, instruction: bool = False) -> str:
    """The user's message. DeepSeek's instruction, when asked for, goes first: then the question sits at the same
    distance from the answer in both forms, which a model this small learns far more reliably."""
    return (f"{BOXED_INSTRUCTION} " if instruction else "") + f"What is {a} + {b}?"


# The column method's words in two languages (German in ASCII: "behalte" = "carry"). The toy R1 writes English;
# notebook 05's corpus has authors who write German, or switch language from line to line.
COLUMN_WORDS = {"English": {"write": "write", "carry": "carry", "final": "final carry"},
                "German": {"write": "schreibe", "carry": "behalte", "final": "am Ende behalte"}}


def column_trace(a: int, b: int, forget_carry_at: int | None = None, language: str = "English",
                 rng: random.Random | None = None) -> str:
    """Column addition of two 3-digit numbers, lowest digit first, one line per digit with its carry: the toy R1's
    reasoning. In English, German or both ("mixed": each line's language drawn with ``rng``), optionally with the
    carry out of one column dropped (a careless author's slip, in notebook 05's corpus)."""
    rng = rng or random.Random(0)
    pick = (lambda: rng.choice(list(COLUMN_WORDS))) if language == "mixed" else (lambda: language)
    lines, carry = [], 0
    for i, (x, y) in enumerate(zip(str(a).zfill(3)[::-1], str(b).zfill(3)[::-1], strict=True)):
        s = int(x) + int(y) + carry
        out = 0 if i == forget_carry_at else s // 10
        words = COLUMN_WORDS[pick()]
        lines.append(f"{x}+{y}+{carry}={s}: {words['write']} {s % 10}, {words['carry']} {out}")
        carry = out
    if carry:
        lines.append(f"{COLUMN_WORDS[pick()]['final']} {carry}")
    return "\n".join(lines)


def completion(a: int, b: int, with_trace: bool = True, thinking: str | None = None) -> str:
    """What the assistant writes after the prompt's ``<think>\\n``: the thinking, ``</think>``, the boxed answer."""
    body = column_trace(a, b) if with_trace else ""
    if thinking is not None:
        body = thinking
    return f"{body}\n{THINK_END}\n\n\\boxed{{{a + b}}}"


_STEP = re.compile(r"(\d)\+(\d)\+(\d)=(\d+): write (\d), carry (\d)")


def check_steps(reasoning: str) -> list[dict]:
    """Re-do each line of a toy trace: is its sum right, its written digit and carry right, and does it take the
    carry the line before gave? ("final carry" lines are right when they repeat the last carry, which is 1.)"""
    rows, carry = [], 0
    for line in (raw.strip() for raw in reasoning.splitlines() if raw.strip()):
        step = _STEP.fullmatch(line)
        if step:
            x, y, c, total, digit, out = map(int, step.groups())
            right = c == carry and total == x + y + c and digit == total % 10 and out == total // 10
            rows.append({"line": line, "what": f"column {len(rows) + 1}: {x} + {y} + carry {c}", "right": right})
            carry = out
        elif line.startswith("final carry"):
            rows.append({"line": line, "what": "the last carry becomes the leading digit",
                         "right": line == f"final carry {carry}" and carry == 1})
        else:
            rows.append({"line": line, "what": "not a step of the method", "right": False})
    return rows


def problems(n: int, seed: int, exclude: set | None = None) -> list[tuple[int, int]]:
    rng = random.Random(seed)
    out, seen = [], set(exclude or ())
    while len(out) < n:
        pair = (rng.randint(100, 999), rng.randint(100, 999))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def held_out_problems(n: int = 500) -> list[tuple[int, int]]:
    """The fixed evaluation set: never used for training (training problems exclude them)."""
    return problems(n, seed=12345)


# ---------------------------------------------------------------- tokenizer and model


def word_level_tokenizer(tokens: list[str], pattern: str, special: list[str], added: list[str], **options):
    """A tokenizer with one id per entry of ``tokens`` (ids in that order; the first two are PAD and UNK), text split
    by the regex ``pattern``, then the ``special`` tokens (dropped when decoding) and the ``added`` ones (kept).
    ``options`` go to ``PreTrainedTokenizerFast`` (its bos/eos tokens, chat template, lengths)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.WordLevel({t: i for i, t in enumerate(tokens)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    core.decoder = decoders.Fuse()   # tokens carry their own spaces: decoding is plain concatenation
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token=PAD, unk_token=UNK, padding_side="left", **options)


def build_tokenizer():
    tokenizer = word_level_tokenizer([PAD, UNK, *SYMBOLS, *WORDS], TOKEN_PATTERN, [BOS, EOS, USER, ASSISTANT],
                                     [THINK_START, THINK_END], bos_token=BOS, eos_token=EOS,
                                     chat_template=CHAT_TEMPLATE, model_max_length=256)
    tokenizer.add_bos_token = False   # the chat template writes BOS itself
    return tokenizer


def model_config(tokenizer, hidden: int, layers: int, heads: int, kv_heads: int):
    """A Llama config, the architecture of R1-Distill-Llama-8B/70B. (Not Qwen2: transformers' AutoTokenizer
    replaces any Qwen2 model's tokenizer with Qwen's own byte-level one, which would not be our tokenizer.)"""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=64 * math.ceil(len(tokenizer) / 64), hidden_size=hidden, intermediate_size=4 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
        max_position_embeddings=256, rope_theta=10000.0, tie_word_embeddings=True, attention_bias=False,
        mlp_bias=False, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, torch_dtype="float32",
    )


def new_model(tokenizer, hidden: int, layers: int = 2, heads: int | None = None, kv_heads: int = 1, seed: int = 0):
    """A fresh LlamaForCausalLM. Heads of 32 dimensions: the smallest vLLM's CPU attention supports."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    heads = heads or hidden // 32
    return LlamaForCausalLM(model_config(tokenizer, hidden, layers, heads, min(kv_heads, heads)))


def prompt_text(tokenizer, q: str, system: str | None = None) -> str:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


# ---------------------------------------------------------------- data


@dataclass
class Examples:
    input_ids: torch.Tensor   # [n, length], right-padded
    labels: torch.Tensor      # the same, with -100 on the prompt and the padding: loss on the answer only


def encode_examples(tokenizer, prompts: list[str], answers: list[str]) -> Examples:
    rows, label_rows = [], []
    for p, a in zip(prompts, answers, strict=True):
        p_ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        a_ids = tokenizer(a + EOS, add_special_tokens=False)["input_ids"]
        rows.append(p_ids + a_ids)
        label_rows.append([-100] * len(p_ids) + a_ids)
    length = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (length - len(r)) for r in rows])
    labels = torch.tensor([r + [-100] * (length - len(r)) for r in label_rows])
    return Examples(ids, labels)


def task_examples(tokenizer, pairs, with_trace=True, thinking: list[str] | None = None, seed: int = 0) -> Examples:
    """Prompts (half of them with DeepSeek's boxed instruction) and their completions."""
    rng = random.Random(seed)
    prompts = [prompt_text(tokenizer, question(a, b, instruction=rng.random() < 0.5)) for a, b in pairs]
    answers = [completion(a, b, with_trace, None if thinking is None else thinking[i])
               for i, (a, b) in enumerate(pairs)]
    return encode_examples(tokenizer, prompts, answers)


# ---------------------------------------------------------------- training and evaluation


@dataclass
class TrainSettings:
    steps: int
    batch_size: int = 16          # small batches, many updates: on this task that learns fastest per second
    lr: float = 3e-3
    warmup: int = 20
    seed: int = 0
    temperature: float = 2.0      # for logit distillation
    alpha: float = 0.5            # weight of the soft loss in logit distillation


def train(model, data: Examples, settings: TrainSettings, teacher=None, progress: bool = True,
          callback=None, every: int = 200) -> dict:
    """AdamW, linear warm-up then cosine decay to zero (the decay matters for exact answers).
    With a ``teacher``: token-level logit distillation (``kd_loss``) on the answer tokens.
    ``callback(step)`` runs every ``every`` steps and at the end (e.g. to measure accuracy as training goes)."""
    from course_utils.progress import bar

    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=0.01)
    warm = settings.warmup
    decay = max(1, settings.steps - warm)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / decay)))
    model.train()
    losses, started = [], time.time()
    # mininterval: few updates, because a notebook kernel drops output messages beyond ~1000 per busy cell
    steps = bar(range(1, settings.steps + 1), desc="training", disable=not progress, mininterval=2.0)
    for step in steps:
        rows = torch.randint(0, len(data.input_ids), (settings.batch_size,), generator=generator)
        ids, labels = data.input_ids[rows].to(model.device), data.labels[rows].to(model.device)
        used = int((labels != -100).any(0).nonzero().max()) + 1   # drop all-padding columns
        ids, labels = ids[:, :used], labels[:, :used]
        logits = model(input_ids=ids).logits[:, :-1]
        targets = labels[:, 1:]
        if teacher is None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)
        else:
            with torch.no_grad():
                teacher_logits = teacher(input_ids=ids).logits[:, :-1]
            loss = kd_loss(logits, teacher_logits, targets, temperature=settings.temperature, alpha=settings.alpha)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        losses.append(loss.item())
        if callback and (step % every == 0 or step == settings.steps):
            model.eval()
            callback(step)
            model.train()
    model.eval()
    return {"loss": losses, "seconds": time.time() - started}


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], max_new_tokens: int = 96, batch_size: int = 250,
             do_sample: bool = False, temperature: float = 0.6, top_p: float = 0.95, seed: int = 0) -> list[str]:
    """Completions (text after the prompt, special tokens removed) with transformers' ``generate``."""
    model.eval()
    torch.manual_seed(seed)
    out = []
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(model.device)
        options = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
        ids = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, top_k=None, **options)
        out += tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def grade(completions: list[str], pairs) -> dict:
    """Accuracy by the boxed answer, and the mean length of the thinking in characters."""
    right = [extract_boxed(c) == str(a + b) for c, (a, b) in zip(completions, pairs, strict=True)]
    thinking = [split_reasoning(c)[0] for c in completions]
    return {"accuracy": sum(right) / len(right), "correct": right,
            "mean_thinking_chars": sum(map(len, thinking)) / len(thinking)}


def evaluate(model, tokenizer, pairs=None, instruction: bool = False, **generate_options) -> dict:
    pairs = pairs or held_out_problems()
    prompts = [prompt_text(tokenizer, question(a, b, instruction)) for a, b in pairs]
    completions = generate(model, tokenizer, prompts, **generate_options)
    result = grade(completions, pairs)
    result["completions"] = completions
    return result


# ---------------------------------------------------------------- the recipe and the checkpoint


@dataclass
class Recipe:
    """Sizes and budgets of the toy R1 pipeline (fixed step counts, so a rebuild gives the same weights)."""

    teacher_hidden: int = 96
    teacher_layers: int = 3
    teacher_steps: int = 1200
    student_hidden: int = 64
    student_layers: int = 3
    student_steps: int = 1500     # 900 sat on an edge: one seed/thread setting stalled at 9% (cosine decay too soon)
    train_problems: int = 30000   # fresh problems: 1,200 steps x 16 see each about once (6,000 were memorised)
    trace_problems: int = 3000
    seed: int = 0


def train_teacher(tokenizer, recipe: Recipe, progress=True):
    pairs = problems(recipe.train_problems, seed=recipe.seed + 1, exclude=set(held_out_problems()))
    teacher = new_model(tokenizer, recipe.teacher_hidden, recipe.teacher_layers, seed=recipe.seed)
    log = train(teacher, task_examples(tokenizer, pairs, seed=recipe.seed), TrainSettings(recipe.teacher_steps),
                progress=progress)
    return teacher, log


def student_settings(recipe: Recipe) -> TrainSettings:
    """The students' training run: the recipe's steps, seeded apart from the teacher (seed + 3)."""
    return TrainSettings(recipe.student_steps, seed=recipe.seed + 3)


def trace_problems(recipe: Recipe) -> list[tuple[int, int]]:
    """The new problems the teacher writes solutions for: none held out, none it was trained on."""
    exclude = set(held_out_problems()) | set(problems(recipe.train_problems, seed=recipe.seed + 1))
    return problems(recipe.trace_problems, seed=recipe.seed + 2, exclude=exclude)


def keep_right(pairs, completions: list[str]) -> list[tuple[tuple[int, int], str]]:
    """Rejection sampling: (problem, thinking) of each completion whose boxed answer is the right sum."""
    return [(pair, split_reasoning(c)[0]) for pair, c in zip(pairs, completions, strict=True)
            if extract_boxed(c) == str(pair[0] + pair[1])]


def teacher_traces(teacher, tokenizer, recipe: Recipe) -> tuple[list, list[str], float]:
    """The teacher writes a solution for each new problem; keep those whose boxed answer is right
    (rejection sampling, as for R1's 600k reasoning samples). Returns (pairs, thinking texts, kept fraction)."""
    pairs = trace_problems(recipe)
    completions = generate(teacher, tokenizer, [prompt_text(tokenizer, question(a, b)) for a, b in pairs])
    kept = keep_right(pairs, completions)
    return [p for p, _ in kept], [t for _, t in kept], len(kept) / len(pairs)


def save_checkpoint(model, tokenizer, path: str | Path, card: dict | None = None) -> Path:
    from transformers import GenerationConfig

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    GenerationConfig(do_sample=True, temperature=0.6, top_p=0.95, max_new_tokens=128,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id).save_pretrained(path)
    if card:
        (path / "toy_r1_card.json").write_text(json.dumps(card, indent=1))
    return path


def build(out: str | Path, recipe: Recipe | None = None, progress: bool = True) -> Path:
    """Teacher -> traces -> student (sequence-level distillation) -> checkpoint at ``out``."""
    recipe = recipe or Recipe()
    started = time.time()
    tokenizer = build_tokenizer()
    teacher, _ = train_teacher(tokenizer, recipe, progress)
    pairs, thinking, kept = teacher_traces(teacher, tokenizer, recipe)
    student = new_model(tokenizer, recipe.student_hidden, recipe.student_layers, seed=recipe.seed + 3)
    train(student, task_examples(tokenizer, pairs, thinking=thinking, seed=recipe.seed + 3),
          student_settings(recipe), progress=progress)
    accuracy = evaluate(student, tokenizer)["accuracy"]
    card = {"recipe": asdict(recipe), "teacher_traces_kept": kept, "held_out_accuracy_greedy": accuracy,
            "student_parameters": sum(p.numel() for p in student.parameters()),
            "build_seconds": round(time.time() - started, 1), "torch": torch.__version__}
    return save_checkpoint(student, tokenizer, out, card)


# What notebook 02's full recipe trained besides the toy R1 itself (student (b), COMMITTED): its teacher and the two
# other students. The quick mode loads them instead of training for minutes (run_plans.notebook_02).
TRAINED = Path(__file__).resolve().parent / "toy_r1_recipe"
TRAINED_NAMES = {"teacher": "teacher", "(a) answers only": "answers_only", "(c) teacher's logits (KD)": "logits"}


def students_data(tokenizer, pairs, thinking, recipe: Recipe) -> dict:
    """Notebook 02's three students' training data: (a) answers only, (b) the teacher's kept traces, (c) the same
    traces with the teacher's logits as targets (the teacher is added by the caller)."""
    seed = student_settings(recipe).seed
    traces = task_examples(tokenizer, pairs, thinking=thinking, seed=seed)
    return {"(a) answers only": task_examples(tokenizer, pairs, with_trace=False, seed=seed),
            "(b) teacher's traces (SFT)": traces, "(c) teacher's logits (KD)": traces}


def build_recipe(out: str | Path = TRAINED, recipe: Recipe | None = None, progress: bool = True) -> dict:
    """Notebook 02 part 2 in full, as the notebook runs it: the teacher, its rejection-sampled traces, and students
    (a), (b) and (c). Saves the teacher and students (a) and (c) under ``out`` (student (b) is the toy R1,
    ``COMMITTED``, built by ``build``); returns their held-out accuracy."""
    recipe = recipe or Recipe()
    started = time.time()
    tokenizer = build_tokenizer()
    teacher, _ = train_teacher(tokenizer, recipe, progress)
    pairs, thinking, kept = teacher_traces(teacher, tokenizer, recipe)
    models = {"teacher": teacher}
    for label, data in students_data(tokenizer, pairs, thinking, recipe).items():
        models[label] = new_model(tokenizer, recipe.student_hidden, recipe.student_layers, seed=recipe.seed + 3)
        train(models[label], data, student_settings(recipe), teacher=teacher if "(c)" in label else None,
              progress=progress)
    accuracy = {label: evaluate(model, tokenizer)["accuracy"] for label, model in models.items()}
    card = {"recipe": asdict(recipe), "teacher_traces_kept": kept, "held_out_accuracy_greedy": accuracy,
            "build_seconds": round(time.time() - started, 1), "torch": torch.__version__}
    for label, name in TRAINED_NAMES.items():
        save_checkpoint(models[label], tokenizer, Path(out) / name, card if label == "teacher" else None)
    return accuracy


def load_trained(label: str):
    """A model notebook 02's full recipe trained: "teacher", one of its students by its label in the notebook
    ("(a) answers only", "(b) teacher's traces (SFT)": the toy R1 itself, "(c) teacher's logits (KD)")."""
    if label.startswith("(b)"):
        return load(COMMITTED)[0]
    if label not in TRAINED_NAMES:
        raise ValueError(f"no trained model {label!r}; there are: teacher, {', '.join(TRAINED_NAMES)}")
    return load(TRAINED / TRAINED_NAMES[label])[0]


def cache_dir() -> Path:
    return Path(os.environ.get("DEEPSEEK_COURSE_CACHE", Path.home() / ".cache" / "deepseek-hands-on")) / "toy_r1"


def checkpoint_path(rebuild: bool = False) -> Path:
    """Directory of a ready toy R1 checkpoint: the committed one, else the cache, else built now (minutes)."""
    if not rebuild and (COMMITTED / "config.json").exists():
        return COMMITTED
    target = cache_dir()
    if rebuild or not (target / "config.json").exists():
        print(f"Building the toy R1 checkpoint into {target} (a few minutes on a CPU)...")
        build(target)
    return target


def load(path: str | Path | None = None, device="cpu"):
    """(model, tokenizer) from a checkpoint directory (default: ``checkpoint_path()``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path or checkpoint_path())
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"no checkpoint at {path}: "
                                f"run `python -m course_utils.toy_reasoner build --out {path}`")
    return AutoModelForCausalLM.from_pretrained(path).to(device).eval(), AutoTokenizer.from_pretrained(path)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Build the toy R1 checkpoint (build), or the teacher and the other "
                                                 "students notebook 02's quick mode loads (build-recipe).")
    parser.add_argument("command", choices=["build", "build-recipe"])
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.command == "build":
        print(f"checkpoint written to {build(args.out or COMMITTED)}")
    else:
        print(f"written to {args.out or TRAINED}: held-out accuracy {build_recipe(args.out or TRAINED)}")
