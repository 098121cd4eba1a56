"""The models the quick mode loads instead of training (notebooks 02 and 05) must show the full mode's lessons: each
one is measured here, from its weights, against the bars the full mode's checks cells assert. They are rebuilt by
``python -m course_utils.toy_reasoner build-recipe`` and ``python -m course_utils.r1_zero build-trained``."""

import pytest
import torch

from course_utils import r1_zero, toy_reasoner

RL_POLICIES = ("rl", "weak_rl", "distilled", "weak_distilled", "rl_language")


@pytest.fixture(scope="module")
def recipe_accuracy():
    tokenizer = toy_reasoner.build_tokenizer()
    labels = ("teacher", "(a) answers only", "(b) teacher's traces (SFT)", "(c) teacher's logits (KD)")
    return {label: toy_reasoner.evaluate(toy_reasoner.load_trained(label), tokenizer)["accuracy"] for label in labels}


def test_notebook_02_shipped_teacher_and_students_clear_the_full_modes_bars(recipe_accuracy):
    assert recipe_accuracy["teacher"] >= 0.95                                  # notebook 02's teacher bar
    best = max(v for label, v in recipe_accuracy.items() if label != "teacher")
    assert best >= 0.90                                                        # its best-student bar
    # the lesson: the answers-only student learns far less than the two that saw the teacher's reasoning
    assert recipe_accuracy["(a) answers only"] + 0.5 < min(recipe_accuracy["(b) teacher's traces (SFT)"],
                                                            recipe_accuracy["(c) teacher's logits (KD)"])


@pytest.fixture(scope="module")
def policy_figures():
    torch.manual_seed(0)
    pairs = toy_reasoner.held_out_problems(100)
    figures = {}
    for name in ("base", "weak_base", *RL_POLICIES):
        model, tokenizer = r1_zero.load(name)
        figures[name] = r1_zero.measure(model, tokenizer, pairs, n=2)
    return figures


def test_notebook_05_shipped_policies_clear_the_full_modes_bars(policy_figures):
    pass1 = {name: f["pass@1"] for name, f in policy_figures.items()}
    assert pass1["rl"] - pass1["base"] >= 0.1                       # RL: pass@1 gain
    assert policy_figures["rl"]["length"] - policy_figures["base"]["length"] > 5   # longer completions
    assert pass1["weak_rl"] < 0.1                                   # RL cannot lift the weak base
    assert pass1["weak_distilled"] - pass1["weak_rl"] > 0.2         # distillation can
    german = {name: policy_figures[name]["German in the thinking"] for name in ("rl", "rl_language")}
    assert german["rl"] > german["rl_language"]                     # the language reward removes the mixing


def test_the_card_records_what_the_shipped_policies_measure(policy_figures):
    card = r1_zero.trained_card()["runs"]
    assert set(card) == set(RL_POLICIES)
    for name in RL_POLICIES:       # the card's pass@1 (4 samples each) and this test's (2 samples): the same model
        assert abs(card[name]["measured"]["pass@1"] - policy_figures[name]["pass@1"]) < 0.12, name
