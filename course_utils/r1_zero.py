"""A toy R1-Zero: a tiny base model, the R1-Zero prompt template, rule-based rewards, and GRPO training.

The task is notebook 02's (add two 3-digit numbers), so that reinforcement learning and distillation can be compared
on the same model and problems, as the R1 paper's Table 6 did. The base model is pretrained on plain text documents
written in the R1-Zero template by "authors" of mixed care: some work the sum column by column (a few of them forget
a carry), most write the answer straight away, some ignore the tags. Like V3-Base, it then *sometimes* answers right
in the template; reinforcement learning with rule-based rewards must find out which of its habits pay.
"""

from __future__ import annotations

import copy
import json
import random
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from course_utils import grpo
from course_utils import toy_reasoner as toy

# The R1 paper's Table 1 template ("prompt" is replaced by the question).
TEMPLATE = ("A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
            "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
            "answer. The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> "
            "tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
            "User: {question}. Assistant:")
TAGS = ("<think>", "</think>", "<answer>", "</answer>")
EOS = toy.EOS
# A word carries the space before it (" carry" is one token), as in byte-level BPE: it halves the template's length.
TOKEN_PATTERN = r" ?[A-Za-z]+|\d|\s|[^\sA-Za-z\d]"
_FORMAT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>\s*(.*?)\s*</answer>\s*", re.DOTALL)

# What the authors of the base corpus write after "Assistant:", and how often (shares of the documents).
STYLES = {"column": 0.5, "column, a carry forgotten": 0.1, "answer straight away": 0.35, "no tags": 0.05}


# ---------------------------------------------------------------- tokenizer, documents, rewards


def build_tokenizer():
    column_words = " ".join(w for language in toy.COLUMN_WORDS.values() for w in language.values())
    words = sorted(set(re.findall(r"[A-Za-z]+", f"{TEMPLATE} What is The answer {column_words}")))
    return toy.word_level_tokenizer([toy.PAD, toy.UNK, *toy.SYMBOLS, *words, *(" " + w for w in words)], TOKEN_PATTERN,
                                    [EOS], TAGS, eos_token=EOS, model_max_length=192)


def prompt(a: int, b: int) -> str:
    return TEMPLATE.format(question=f"What is {a} + {b}?")


# Most column-method authors write English, some German, a few switch language from line to line.
LANGUAGES = {"English": 0.7, "German": 0.2, "mixed": 0.1}
GERMAN_WORDS = {"schreibe", "behalte", "am", "Ende"}


def carries(a: int, b: int) -> list[int]:
    """The carry out of each column, lowest column first."""
    out, carry = [], 0
    for x, y in zip(str(a)[::-1], str(b)[::-1], strict=True):
        carry = (int(x) + int(y) + carry) // 10
        out.append(carry)
    return out


def traced_sum(a: int, b: int, forget_carry_at: int | None = None) -> int:
    """The answer the (possibly slipped) column trace arrives at."""
    digits, carry = [], 0
    for i, (x, y) in enumerate(zip(str(a)[::-1], str(b)[::-1], strict=True)):
        s = int(x) + int(y) + carry
        digits.append(s % 10)
        carry = 0 if i == forget_carry_at else s // 10
    return int(("1" if carry else "") + "".join(map(str, digits[::-1])))


def completion(a: int, b: int, style: str, rng: random.Random) -> str:
    """A document's text after ``Assistant:``, in one of the corpus STYLES (the column styles in a language drawn
    from LANGUAGES)."""
    if style.startswith("column"):
        language = rng.choices(list(LANGUAGES), list(LANGUAGES.values()))[0]
        slips = [i for i, c in enumerate(carries(a, b)) if c]
        slip = rng.choice(slips) if style == "column, a carry forgotten" and slips else None
        trace = toy.column_trace(a, b, slip, language, rng)
        return f" <think>\n{trace}\n</think> <answer> {traced_sum(a, b, slip)} </answer>"
    if style == "answer straight away":
        return f" <think>\n</think> <answer> {a + b} </answer>"
    if style == "no tags":
        return f" The answer is {a + b}."
    raise ValueError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")


