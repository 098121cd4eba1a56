"""Seeded random inputs for the coding exercises: each list of cases is a list of argument tuples for
``exercises.check_function``, built to reach the corners a first attempt gets wrong (ties, empties, padding...)."""

from __future__ import annotations

import random

import torch


def random_votes(n: int = 200, seed: int = 5) -> list[tuple]:
    """Notebook 04, majority vote: lists of 1-6 answers with spaces, empties and ties."""
    rng = random.Random(seed)
    return [([rng.choice(["12", " 12", "7", "3/8", None, ""]) for _ in range(rng.randint(1, 6))],) for _ in range(n)]


def random_completions(n: int = 200, seed: int = 6) -> list[tuple]:
    """Notebook 04, boxed answer: text with 0-7 pieces, nested braces and unclosed boxes."""
    rng = random.Random(seed)
    pieces = ["so ", "the sum is ", "\\boxed{42}", "\\boxed{\\frac{3}{8}}", "\\boxed{x^{2}}", "\\boxed{7", "}", " done",
              "{", "\n"]
    return [("".join(rng.choice(pieces) for _ in range(rng.randint(1, 7))),) for _ in range(n)]


def random_dense_configs(n: int = 100, seed: int = 0) -> list[tuple]:
    """Notebook 00, KV bytes per token of a dense (GQA) model: config.json dicts of Llama/Qwen shape, some with an
    explicit ``head_dim``, and a dtype name."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        heads = rng.choice([8, 12, 16, 28, 32, 40, 64])
        kv_heads = rng.choice([h for h in (1, 2, 4, 8) if heads % h == 0])
        config = {"model_type": rng.choice(["llama", "qwen2"]), "num_hidden_layers": rng.randint(2, 96),
                  "num_attention_heads": heads, "num_key_value_heads": kv_heads,
                  "hidden_size": heads * rng.choice([64, 128])}
        if rng.random() < 0.3:
            config["head_dim"] = rng.choice([64, 96, 128, 256])
        cases.append((config, rng.choice(["bfloat16", "float16", "float32", "fp8"])))
    return cases


def random_mla_configs(n: int = 100, seed: int = 1) -> list[tuple]:
    """Notebook 00, KV bytes per token with multi-head latent attention: DeepSeek-V3-shaped configs."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        config = {"model_type": "deepseek_v3", "num_hidden_layers": rng.randint(2, 64),
                  "num_attention_heads": rng.choice([16, 32, 64, 128]), "hidden_size": 7168,
                  "kv_lora_rank": rng.choice([128, 256, 512]), "qk_rope_head_dim": rng.choice([32, 64]),
                  "qk_nope_head_dim": 128, "v_head_dim": 128}
        cases.append((config, rng.choice(["bfloat16", "float32", "fp8"])))
    return cases


def random_router_logits(n: int = 60, seed: int = 2) -> list[tuple]:
    """Notebook 01, V3's router: (logits [tokens, experts], bias, k, n_group, topk_group) with a bias large enough
    to change the choice and groups of 2-8 experts."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        n_group = rng.choice([1, 2, 4, 8])
        experts = n_group * rng.choice([2, 4, 8])
        topk_group = rng.randint(1, n_group)
        k = rng.randint(1, min(8, topk_group * experts // n_group))
        logits = torch.randn(rng.randint(1, 6), experts, generator=gen)
        bias = 0.2 * torch.randn(experts, generator=gen)
        cases.append((logits, bias, k, n_group, topk_group))
    return cases


def random_expert_choices(n: int = 60, seed: int = 3) -> list[tuple]:
    """Notebook 01, the bias update: (bias, chosen expert indices [tokens, k], n_experts, gamma). Some loads put an
    expert exactly at the mean, and some experts get no token at all."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        experts, k = rng.choice([4, 8, 16]), rng.randint(1, 3)
        if rng.random() < 0.2:   # a perfectly even load: every expert at the mean
            indices = torch.arange(experts).repeat(k)[torch.randperm(experts * k, generator=gen)].view(-1, k)
        else:
            indices = torch.randint(0, experts, (rng.randint(2, 20), k), generator=gen)
        cases.append((0.01 * torch.randn(experts, generator=gen), indices, experts, rng.choice([1e-3, 1e-2, 0.1])))
    return cases


