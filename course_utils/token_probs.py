"""Inside the model: the probability the model gave to each token it generated, read with ``transformers``.

One forward pass over prompt + completion gives, at every position, the model's distribution over the next token;
the probability of the token that was actually written says how sure the model was there. Low values mark the
places where sampling could have gone another way.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def token_probabilities(model, tokenizer, prompt: str, completion: str,
                        chunk: int = 512) -> list[tuple[str, float, float]]:
    """(token text, probability, entropy in nats of the distribution it was drawn from) for each completion token.

    The decoder runs once; the output head and the softmax run on ``chunk`` positions at a time. A real distill's
    vocabulary has 151,936 tokens: full fp32 logits, log-softmax and its exponential for an 8,192-token completion
    would take about 15 GB at once, beside a vLLM engine; in chunks of 512 it is under 1 GB."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive number of positions, got {chunk!r}")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if not completion_ids:
        return []
    ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
    hidden = model.get_decoder()(input_ids=ids).last_hidden_state[0, len(prompt_ids) - 1:-1]
    head = model.get_output_embeddings()
    targets = torch.tensor(completion_ids, device=model.device)
    chosen, entropy = [], []
    for h, t in zip(hidden.split(chunk), targets.split(chunk), strict=True):
        log_p = torch.log_softmax(head(h).float(), dim=-1)
        chosen.append(log_p.gather(1, t[:, None])[:, 0].exp())
        entropy.append(-(log_p.exp() * log_p).sum(-1))
    pieces = [tokenizer.decode([t]) for t in completion_ids]
    return list(zip(pieces, torch.cat(chosen).tolist(), torch.cat(entropy).tolist(), strict=True))


# Two engines that decode greedily in different kernels (and on a T4 in another dtype) can part where the model's two
# best tokens are almost tied: float rounding of a few tenths of a nat in bf16/fp16 logits decides. A bar of 1 nat
# (the first choice about 2.7 times as likely as the second) leaves room for that and still rejects a real
# disagreement, such as a different model, chat template or sampling setting, which parts at confident tokens.
NEAR_TIE_NATS = 1.0


@torch.no_grad()
def first_divergence(model, tokenizer, prompt: str, text_a: str, text_b: str) -> dict | None:
    """Where two greedy completions of one prompt part, and how close the choice was there under ``model``: the gap
    in log-probability between the two tokens written at the first differing position. None when they are equal.
    A completion that stops earlier wrote the end-of-text token there."""
    a = tokenizer(text_a, add_special_tokens=False)["input_ids"]
    b = tokenizer(text_b, add_special_tokens=False)["input_ids"]
    if a == b:
        return None
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + a[:at]], device=model.device)
    log_p = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), dim=-1)
    token_a = a[at] if at < len(a) else tokenizer.eos_token_id
    token_b = b[at] if at < len(b) else tokenizer.eos_token_id
    return {"position": at, "token a": tokenizer.decode([token_a]), "token b": tokenizer.decode([token_b]),
            "gap (nats)": abs(log_p[token_a] - log_p[token_b]).item()}


def plot_token_probabilities(rows: list[tuple[str, float, float]], ax=None, width: int = 40, title: str = ""):
    """Draw the completion as text, each token on a cell coloured by its probability (red = unsure)."""
    import matplotlib.pyplot as plt

    lines, line = [], []
    for piece, p, _ in rows:
        if "\n" in piece:                  # a line break ends the drawn line (shown as ↵ when nothing else is there)
            line.append((piece.strip("\n") or "↵", p))
            lines.append(line)
            line = []
            continue
        line.append((piece, p))
        if len(line) >= width:
            lines.append(line)
            line = []
    lines.append(line)
    longest = max(map(len, lines)) or 1
    if ax is None:
        _, ax = plt.subplots(figsize=(min(14, 0.36 * longest + 1), 0.3 * len(lines) + 0.6))
    cmap = plt.get_cmap("RdYlGn")
    for y, row in enumerate(lines):
        for x, (piece, p) in enumerate(row):
            ax.add_patch(plt.Rectangle((x, -y - 1), 1, 1, color=cmap(p)))
            ax.text(x + 0.5, -y - 0.5, piece.replace(" ", "·"), ha="center", va="center", fontsize=7)
    ax.set_xlim(0, longest)
    ax.set_ylim(-len(lines), 0)
    ax.axis("off")
    ax.set_title(title or "probability of each generated token (red: unsure, green: sure)", fontsize=9)
    return ax


def overflowed(rows: list[tuple[str, float, float]]) -> bool:
    """Did the model's logits overflow on these tokens (NaN probabilities): an fp16 copy of a Qwen2-based distill
    can, on a GPU without bfloat16 such as a T4. The caller leaves such a completion out and says so."""
    import math

    return any(math.isnan(probability) for _, probability, _ in rows)
