"""The toy R1-Zero: template, corpus, rule-based rewards, sampling masks, the committed bases, one GRPO step."""

import json
import random
import re

import pytest
import torch

from course_utils import r1_zero as Z
from course_utils import toy_reasoner as R


@pytest.fixture(scope="module")
def tokenizer():
    return Z.build_tokenizer()


def test_template_is_the_papers_and_tokenizes_without_unknowns(tokenizer):
    assert Z.TEMPLATE.startswith("A conversation between User and Assistant.")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in Z.TEMPLATE
    for p, c in Z.corpus(Z.training_problems(300, seed=0), seed=0):
        ids = tokenizer(p + c + Z.EOS, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == p + c


def test_the_column_trace_and_a_forgotten_carry():
    assert Z.carries(473, 958) == [1, 1, 1]
    assert R.column_trace(473, 958) == R.completion(473, 958).split("\n</think>")[0]   # the toy R1's trace
    assert Z.traced_sum(473, 958) == 1431
    assert Z.traced_sum(473, 958, forget_carry_at=0) == 1421       # the tens column lost its carry
    german = R.column_trace(473, 958, language="German")
    assert "schreibe 1, behalte 1" in german and "am Ende behalte 1" in german and "write" not in german


def test_corpus_styles_come_in_their_shares():
    docs = Z.corpus(Z.training_problems(4000, seed=0), seed=0)
    habits = [Z.describe(c) for _, c in docs]
    column = Z.STYLES["column"] + Z.STYLES["column, a carry forgotten"]
    assert habits.count("column method") / len(docs) == pytest.approx(column, abs=0.03)
    assert habits.count("no format") / len(docs) == pytest.approx(Z.STYLES["no tags"], abs=0.02)
    golds = [sum(map(int, re.findall(r"\d+", p.split("User:")[1]))) for p, _ in docs]
    right = [Z.accuracy_reward(c, g) for (_, c), g in zip(docs, golds, strict=True)]
    assert sum(right) / len(docs) == pytest.approx(1 - Z.STYLES["no tags"] - Z.STYLES["column, a carry forgotten"],
                                                   abs=0.03)
    with pytest.raises(ValueError, match="unknown style"):
        Z.completion(1, 2, "poetry", random.Random(0))


@pytest.mark.parametrize("text, fmt, acc", [
    (" <think>\nwork\n</think> <answer> 1431 </answer>", 1, 1),
    (" <think>\n</think> <answer> 1431 </answer>", 1, 1),
    ("<think>x</think><answer>1432</answer>", 1, 0),
    (" The answer is 1431.", 0, 0),
    (" <think>\nwork\n</think> 1431", 0, 0),
    (" <think>\nwork\n</think> <answer> 1431 </answer> and more", 0, 0),
    (" <answer> 1431 </answer>", 0, 0),
])
def test_rule_based_rewards(text, fmt, acc):
    assert Z.format_reward(text) == fmt and Z.accuracy_reward(text, 1431) == acc
    assert Z.reward(text, 1431) == fmt + acc


def test_language_consistency_reward_counts_english_words():
    english = " <think>\n3+8+0=11: write 1, carry 1\n</think> <answer> 1 </answer>"
    mixed = " <think>\n3+8+0=11: write 1, behalte 1\n</think> <answer> 1 </answer>"
    assert Z.english_share(english) == 1.0 and Z.english_share(mixed) == 0.5
    assert Z.language_consistency_reward(mixed, 1) == Z.reward(mixed, 1) + 0.5
    assert Z.english_share(" <think>\n</think> <answer> 1 </answer>") == 1.0   # no words: nothing mixed


def test_sample_masks_end_at_the_first_end_of_sequence(tokenizer):
    model = Z.new_model(tokenizer, Z.Settings(hidden=64, layers=1))
    torch.manual_seed(0)
    rollout = Z.sample(model, tokenizer, [(123, 456), (789, 101)], n=3, max_new_tokens=12)
    assert rollout["completion_ids"].shape[0] == 6 and rollout["golds"] == [579] * 3 + [890] * 3
    eos = tokenizer.eos_token_id
    for ids, mask in zip(rollout["completion_ids"], rollout["mask"], strict=True):
        ends = (ids == eos).nonzero().flatten()
        expected = int(ends[0]) + 1 if len(ends) else len(ids)
        assert mask.tolist() == [1] * expected + [0] * (len(ids) - expected)


def test_committed_bases_are_what_their_card_says():
    card = json.loads((Z.COMMITTED / "card.json").read_text())
    assert card["base"]["pass@1"] >= 0.4 and card["weak_base"]["pass@1"] < 0.05
    base, tokenizer = Z.load("base")
    torch.manual_seed(1)
    measured = Z.measure(base, tokenizer, R.held_out_problems(50))
    assert measured["pass@1"] >= 0.4 and measured["format"] >= 0.95
    with pytest.raises(ValueError, match="choose 'base' or 'weak_base'"):
        Z.load("strong")
    with pytest.raises(FileNotFoundError, match="r1_zero build"):
        Z.load("base", path="/nonexistent")


def test_one_grpo_step_moves_the_policy_and_keeps_the_reference(tokenizer):
    base = Z.new_model(tokenizer, Z.Settings(hidden=64, layers=1)).eval()
    frozen = [p.detach().clone() for p in base.parameters()]
    policy = Z.copy.deepcopy(base)
    settings = Z.Settings(group_size=4, max_new_tokens=16)
    # An untrained model earns no reward; a length-dependent one gives the groups unequal rewards to learn from.
    result = Z.grpo_step(policy, base, torch.optim.AdamW(policy.parameters(), lr=1e-3), tokenizer,
                         [(123, 456), (321, 654)], settings, reward_fn=lambda text, gold: len(text) / 10)
    assert set(result) >= {"loss", "reward", "length", "texts", "tokens"} and len(result["texts"]) == 8
    assert all(torch.equal(a, b) for a, b in zip(frozen, base.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(frozen, policy.parameters(), strict=True))


def test_pretrain_snapshots_the_weak_base_and_distill_runs(tokenizer):
    settings = Z.Settings(hidden=64, layers=1, pretrain_steps=6, weak_at=3, pretrain_documents=64)
    base, weak, log = Z.pretrain(tokenizer, settings, progress=False)
    assert len(log["loss"]) == 6
    assert any(not torch.equal(a, b) for a, b in zip(base.parameters(), weak.parameters(), strict=True))
    traces = Z.teacher_completions(Z.training_problems(20, seed=5))
    assert len(traces) >= 18 and all(Z.accuracy_reward(c, a + b) == 1 for a, b, c in traces)
    student, info = Z.distill(weak, tokenizer, traces, steps=3, progress=False)
    assert info["tokens"] > 0 and student is not weak


def test_gpu_settings_are_a_larger_toy():
    cpu, gpu = Z.Settings(), Z.Settings.gpu(seed=3)
    assert gpu.hidden > cpu.hidden and gpu.rl_steps > cpu.rl_steps and gpu.seed == 3


def test_a_base_that_cannot_add_is_refused_with_what_to_do():
    Z.check_base(0.69, Z.Settings())
    with pytest.raises(RuntimeError, match="Pretrain longer"):
        Z.check_base(0.05, Z.Settings(seed=1))
