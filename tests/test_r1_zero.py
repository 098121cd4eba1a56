"""The toy R1-Zero: template, corpus, rule-based rewards, sampling masks, the committed bases, one GRPO step."""

import json
import random
import re

import pytest
import torch

from course_utils import r1_zero, toy_reasoner


@pytest.fixture(scope="module")
def tokenizer():
    return r1_zero.build_tokenizer()


def test_template_is_the_papers_and_tokenizes_without_unknowns(tokenizer):
    assert r1_zero.TEMPLATE.startswith("A conversation between User and Assistant.")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in r1_zero.TEMPLATE
    for p, c in r1_zero.corpus(r1_zero.training_problems(300, seed=0), seed=0):
        ids = tokenizer(p + c + r1_zero.EOS, add_special_tokens=False)["input_ids"]
        assert tokenizer.unk_token_id not in ids
        assert tokenizer.decode(ids, skip_special_tokens=True) == p + c


def test_the_column_trace_and_a_forgotten_carry():
    assert r1_zero.carries(473, 958) == [1, 1, 1]
    trace = toy_reasoner.completion(473, 958).split("\n</think>")[0]
    assert toy_reasoner.column_trace(473, 958) == trace   # the toy R1's trace
    assert r1_zero.traced_sum(473, 958) == 1431
    assert r1_zero.traced_sum(473, 958, forget_carry_at=0) == 1421       # the tens column lost its carry
    german = toy_reasoner.column_trace(473, 958, language="German")
    assert "schreibe 1, behalte 1" in german and "am Ende behalte 1" in german and "write" not in german


def test_corpus_styles_come_in_their_shares():
    docs = r1_zero.corpus(r1_zero.training_problems(4000, seed=0), seed=0)
    habits = [r1_zero.describe(c) for _, c in docs]
    column = r1_zero.STYLES["column"] + r1_zero.STYLES["column, a carry forgotten"]
    assert habits.count("column method") / len(docs) == pytest.approx(column, abs=0.03)
    assert habits.count("no format") / len(docs) == pytest.approx(r1_zero.STYLES["no tags"], abs=0.02)
    golds = [sum(map(int, re.findall(r"\d+", p.split("User:")[1]))) for p, _ in docs]
    right = [r1_zero.accuracy_reward(c, g) for (_, c), g in zip(docs, golds, strict=True)]
    wrong = r1_zero.STYLES["no tags"] + r1_zero.STYLES["column, a carry forgotten"]
    assert sum(right) / len(docs) == pytest.approx(1 - wrong, abs=0.03)
    with pytest.raises(ValueError, match="unknown style"):
        r1_zero.completion(1, 2, "poetry", random.Random(0))


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
    assert r1_zero.format_reward(text) == fmt and r1_zero.accuracy_reward(text, 1431) == acc
    assert r1_zero.reward(text, 1431) == fmt + acc


def test_language_consistency_reward_counts_english_words():
    english = " <think>\n3+8+0=11: write 1, carry 1\n</think> <answer> 1 </answer>"
    mixed = " <think>\n3+8+0=11: write 1, behalte 1\n</think> <answer> 1 </answer>"
    assert r1_zero.english_share(english) == 1.0 and r1_zero.english_share(mixed) == 0.5
    assert r1_zero.language_consistency_reward(mixed, 1) == r1_zero.reward(mixed, 1) + 0.5
    assert r1_zero.english_share(" <think>\n</think> <answer> 1 </answer>") == 1.0   # no words: nothing mixed


def test_sample_masks_end_at_the_first_end_of_sequence(tokenizer):
    model = r1_zero.new_model(tokenizer, r1_zero.Settings(hidden=64, layers=1))
    torch.manual_seed(0)
    rollout = r1_zero.sample(model, tokenizer, [(123, 456), (789, 101)], n=3, max_new_tokens=12)
    assert rollout["completion_ids"].shape[0] == 6 and rollout["golds"] == [579] * 3 + [890] * 3
    eos = tokenizer.eos_token_id
    for ids, mask in zip(rollout["completion_ids"], rollout["mask"], strict=True):
        ends = (ids == eos).nonzero().flatten()
        expected = int(ends[0]) + 1 if len(ends) else len(ids)
        assert mask.tolist() == [1] * expected + [0] * (len(ids) - expected)


def test_committed_bases_are_what_their_card_says():
    card = json.loads((r1_zero.COMMITTED / "card.json").read_text())
    assert card["base"]["pass@1"] >= 0.4 and card["weak_base"]["pass@1"] < 0.05
    base, tokenizer = r1_zero.load("base")
    torch.manual_seed(1)
    measured = r1_zero.measure(base, tokenizer, toy_reasoner.held_out_problems(50))
    assert measured["pass@1"] >= 0.4 and measured["format"] >= 0.95
    with pytest.raises(ValueError, match="choose 'base', 'weak_base' or one of"):
        r1_zero.load("strong")
    with pytest.raises(FileNotFoundError, match="r1_zero build"):
        r1_zero.load("base", path="/nonexistent")


def test_one_grpo_step_moves_the_policy_and_keeps_the_reference(tokenizer):
    base = r1_zero.new_model(tokenizer, r1_zero.Settings(hidden=64, layers=1)).eval()
    frozen = [p.detach().clone() for p in base.parameters()]
    policy = r1_zero.copy.deepcopy(base)
    settings = r1_zero.Settings(group_size=4, max_new_tokens=16)
    # An untrained model earns no reward; a length-dependent one gives the groups unequal rewards to learn from.
    result = r1_zero.grpo_step(policy, base, torch.optim.AdamW(policy.parameters(), lr=1e-3), tokenizer,
                         [(123, 456), (321, 654)], settings, reward_fn=lambda text, gold: len(text) / 10)
    assert set(result) >= {"loss", "reward", "length", "texts", "tokens"} and len(result["texts"]) == 8
    assert all(torch.equal(a, b) for a, b in zip(frozen, base.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(frozen, policy.parameters(), strict=True))


def test_pretrain_snapshots_the_weak_base_and_distill_runs(tokenizer):
    settings = r1_zero.Settings(hidden=64, layers=1, pretrain_steps=6, weak_at=3, pretrain_documents=64)
    base, weak, log = r1_zero.pretrain(tokenizer, settings, progress=False)
    assert len(log["loss"]) == 6
    assert any(not torch.equal(a, b) for a, b in zip(base.parameters(), weak.parameters(), strict=True))
    traces = r1_zero.teacher_completions(r1_zero.training_problems(20, seed=5))
    assert len(traces) >= 18 and all(r1_zero.accuracy_reward(c, a + b) == 1 for a, b, c in traces)
    student, info = r1_zero.distill(weak, tokenizer, traces, steps=3, progress=False)
    assert info["tokens"] > 0 and student is not weak


def test_gpu_settings_are_a_larger_toy():
    cpu, gpu = r1_zero.Settings(), r1_zero.Settings.gpu(seed=3)
    assert gpu.hidden > cpu.hidden and gpu.rl_steps > cpu.rl_steps and gpu.seed == 3


def test_a_base_that_cannot_add_is_refused_with_what_to_do():
    r1_zero.check_base(0.69, r1_zero.Settings())
    with pytest.raises(RuntimeError, match="Pretrain longer"):
        r1_zero.check_base(0.05, r1_zero.Settings(seed=1))