def corpus(pairs, seed: int = 0, styles: dict[str, float] = STYLES) -> list[tuple[str, str]]:
    """(prompt, completion) documents, each in a style drawn with the given shares."""
    rng = random.Random(seed)
    names, weights = list(styles), list(styles.values())
    return [(prompt(a, b), completion(a, b, rng.choices(names, weights)[0], rng)) for a, b in pairs]


def parse(text: str) -> tuple[str, str] | None:
    """(thinking, answer) of a completion in the template's format, else None."""
    match = _FORMAT.fullmatch(text)
    return (match.group(1).strip(), match.group(2)) if match else None


def format_reward(text: str) -> float:
    """1 when the completion is exactly ``<think> ... </think> <answer> ... </answer>`` (R1-Zero's format reward)."""
    return 1.0 if parse(text) else 0.0


def accuracy_reward(text: str, gold: int) -> float:
    """1 when the answer in the tags is the right number (a rule, no reward model: R1-Zero's accuracy reward)."""
    parsed = parse(text)
    return 1.0 if parsed and parsed[1] == str(gold) else 0.0


def reward(text: str, gold: int) -> float:
    """R1-Zero's reward: accuracy plus format, both checked by rules."""
    return accuracy_reward(text, gold) + format_reward(text)


def thinking_words(text: str) -> list[str]:
    """The words (not numbers or symbols) of a completion's thinking; of the whole text if it has no format."""
    parsed = parse(text)
    return re.findall(r"[A-Za-z]+", parsed[0] if parsed else text)


def english_share(text: str) -> float:
    """The share of the thinking's words that are English (1.0 when it has no words)."""
    words = thinking_words(text)
    return 1 - sum(w in GERMAN_WORDS for w in words) / len(words) if words else 1.0


def language_consistency_reward(text: str, gold: int) -> float:
    """R1's fix for language mixing (R1 paper, section 2.3.2): add the share of target-language words in the
    thinking to the reward (here the target is English, the language of the question)."""
    return reward(text, gold) + english_share(text)


def describe(text: str) -> str:
    """Which habit a completion shows: the column method, an answer with no working, or no format."""
    parsed = parse(text)
    if not parsed:
        return "no format"
    return "column method" if re.search(r"\b(write|schreibe) \d", parsed[0]) else "no working"


# ---------------------------------------------------------------- the base model


@dataclass
class Settings:
    """Sizes and budgets of the toy R1-Zero (CPU defaults; ``gpu()`` gives the larger toy)."""

    hidden: int = 96
    layers: int = 3
    pretrain_steps: int = 2400
    weak_at: int = 600            # a snapshot from before the column method works: the "weak base"
    pretrain_documents: int = 30000
    group_size: int = 8           # G completions per prompt
    prompts_per_step: int = 16
    rl_steps: int = 40
    rl_lr: float = 5e-4
    epsilon: float = 0.2
    beta: float = 0.04            # DeepSeekMath's KL weight
    temperature: float = 1.0      # sampling temperature of the rollouts
    max_new_tokens: int = 72
    distill_steps: int = 600      # supervised steps of 16 teacher traces: fewer seconds than the RL run here
    teacher_problems: int = 2000
    seed: int = 0

    @classmethod
    def gpu(cls, **changes) -> Settings:
        # More pretraining than the CPU toy (not measured on a GPU yet): on a CPU the column method did not always
        # appear within 2,400 steps (see check_base).
        return cls(**{"hidden": 128, "layers": 4, "pretrain_steps": 6000, "rl_steps": 150, "distill_steps": 2000,
                      **changes})


COMMITTED = Path(__file__).resolve().parent / "toy_r1_zero"


