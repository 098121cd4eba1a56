import pytest
import torch
import torch.nn.functional as F

from course_utils import distill
from course_utils.distill import kd_loss, softmax_t


def test_soft_gradient_is_one_over_t_times_q_minus_p():
    torch.manual_seed(0)
    z = torch.randn(5, 10, requires_grad=True)     # student logits
    v = torch.randn(5, 10)                          # teacher logits
    for t in (1.0, 2.0, 7.5):
        z.grad = None
        (kd_loss(z, v, temperature=t, alpha=1.0) / t**2).backward()   # the KL alone, without the T^2 factor
        q, p = softmax_t(z.detach(), t), softmax_t(v, t)
        torch.testing.assert_close(z.grad, (q - p) / t / z.shape[0])  # mean over the batch of 5


def test_t_squared_keeps_the_soft_gradient_size_constant():
    torch.manual_seed(1)
    z = torch.randn(64, 10)
    v = torch.randn(64, 10)
    z, v = z - z.mean(-1, keepdim=True), v - v.mean(-1, keepdim=True)   # zero-mean logits, as Hinton assumes
    with_t2, without = [], []
    for t in (2.0, 4.0, 8.0, 16.0, 32.0):
        zz = z.clone().requires_grad_()
        kd_loss(zz, v, temperature=t, alpha=1.0).backward()
        with_t2.append(zz.grad.norm().item())
        without.append(zz.grad.norm().item() / t**2)
    assert max(with_t2) / min(with_t2) < 1.3        # roughly constant across a 16x range of T
    assert max(without) / min(without) > 100        # without the factor it shrinks like 1/T^2


def test_loss_mixes_soft_and_hard_terms():
    torch.manual_seed(2)
    z, v, y = torch.randn(4, 6), torch.randn(4, 6), torch.tensor([0, 1, 2, 3])
    assert kd_loss(z, v, y, temperature=3.0, alpha=0.0).item() == pytest.approx(F.cross_entropy(z, y).item())
    assert kd_loss(z, z, y, temperature=3.0, alpha=1.0).item() == pytest.approx(0.0, abs=1e-6)
    soft = kd_loss(z, v, temperature=3.0, alpha=1.0)
    mixed = kd_loss(z, v, y, temperature=3.0, alpha=0.25)
    assert mixed.item() == pytest.approx(0.25 * soft.item() + 0.75 * F.cross_entropy(z, y).item(), rel=1e-5)
    assert mixed.dim() == 0


def test_sequence_logits_and_ignored_positions():
    z, v = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 1, 2, 3], [-100, 4, 5, 6, 0]])
    full = kd_loss(z, v, labels, temperature=2.0, alpha=0.5)
    keep = labels != -100
    manual = kd_loss(z[keep], v[keep], labels[keep], temperature=2.0, alpha=0.5)
    torch.testing.assert_close(full, manual)


@pytest.mark.parametrize("kw, message", [
    (dict(temperature=0), "temperature must be a positive number, got 0"),
    (dict(temperature=-1.5), "temperature must be a positive number"),
    (dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
    (dict(alpha=-0.1), r"alpha must be in \[0, 1\]"),
])
def test_bad_hyperparameters(kw, message):
    with pytest.raises(ValueError, match=message):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), **kw)


def test_bad_shapes_and_vocabularies():
    with pytest.raises(ValueError, match="different vocabularies: 5 teacher classes against 3 student"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 5))
    with pytest.raises(ValueError, match="same shape"):
        kd_loss(torch.randn(2, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="labels have shape"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="every position is ignored"):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([-100, -100]))


def test_seeded_mlp_starts_from_the_same_weights_whatever_ran_before():
    first = distill.mlp([4, 3, 2], seed=5)
    torch.randn(100)                      # other cells use the global generator in between
    second = distill.mlp([4, 3, 2], seed=5)
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(distill.mlp([4, 3, 2], seed=6)[0].weight, first[0].weight)


def test_digits_split_and_few_examples():
    x_train, x_test, y_train, y_test = distill.digits_split()
    assert (len(x_train), len(x_test)) == (1078, 719) and x_train.max() <= 1.0 and x_train.dtype == torch.float32
    few = distill.few_examples(len(x_train), 0.03, seed=0)
    assert len(few) == 32 and len(set(few.tolist())) == 32
    assert torch.equal(few, distill.few_examples(len(x_train), 0.03, seed=0))
    assert not torch.equal(few, distill.few_examples(len(x_train), 0.03, seed=1))


def test_bias_shift_recovers_a_class_whose_logit_is_held_down():
    # A "model" that is right about every class except that class 2's logit is 3 too low.
    centres = torch.eye(3) * 5
    y = torch.tensor([0, 1, 2] * 20)
    x = centres[y] + 0.1 * torch.randn(60, 3, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Linear(3, 3)
    with torch.no_grad():
        model.weight.copy_(torch.eye(3))
        model.bias.copy_(torch.tensor([0.0, 0.0, -6.0]))
    assert distill.unseen_class_accuracy(model, 2, x, y, x, y) == 1.0
    assert 1.0 < distill.best_bias_shift(model, 2, x, y) < 11.0
    with torch.no_grad():
        assert (model(x[y == 2]).argmax(-1) == 2).float().mean() == 0.0   # without the shift: none right


def test_gap_closed_is_hintons_share():
    assert distill.gap_closed(67, 146, 74) == pytest.approx(0.911, abs=1e-3)   # Hinton et al.'s MNIST figures
    assert distill.gap_closed(10, 20, 10) == 1.0 and distill.gap_closed(10, 20, 20) == 0.0
    assert distill.gap_closed(10, 20, 8) > 1                                   # a student better than its teacher
    with pytest.raises(ValueError, match="no gap to close"):
        distill.gap_closed(20, 20, 15)


def test_minibatches_and_the_mnist_experiment_run_on_a_cpu():
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(300, 784, generator=g), torch.randint(0, 10, (300,), generator=g)
    model = distill.train_classifier(distill.mlp([784, 8, 10], seed=0), x[:20], y[:20], epochs=30, batch_size=8,
                                     lr=1e-2)
    assert distill.errors(model, x[:20], y[:20]) < 10                        # minibatches learn the few examples
    result = distill.hinton_mnist(x[:200], y[:200], x[200:], y[200:], epochs=1)
    assert list(result) == ["teacher", "student from scratch", "distilled student"]
    assert all(0 <= e <= 100 for e in result.values())


def test_full_batch_training_is_one_adam_step_per_epoch_on_jittered_inputs():
    # the notebook's committed digits numbers depend on this loop staying exactly as it was before minibatches
    x, y = torch.rand(50, 8, generator=torch.Generator().manual_seed(1)), torch.arange(50) % 3
    trained = distill.train_classifier(distill.mlp([8, 4, 3], seed=0), x, y, epochs=5, lr=1e-2, input_noise=0.1)
    reference = distill.mlp([8, 4, 3], seed=0)
    torch.manual_seed(0)
    opt = torch.optim.Adam(reference.parameters(), lr=1e-2)
    for _ in range(5):
        loss = F.cross_entropy(reference(x + 0.1 * torch.randn_like(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(trained.parameters(), reference.parameters(), strict=True))
