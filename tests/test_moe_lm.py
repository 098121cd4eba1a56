import pytest
import torch

from course_utils import moe, moe_lm
from course_utils.toy_data import DOMAINS, VOCAB_SIZE, MixedCorpus, decode, encode


@pytest.fixture(scope="module")
def corpus():
    return MixedCorpus.build(chars_per_domain=20_000)


def test_corpus_is_deterministic_and_balanced(corpus):
    again = MixedCorpus.build(chars_per_domain=20_000)
    for d in DOMAINS:
        assert torch.equal(corpus.train[d], again.train[d]) and len(corpus.val[d]) > 100
        assert int(corpus.train[d].max()) < VOCAB_SIZE
    x, y, domains = corpus.batch(6, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 16) and torch.equal(x[:, 1:], y[:, :-1])
    assert domains.tolist() == [0, 1, 2, 0, 1, 2]
    assert decode(encode("a+b=c\n")) == "a+b=c\n" and decode(encode("é")) == "?"


def test_training_lowers_the_loss_and_the_bias_balances(corpus):
    model = moe_lm.make_model(n_experts=4, top_k=1, d_model=32, expert_size=32, n_layers=1)
    history = moe_lm.train_lm(model, corpus, moe_lm.TrainConfig(steps=60, batch_size=6, seq_len=32, balancing="bias",
                                                      gamma=0.02), progress=False)
    assert sum(history.loss[-10:]) / 10 < history.loss[0] - 0.5
    assert model.moes[0].balance_bias.abs().sum() > 0
    result = moe_lm.evaluate(model, corpus, batches=2, batch_size=6, seq_len=32)
    assert result["domain_usage"].shape == (1, 3, 4)
    torch.testing.assert_close(result["domain_usage"].sum(-1), torch.ones(1, 3))


def test_same_seed_same_numbers(corpus):
    runs = []
    for _ in range(2):
        model = moe_lm.make_model(n_experts=4, top_k=2, d_model=32, expert_size=32, n_layers=1, seed=3)
        runs.append(moe_lm.train_lm(model, corpus, moe_lm.TrainConfig(steps=5, batch_size=6, seq_len=16, seed=3),
                               progress=False).loss)
    assert runs[0] == runs[1]


def test_unknown_balancing_is_refused():
    with pytest.raises(ValueError, match="balancing must be one of"):
        moe_lm.TrainConfig(balancing="magic")


def test_aux_loss_training_path_runs(corpus):
    model = moe_lm.make_model(router="softmax", n_experts=4, top_k=2, d_model=32, expert_size=32, n_layers=1)
    config = moe_lm.TrainConfig(steps=3, batch_size=3, seq_len=16, balancing="aux_loss")
    history = moe_lm.train_lm(model, corpus, config, progress=False)
    assert len(history.max_vio) == 3 and all(v >= 0 for v in history.max_vio)
    assert isinstance(model.moes[0], moe.MoE)


def test_dropped_share_counts_overflow_and_restores_the_setting(corpus):
    model = moe_lm.make_model(router="softmax", n_experts=4, top_k=2, d_model=32, expert_size=32, n_layers=1)
    inputs = corpus.batch(4, 16, torch.Generator().manual_seed(0), split="val")[0]
    tight, loose = moe_lm.dropped_share(model, inputs, 0.5), moe_lm.dropped_share(model, inputs, 4.0)
    assert tight >= 0.5 - 1e-6 and loose == 0.0    # capacity 0.5 keeps at most half; 4.0 fits everything
    assert model.moes[0].config.capacity_factor is None and model.training   # both restored


def test_corpus_does_not_depend_on_what_the_process_imported():
    import subprocess
    import sys

    script = ("import sys; {extra}from course_utils.toy_data import prose_text; "
              "import hashlib; print(hashlib.sha256(prose_text().encode()).hexdigest())")
    digests = [subprocess.run([sys.executable, "-c", script.format(extra=extra)], capture_output=True, text=True,
                              check=True).stdout for extra in ("", "import json.tool, logging.handlers, os, email; ")]
    assert digests[0] == digests[1]
