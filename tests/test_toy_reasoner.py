"""The toy R1 checkpoint: a real Hugging Face checkpoint in DeepSeek-R1's format, and it adds correctly."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from course_utils import toy_reasoner as R


@pytest.fixture(scope="module")
def checkpoint():
    path = R.checkpoint_path()
    return path, AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_checkpoint_files_and_generation_config(checkpoint):
    path, model, tokenizer = checkpoint
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                 "generation_config.json"):
        assert (path / name).exists(), name
    gen = GenerationConfig.from_pretrained(path)
    assert (gen.temperature, gen.top_p, gen.do_sample) == (0.6, 0.95, True)
    assert type(model).__name__ == "LlamaForCausalLM"   # the class of R1-Distill-Llama-8B and -70B
    card = json.loads((path / "toy_r1_card.json").read_text())
    assert card["held_out_accuracy_greedy"] >= 0.9


def test_tokenizer_has_deepseek_special_tokens_and_round_trips(checkpoint):
    _, _, tokenizer = checkpoint
    for token in (R.BOS, R.EOS, R.USER, R.ASSISTANT, R.THINK_START, R.THINK_END):
        assert token in tokenizer.get_vocab(), token
    assert "\uff5c" in R.BOS and "\u2581" in R.BOS      # fullwidth bar and lower one-eighth block
    text = "What is 473 + 958?\n3+8+0=11: write 1, carry 1\n</think>\n\n\\boxed{1431}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids


def test_chat_template_renders_like_the_r1_distills(checkpoint):
    _, _, tokenizer = checkpoint
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == f"{R.BOS}{R.USER}What is 1 + 2?{R.ASSISTANT}<think>\n"
    history = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
         {"role": "assistant", "content": "thinking\n</think>\n\nA"}, {"role": "user", "content": "Q2"}],
        tokenize=False, add_generation_prompt=True)
    assert history == f"{R.BOS}S{R.USER}Q{R.ASSISTANT}A{R.EOS}{R.USER}Q2{R.ASSISTANT}<think>\n"


def test_the_checkpoint_adds_held_out_numbers(checkpoint):
    _, model, tokenizer = checkpoint
    pairs = R.held_out_problems(100)
    result = R.evaluate(model, tokenizer, pairs)
    assert result["accuracy"] >= 0.9
    reasoning, answer = R.split_reasoning(result["completions"][0])   # </think> is kept: not a special token
    assert "carry" in reasoning and answer.startswith("\\boxed{")
    sampled = R.evaluate(model, tokenizer, pairs[:50], do_sample=True)       # DeepSeek's T=0.6, top-p 0.95
    assert sampled["accuracy"] >= 0.8


def test_task_format_and_training_data():
    assert R.column_trace(473, 958).splitlines() == ["3+8+0=11: write 1, carry 1", "7+5+1=13: write 3, carry 1",
                                              "4+9+1=14: write 4, carry 1", "final carry 1"]
    assert R.completion(473, 958).endswith("</think>\n\n\\boxed{1431}")
    assert R.completion(1, 2, with_trace=False) == "\n</think>\n\n\\boxed{3}"
    held = set(R.held_out_problems())
    assert not held & set(R.problems(2000, seed=1, exclude=held))
    tokenizer = R.build_tokenizer()
    data = R.task_examples(tokenizer, [(473, 958)])
    answer_ids = data.input_ids[0][data.labels[0] != -100]
    assert tokenizer.decode(answer_ids).startswith("3+8+0=11") and tokenizer.decode(answer_ids).endswith(R.EOS)


def test_a_tiny_training_run_lowers_the_loss():
    tokenizer = R.build_tokenizer()
    model = R.new_model(tokenizer, 32, layers=1)
    data = R.task_examples(tokenizer, R.problems(64, seed=5))
    log = R.train(model, data, R.TrainSettings(30, batch_size=8, warmup=5), progress=False)
    assert sum(log["loss"][-5:]) / 5 < log["loss"][0] - 1.0


def test_logit_distillation_path_runs():
    tokenizer = R.build_tokenizer()
    teacher, student = R.new_model(tokenizer, 32, layers=1), R.new_model(tokenizer, 32, layers=1, seed=1)
    data = R.task_examples(tokenizer, R.problems(16, seed=6))
    log = R.train(student, data, R.TrainSettings(3, batch_size=4), teacher=teacher, progress=False)
    assert len(log["loss"]) == 3 and all(torch.isfinite(torch.tensor(log["loss"])))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="toy_reasoner build"):
        R.load(tmp_path / "nowhere")


def test_the_tokenizers_built_in_code_are_the_committed_ones():
    """Both toy tokenizers come from one builder (word_level_tokenizer); the checkpoints carry what it builds.
    ("padding" is the state batch encoding leaves behind, saved with the toy R1; not part of the vocabulary.)"""
    from course_utils import r1_zero as Z

    for built, path in ((R.build_tokenizer(), R.COMMITTED / "tokenizer.json"),
                        (Z.build_tokenizer(), Z.COMMITTED / "base" / "tokenizer.json"),
                        (Z.build_tokenizer(), Z.COMMITTED / "weak_base" / "tokenizer.json")):
        ours, committed = json.loads(built.backend_tokenizer.to_str()), json.loads(path.read_text())
        assert {k: v for k, v in ours.items() if k != "padding"} == {
            k: v for k, v in committed.items() if k != "padding"}, path