def new_model(tokenizer, settings: Settings):
    from transformers import LlamaForCausalLM

    config = toy.model_config(tokenizer, settings.hidden, settings.layers, settings.hidden // 32, 1)
    config.max_position_embeddings = tokenizer.model_max_length
    torch.manual_seed(settings.seed)
    return LlamaForCausalLM(config)


def encode_documents(tokenizer, documents) -> toy.Examples:
    """Plain-text pretraining: the loss is on every token of the document (prompt included), not only the answer."""
    rows = tokenizer([p + c + EOS for p, c in documents], add_special_tokens=False)["input_ids"]
    length = max(map(len, rows))
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (length - len(r)) for r in rows])
    labels = torch.where(ids == tokenizer.pad_token_id, -100, ids)
    return toy.Examples(ids, labels)


def training_problems(n: int, seed: int) -> list[tuple[int, int]]:
    return toy.problems(n, seed=seed + 1, exclude=set(toy.held_out_problems()))


def pretrain(tokenizer, settings: Settings, progress: bool = True, device: str = "cpu"):
    """The toy's V3-Base: a fresh model trained on the mixed-care corpus. Returns (base, weak base, log); the weak
    base is a copy taken at step ``settings.weak_at``, before the model can add."""
    model, snapshots = new_model(tokenizer, settings).to(device), {}
    documents = corpus(training_problems(settings.pretrain_documents, settings.seed), seed=settings.seed)
    log = toy.train(model, encode_documents(tokenizer, documents),
                    toy.TrainSettings(settings.pretrain_steps, seed=settings.seed), progress=progress,
                    callback=lambda step: snapshots.setdefault("weak", copy.deepcopy(model).eval()),
                    every=settings.weak_at)
    return model, snapshots["weak"], log


BASE_BAR = 0.4   # held-out pass@1 a base needs for notebook 05's lessons (the committed one: 0.69)


def check_base(pass_at_1: float, settings: Settings) -> None:
    """Stop with what to do when pretraining did not teach the base to add. Whether the column method "clicks" within
    the step budget depends on the seed and the CPU: measured, seed 1 with one thread reached 5% after 2,400 steps."""
    if pass_at_1 < BASE_BAR:
        raise RuntimeError(f"the pretrained base reaches held-out pass@1 {pass_at_1:.2f}, below {BASE_BAR}: it has not "
                           f"learned to add in {settings.pretrain_steps} steps (seed {settings.seed}). Pretrain longer "
                           "(--steps / Settings.pretrain_steps) or try another seed; nothing was saved")


def build(out: str | Path = COMMITTED, settings: Settings | None = None, progress: bool = True) -> Path:
    """Pretrain the base and save it (``base/``) with its weak snapshot (``weak_base/``) and a card of what they
    measure on the held-out problems."""
    settings = settings or Settings()
    started = time.time()
    tokenizer = build_tokenizer()
    base, weak, _ = pretrain(tokenizer, settings, progress)
    card = {"settings": asdict(settings), "build_seconds": round(time.time() - started, 1),
            "torch": torch.__version__}
    for name, model in (("base", base), ("weak_base", weak)):
        m = measure(model, tokenizer, toy.held_out_problems(200))
        card[name] = {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}
    check_base(card["base"]["pass@1"], settings)
    for name, model in (("base", base), ("weak_base", weak)):
        model.save_pretrained(Path(out) / name, safe_serialization=True)
        tokenizer.save_pretrained(Path(out) / name)
    (Path(out) / "card.json").write_text(json.dumps(card, indent=1))
    return Path(out)


# What notebook 05's full recipe trains from the committed bases (``build_trained``); its quick mode loads them.
TRAINED = {"rl": "base + RL", "weak_rl": "weak base + RL", "distilled": "base + distillation",
           "weak_distilled": "weak base + distillation", "rl_language": "base + RL with the language reward"}