def random_sequence_routings(n: int = 60, seed: int = 11) -> list[tuple]:
    """Notebook 01, the sequence-wise balance loss: (sigmoid affinities [sequences x length, experts], chosen experts
    [tokens, k], experts, length, k, alpha), 1-4 sequences whose loads differ."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        experts, k, length, sequences = rng.choice([4, 8, 16]), rng.randint(1, 3), rng.randint(2, 12), rng.randint(1, 4)
        logits = torch.randn(sequences * length, experts, generator=gen) + 2 * torch.rand(experts, generator=gen)
        indices = logits.topk(k, dim=-1).indices
        cases.append((logits.sigmoid(), indices, experts, length, k, rng.choice([1e-4, 1e-3, 0.01])))
    return cases


def random_capacity_cases(n: int = 60, seed: int = 12) -> list[tuple]:
    """Notebook 01, token dropping: (chosen experts [tokens, k], distinct per token; capacity factor; experts), with
    factors below and above 1 and skewed loads, so that some experts overflow."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        experts, k, tokens = rng.choice([4, 8]), rng.randint(1, 3), rng.randint(3, 24)
        preference = torch.rand(experts, generator=gen) * 3          # some experts far more popular than others
        scores = torch.randn(tokens, experts, generator=gen) + preference
        indices = scores.topk(k, dim=-1).indices
        cases.append((indices, rng.choice([0.5, 0.75, 1.0, 1.25, 1.5, 2.0]), experts))
    return cases


def random_sequence_distill(n: int = 60, seed: int = 13) -> list[tuple]:
    """Notebook 02, token-level distillation on sequences: (student logits [batch, length, vocabulary], teacher
    logits, labels with -100 on the prompt and the padding, T)."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        batch, length, vocabulary = rng.randint(1, 4), rng.randint(2, 10), rng.randint(3, 12)
        labels = torch.randint(0, vocabulary, (batch, length), generator=gen)
        for row in range(batch):
            prompt = rng.randint(0, length - 1)                      # at least one answer token per row
            padding = rng.randint(0, length - 1 - prompt)
            labels[row, :prompt] = -100
            labels[row, length - padding:] = -100
        student = 3 * torch.randn(batch, length, vocabulary, generator=gen)
        teacher = 3 * torch.randn(batch, length, vocabulary, generator=gen)
        cases.append((student, teacher, labels, rng.choice([1.0, 2.0, 4.0, 8.0])))
    return cases


def random_language_texts(n: int = 200, seed: int = 14) -> list[tuple]:
    """Notebook 05, the language-consistency reward's English share: completions in the corpus's styles, their
    thinking in English, German or both, and texts without the format."""
    from course_utils import r1_zero

    rng = random.Random(seed)
    styles = list(r1_zero.STYLES)
    cases = []
    for _ in range(n):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        text = r1_zero.completion(a, b, rng.choice(styles), rng)
        if rng.random() < 0.1:
            text = text.replace("<think>", "").replace("</think>", "")   # the format broken: the whole text
        cases.append((text,))
    return cases


def random_distill_logits(n: int = 60, seed: int = 4, labels: bool = False) -> list[tuple]:
    """Notebook 02, the distillation loss: (student logits, teacher logits, T[, labels, alpha]) for batches of 1-8
    examples and 2-10 classes, at temperatures from 1 to 20."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        batch, classes = rng.randint(1, 8), rng.randint(2, 10)
        student = 3 * torch.randn(batch, classes, generator=gen)
        teacher = 3 * torch.randn(batch, classes, generator=gen)
        temperature = rng.choice([1.0, 2.0, 4.0, 8.0, 20.0])
        if labels:
            cases.append((student, teacher, torch.randint(0, classes, (batch,), generator=gen), temperature,
                          rng.choice([0.1, 0.5, 0.9])))
        else:
            cases.append((student, teacher, temperature))
    return cases


