"""The toy R1 checkpoint: a real Hugging Face checkpoint in DeepSeek-R1's format, and it adds correctly."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from course_utils import toy_reasoner


@pytest.fixture(scope="module")
def checkpoint():
    path = toy_reasoner.checkpoint_path()
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
    for token in (toy_reasoner.BOS, toy_reasoner.EOS, toy_reasoner.USER, toy_reasoner.ASSISTANT,
                  toy_reasoner.THINK_START, toy_reasoner.THINK_END):
        assert token in tokenizer.get_vocab(), token
    assert "\uff5c" in toy_reasoner.BOS and "\u2581" in toy_reasoner.BOS      # fullwidth bar and lower one-eighth block
    text = "What is 473 + 958?\n3+8+0=11: write 1, carry 1\n</think>\n\n\\boxed{1431}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer.unk_token_id not in ids


def test_chat_template_renders_like_the_r1_distills(checkpoint):
    _, _, tokenizer = checkpoint
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}], tokenize=False,
                                             add_generation_prompt=True)
    assert rendered == f"{toy_reasoner.BOS}{toy_reasoner.USER}What is 1 + 2?{toy_reasoner.ASSISTANT}<think>\n"
    history = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
         {"role": "assistant", "content": "thinking\n</think>\n\nA"}, {"role": "user", "content": "Q2"}],
        tokenize=False, add_generation_prompt=True)
    bos, eos, user, assistant = toy_reasoner.BOS, toy_reasoner.EOS, toy_reasoner.USER, toy_reasoner.ASSISTANT
    assert history == f"{bos}S{user}Q{assistant}A{eos}{user}Q2{assistant}<think>\n"


def test_the_checkpoint_adds_held_out_numbers(checkpoint):
    _, model, tokenizer = checkpoint
    pairs = toy_reasoner.held_out_problems(100)
    result = toy_reasoner.evaluate(model, tokenizer, pairs)
    assert result["accuracy"] >= 0.9
    reasoning, answer = toy_reasoner.split_reasoning(result["completions"][0])   # </think> is kept: not a special token
    assert "carry" in reasoning and answer.startswith("\\boxed{")
    sampled = toy_reasoner.evaluate(model, tokenizer, pairs[:50], do_sample=True)       # DeepSeek's T=0.6, top-p 0.95
    assert sampled["accuracy"] >= 0.8


def test_task_format_and_training_data():
    assert toy_reasoner.column_trace(473, 958).splitlines() == [
        "3+8+0=11: write 1, carry 1", "7+5+1=13: write 3, carry 1", "4+9+1=14: write 4, carry 1", "final carry 1"]
    assert toy_reasoner.completion(473, 958).endswith("</think>\n\n\\boxed{1431}")
    assert toy_reasoner.completion(1, 2, with_trace=False) == "\n</think>\n\n\\boxed{3}"
    held = set(toy_reasoner.held_out_problems())
    assert not held & set(toy_reasoner.problems(2000, seed=1, exclude=held))
    tokenizer = toy_reasoner.build_tokenizer()
    data = toy_reasoner.task_examples(tokenizer, [(473, 958)])
    answer_ids = data.input_ids[0][data.labels[0] != -100]
    answer = tokenizer.decode(answer_ids)
    assert answer.startswith("3+8+0=11") and answer.endswith(toy_reasoner.EOS)


def test_a_tiny_training_run_lowers_the_loss():
    tokenizer = toy_reasoner.build_tokenizer()
    model = toy_reasoner.new_model(tokenizer, 32, layers=1)
    data = toy_reasoner.task_examples(tokenizer, toy_reasoner.problems(64, seed=5))
    log = toy_reasoner.train(model, data, toy_reasoner.TrainSettings(30, batch_size=8, warmup=5), progress=False)
    assert sum(log["loss"][-5:]) / 5 < log["loss"][0] - 1.0


def test_logit_distillation_path_runs():
    tokenizer = toy_reasoner.build_tokenizer()
    teacher = toy_reasoner.new_model(tokenizer, 32, layers=1)
    student = toy_reasoner.new_model(tokenizer, 32, layers=1, seed=1)
    data = toy_reasoner.task_examples(tokenizer, toy_reasoner.problems(16, seed=6))
    settings = toy_reasoner.TrainSettings(3, batch_size=4)
    log = toy_reasoner.train(student, data, settings, teacher=teacher, progress=False)
    assert len(log["loss"]) == 3 and all(torch.isfinite(torch.tensor(log["loss"])))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="toy_reasoner build"):
        toy_reasoner.load(tmp_path / "nowhere")


def test_the_tokenizers_built_in_code_are_the_committed_ones():
    """Both toy tokenizers come from one builder (word_level_tokenizer); the checkpoints carry what it builds.
    ("padding" is the state batch encoding leaves behind, saved with the toy R1; not part of the vocabulary.)"""
    from course_utils import r1_zero

    for built, path in ((toy_reasoner.build_tokenizer(), toy_reasoner.COMMITTED / "tokenizer.json"),
                        (r1_zero.build_tokenizer(), r1_zero.COMMITTED / "base" / "tokenizer.json"),
                        (r1_zero.build_tokenizer(), r1_zero.COMMITTED / "weak_base" / "tokenizer.json")):
        ours, committed = json.loads(built.backend_tokenizer.to_str()), json.loads(path.read_text())
        assert {k: v for k, v in ours.items() if k != "padding"} == {
            k: v for k, v in committed.items() if k != "padding"}, path