def load(name: str = "base", path: str | Path = COMMITTED):
    """(model, tokenizer) of the committed base (``"base"``) or weak base (``"weak_base"``), or of a policy the full
    recipe trained from them (a key of ``TRAINED``)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name not in ("base", "weak_base", *TRAINED):
        raise ValueError(f"unknown model {name!r}: choose 'base', 'weak_base' or one of {', '.join(TRAINED)}")
    folder = Path(path) / name
    if not (folder / "config.json").exists():
        command = "build" if name in ("base", "weak_base") else "build-trained"
        raise FileNotFoundError(f"no toy R1-Zero model at {folder}: run `python -m course_utils.r1_zero {command}`")
    tokenizer = AutoTokenizer.from_pretrained(Path(path) / "base")     # one tokenizer for all of them
    return AutoModelForCausalLM.from_pretrained(folder).eval(), tokenizer


# ---------------------------------------------------------------- sampling and measuring


@torch.no_grad()
def sample(model, tokenizer, pairs, n: int, temperature: float = 1.0, top_p: float = 1.0,
           max_new_tokens: int = 72, batch_size: int = 512) -> dict:
    """``n`` completions for each problem, consecutive per problem (a GRPO group). Returns the token tensors GRPO
    needs and the decoded texts. Every prompt has the same length (3-digit numbers): nothing is padded on the left."""
    model.eval()
    prompts = [prompt(a, b) for a, b in pairs for _ in range(n)]
    ids, completions = [], []
    for i in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[i:i + batch_size], return_tensors="pt", add_special_tokens=False).to(model.device)
        out = model.generate(**batch, do_sample=True, temperature=temperature, top_p=top_p, top_k=None,
                             max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id)
        ids.append(batch["input_ids"])
        completions.append(out[:, batch["input_ids"].shape[1]:])
    width = max(c.shape[1] for c in completions)
    completion_ids = torch.cat([torch.nn.functional.pad(c, (0, width - c.shape[1]), value=tokenizer.pad_token_id)
                                for c in completions])
    # Real tokens: everything up to and including the first end-of-sequence (a cut-off completion has none).
    is_eos = completion_ids == tokenizer.eos_token_id
    mask = (is_eos.cumsum(dim=1) - is_eos.long() == 0).long()
    texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
    return {"prompt_ids": torch.cat(ids), "completion_ids": completion_ids, "mask": mask, "texts": texts,
            "golds": [a + b for a, b in pairs for _ in range(n)]}


def measure(model, tokenizer, pairs, n: int = 4, temperature: float = 0.6, top_p: float = 0.95,
            max_new_tokens: int = 72) -> dict:
    """pass@1 (mean over n samples per problem at DeepSeek's evaluation settings), format adherence, the share of
    completions that use the column method, and the mean completion length in tokens."""
    rollout = sample(model, tokenizer, pairs, n, temperature, top_p, max_new_tokens)
    right = [accuracy_reward(t, g) for t, g in zip(rollout["texts"], rollout["golds"], strict=True)]
    habits = [describe(t) for t in rollout["texts"]]
    return {"pass@1": sum(right) / len(right),
            "format": sum(format_reward(t) for t in rollout["texts"]) / len(right),
            "column method": habits.count("column method") / len(habits),
            "cut off": 1 - (rollout["completion_ids"] == tokenizer.eos_token_id).any(dim=1).float().mean().item(),
            "German in the thinking": sum(english_share(t) < 1 for t in rollout["texts"]) / len(habits),
            "length": rollout["mask"].sum(dim=1).float().mean().item(),
            "texts": rollout["texts"], "correct": [[r == 1.0 for r in right[i:i + n]] for i in range(0, len(right), n)]}


# ---------------------------------------------------------------- GRPO


def grpo_step(policy, reference, optimizer, tokenizer, pairs, settings: Settings, reward_fn=reward) -> dict:
    """One GRPO update: sample a group per prompt, reward it by rule, normalise within groups, clipped loss + KL.
    One gradient step per batch, so the sampling policy is the policy (ratio 1 at the step; clipping acts when a
    batch is reused for more steps, ``num_iterations`` in TRL)."""
    rollout = sample(policy, tokenizer, pairs, settings.group_size, settings.temperature,
                     max_new_tokens=settings.max_new_tokens)
    rewards = torch.tensor([reward_fn(t, g) for t, g in zip(rollout["texts"], rollout["golds"], strict=True)])
    advantages = grpo.group_advantages(rewards, settings.group_size).to(policy.device)
    ids = torch.cat([rollout["prompt_ids"], rollout["completion_ids"]], dim=1)
    attention = torch.cat([torch.ones_like(rollout["prompt_ids"]), rollout["mask"]], dim=1)
    width = rollout["completion_ids"].shape[1]
    with torch.no_grad():
        ref_logprobs = grpo.token_logprobs(reference, ids, attention, width, settings.temperature)
    policy.train()
    logprobs = grpo.token_logprobs(policy, ids, attention, width, settings.temperature)
    loss = grpo.grpo_loss(logprobs, logprobs.detach(), ref_logprobs, advantages, rollout["mask"],
                          settings.epsilon, settings.beta)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
    optimizer.step()
    policy.eval()
    return {"loss": loss.item(), "reward": rewards.mean().item(), "texts": rollout["texts"],
            "length": rollout["mask"].sum(dim=1).float().mean().item(),
            "tokens": int(attention.sum())}


@dataclass
class RLLog:
    steps: list[dict] = field(default_factory=list)      # per step: loss, mean reward, completion length
    evals: list[dict] = field(default_factory=list)      # every ``every`` steps: measure() on held-out problems
    seconds: float = 0.0
    tokens_sampled: int = 0


def train_rl(base, tokenizer, settings: Settings, eval_pairs, every: int = 20, progress: bool = True,
             reward_fn=reward):
    """GRPO from ``base`` (kept as the frozen reference) with rewards from ``reward_fn(text, gold)``.
    Returns (policy, RLLog)."""
    from course_utils.progress import bar

    policy, reference = copy.deepcopy(base), base.eval()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings.rl_lr, weight_decay=0.0)
    pool = training_problems(settings.rl_steps * settings.prompts_per_step, settings.seed + 7)
    torch.manual_seed(settings.seed)
    log, started = RLLog(), time.time()
    log.evals.append({"step": 0, **measure(policy, tokenizer, eval_pairs,
                                                     max_new_tokens=settings.max_new_tokens)})
    for step in bar(range(1, settings.rl_steps + 1), desc="GRPO", disable=not progress, mininterval=2.0):
        pairs = pool[(step - 1) * settings.prompts_per_step:step * settings.prompts_per_step]
        result = grpo_step(policy, reference, optimizer, tokenizer, pairs, settings, reward_fn)
        log.tokens_sampled += result.pop("tokens")
        log.steps.append({"step": step, **{k: v for k, v in result.items() if k != "texts"},
                          "example": result["texts"][0]})
        if step % every == 0 or step == settings.rl_steps:
            log.evals.append({"step": step, **measure(policy, tokenizer, eval_pairs,
                                                     max_new_tokens=settings.max_new_tokens)})
    log.seconds = time.time() - started
    return policy, log


# ---------------------------------------------------------------- the other route: distillation


def teacher_completions(pairs, teacher_path=None) -> list[str]:
    """Notebook 02's toy R1 (the distilled student, a strong reasoner) solves each problem; its traces are kept when
    the boxed answer is right (rejection sampling) and rewritten into this template's tags."""
    model, tokenizer = toy.load(teacher_path)
    prompts = [toy.prompt_text(tokenizer, toy.question(a, b)) for a, b in pairs]
    texts = toy.generate(model, tokenizer, prompts)
    out = []
    for (a, b), text in zip(pairs, texts, strict=True):
        thinking, _, answer = text.partition("</think>")
        if toy.extract_boxed(answer) == str(a + b):
            out.append((a, b, f" <think>\n{thinking.strip()}\n</think> <answer> {a + b} </answer>"))
    return out


def distill(base, tokenizer, traces, steps: int, seed: int = 0, progress: bool = True):
    """Supervised fine-tuning of a copy of ``base`` on the teacher's traces (loss on the completion only), as DeepSeek
    made the R1 distills. Returns (model, log with seconds and tokens)."""
    student = copy.deepcopy(base)
    data = toy.encode_examples(tokenizer, [prompt(a, b) for a, b, _ in traces], [c for _, _, c in traces])
    log = toy.train(student, data, toy.TrainSettings(steps, lr=1e-3, warmup=10, seed=seed), progress=progress)
    log["tokens"] = steps * 16 * int((data.input_ids != tokenizer.pad_token_id).sum(1).float().mean())
    return student, log


def build_trained(out: str | Path = COMMITTED, settings: Settings | None = None, eval_every: int = 10,
                  progress: bool = True) -> dict:
    """Notebook 05's full recipe from the committed bases, as the notebook runs it (same seeds, same evaluation
    points, which draw from the same random stream): GRPO from the base and the weak base, distillation into both,
    GRPO with the language-consistency reward. Saves each policy's weights under ``out`` and a card of what each
    run measured and cost (``trained_card.json``), which the quick mode shows beside its short demonstration."""
    settings = settings or Settings()
    base, tokenizer = load("base")
    weak, _ = load("weak_base")
    eval_pairs = toy.held_out_problems(100)
    models, card = {}, {"settings": asdict(settings), "torch": torch.__version__, "runs": {}}
    runs = {"rl": (base, eval_every, reward), "weak_rl": (weak, settings.rl_steps, reward),
            "rl_language": (base, settings.rl_steps, language_consistency_reward)}
    for name, (start, every, reward_fn) in runs.items():
        models[name], log = train_rl(start, tokenizer, settings, eval_pairs, every=every, progress=progress,
                                     reward_fn=reward_fn)
        card["runs"][name] = {"seconds": round(log.seconds, 1), "tokens": log.tokens_sampled,
                              "evals": [{k: v for k, v in e.items() if k != "texts" and k != "correct"}
                                        for e in log.evals]}
    traces = teacher_completions(training_problems(settings.teacher_problems, seed=settings.seed + 11))
    for name, start in (("weak_distilled", weak), ("distilled", base)):
        models[name], log = distill(start, tokenizer, traces, settings.distill_steps, seed=settings.seed,
                                    progress=progress)
        card["runs"][name] = {"seconds": round(log["seconds"], 1), "tokens": log["tokens"]}
    for name, model in models.items():
        measured = measure(model, tokenizer, eval_pairs)
        card["runs"][name]["measured"] = {k: round(v, 4) for k, v in measured.items() if isinstance(v, float)}
        model.save_pretrained(Path(out) / name, safe_serialization=True)
    (Path(out) / "trained_card.json").write_text(json.dumps(card, indent=1))
    return {name: run["measured"]["pass@1"] for name, run in card["runs"].items()}


def trained_card(path: str | Path = COMMITTED) -> dict:
    """What each of the full recipe's runs measured and cost (``build_trained``'s card)."""
    return json.loads((Path(path) / "trained_card.json").read_text())


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Pretrain the toy R1-Zero base models (build), or train the "
                                                 "policies notebook 05's quick mode loads (build-trained).")
    parser.add_argument("command", choices=["build", "build-trained"])
    parser.add_argument("--out", default=str(COMMITTED))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=Settings.pretrain_steps)
    args = parser.parse_args()
    if args.command == "build":
        print(f"written to {build(args.out, Settings(seed=args.seed, pretrain_steps=args.steps))}")
    else:
        print(f"written to {args.out}: held-out pass@1 {build_trained(args.out)}")