def random_latencies(n: int = 100, seed: int = 5) -> list[tuple]:
    """Notebook 03, a load test's percentile: (latencies in seconds, q) with 1-40 values, repeats, and q at the ends."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        values = [round(rng.uniform(0.05, 3.0), 3) for _ in range(rng.randint(1, 40))]
        if len(values) > 2 and rng.random() < 0.3:
            values[1] = values[0]
        cases.append((values, rng.choice([0, 50, 90, 99, 100, rng.randint(1, 99)])))
    return cases


def random_kv_budgets(n: int = 100, seed: int = 6) -> list[tuple]:
    """Notebook 03, KV capacity: (cache bytes, KV bytes per token, block size), with budgets that leave a partial
    block and per-token sizes that do not divide them."""
    rng = random.Random(seed)
    return [(rng.choice([1, 2, 4, 8, 20.5, 70.25]) * 2**30, rng.choice([768, 28672, 57344, 131072, 70272, 1000.5]),
             rng.choice([16, 32, 128])) for _ in range(n)]


def random_pass_counts(n: int = 200, seed: int = 7) -> list[tuple]:
    """Notebook 05, pass@k: (samples n, right c, k) with c from 0 to n, k from 1 to n, and cases where fewer than k
    samples are wrong (pass@k is then exactly 1)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        samples = rng.choice([1, 2, 4, 8, 16, 64])
        cases.append((samples, rng.randint(0, samples), rng.randint(1, samples)))
    return cases


def random_logprob_pairs(n: int = 60, seed: int = 8) -> list[tuple]:
    """Notebook 05, the k3 KL estimate: (policy log-probabilities, reference log-probabilities) [completions, tokens],
    some positions equal."""
    gen = torch.Generator().manual_seed(seed)
    cases = []
    for _ in range(n):
        shape = tuple(torch.randint(1, 6, (2,), generator=gen).tolist())
        logp = -3 * torch.rand(shape, generator=gen)
        ref = torch.where(torch.rand(shape, generator=gen) < 0.2, logp, -3 * torch.rand(shape, generator=gen))
        cases.append((logp, ref))
    return cases


def random_break_evens(n: int = 60, seed: int = 9) -> list[tuple]:
    """Notebook 06, break-even throughput: (GPU $ per hour, GPUs, API $ per million output tokens)."""
    rng = random.Random(seed)
    return [(rng.choice([0.35, 0.8, 1.2, 2.5, 4.0]), rng.choice([1, 2, 4, 8]), rng.choice([0.42, 1.1, 2.19, 8.0]))
            for _ in range(n)]


def random_solve_payloads(max_model_len: int, n: int = 120, seed: int = 10) -> list[dict]:
    """Notebook 06, the typed endpoint: JSON bodies for ``/solve``, in and out of each range and at its edges."""
    rng = random.Random(seed)
    questions = ["", "x", "What is 2 + 2?", "q" * 3999, "q" * 4000, "q" * 4001]
    tokens = [0, 1, 2, max_model_len - 1, max_model_len, max_model_len + 1, -5, "many", "12"]
    temperatures = [0, 0.0, 0.6, 2.0, 2.01, -0.1, 5, "hot"]
    payloads = []
    for _ in range(n):
        payload = {"question": rng.choice(questions)}
        if rng.random() < 0.8:
            payload["max_tokens"] = rng.choice(tokens)
        if rng.random() < 0.8:
            payload["temperature"] = rng.choice(temperatures)
        payloads.append(payload)
    return payloads


def random_softmax_scales(n: int = 60, seed: int = 20) -> list[tuple]:
    """Notebook 07, MLA's softmax scale: (nope dim, rope dim, YaRN settings or None); some YaRN settings without
    mscale_all_dim (then no extra factor)."""
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        yarn = None
        if rng.random() < 0.7:
            yarn = {"rope_type": "yarn", "factor": rng.choice([4.0, 16.0, 40.0]),
                    "mscale_all_dim": rng.choice([0.0, 0.707, 1.0]), "mscale": 1.0}
        cases.append((rng.choice([32, 64, 128]), rng.choice([16, 32, 64]), yarn))
    return cases


def random_cache_inputs(n: int = 40, seed: int = 21) -> list[tuple]:
    """Notebook 07, one MLA cache entry: (hidden states [batch, tokens, hidden], W_kv_a [latent + rope, hidden], the
    latent's RMSNorm weight, positions, latent size, rope size), at positions that do not start at 0."""
    gen = torch.Generator().manual_seed(seed)
    rng = random.Random(seed)
    cases = []
    for _ in range(n):
        hidden, latent, rope = rng.choice([16, 32]), rng.choice([8, 16]), rng.choice([4, 8])
        tokens, start = rng.randint(1, 6), rng.randint(0, 50)
        x = torch.randn(rng.randint(1, 2), tokens, hidden, generator=gen)
        w = torch.randn(latent + rope, hidden, generator=gen) * hidden ** -0.5
        norm = 1 + 0.1 * torch.randn(latent, generator=gen)
        cases.append((x, w, norm, torch.arange(start, start + tokens), latent, rope))
    return cases
