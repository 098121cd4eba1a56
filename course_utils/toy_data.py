"""Datasets generated on the spot, so nothing is downloaded: a mixed-domain text corpus for language models.

Three domains with clearly different statistics, all from the Python installation itself:
arithmetic (generated), Python source (standard-library modules) and English prose (standard-library docstrings).
Text is encoded as bytes (one token per ASCII character, vocabulary 128).
"""

from __future__ import annotations

import importlib
import inspect
import random
from dataclasses import dataclass

import torch

VOCAB_SIZE = 128
DOMAINS = ("arithmetic", "python", "prose")
_SOURCE_MODULES = ("textwrap", "string", "bisect", "heapq", "fnmatch", "shlex", "calendar", "colorsys", "glob",
                   "difflib", "statistics", "fractions", "json.decoder", "json.encoder", "copy", "queue")
_DOC_MODULES = ("os.path", "json", "random", "statistics", "textwrap", "string", "functools", "itertools",
                "collections", "datetime", "math", "heapq", "bisect", "pathlib", "shutil", "re", "difflib",
                "calendar", "fractions", "decimal", "argparse", "logging", "threading", "subprocess", "csv")


def arithmetic_text(n_lines: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        op = rng.choice("+-*")
        result = a + b if op == "+" else a - b if op == "-" else a * b
        lines.append(f"{a}{op}{b}={result}")
    return "\n".join(lines) + "\n"


def python_text() -> str:
    return "\n".join(inspect.getsource(importlib.import_module(m)) for m in _SOURCE_MODULES)


def prose_text() -> str:
    """Docstrings of public functions and classes: English prose (with a little inline code).
    Submodules are skipped: which of them a package holds as attributes depends on what the process imported
    before (a notebook kernel imports more than a script), and the corpus must not."""
    docs = []
    for name in _DOC_MODULES:
        module = importlib.import_module(name)
        for attr in sorted(dir(module)):
            value = getattr(module, attr, None)
            public = not attr.startswith("_") and not inspect.ismodule(value)
            doc = inspect.getdoc(value) if public else None
            if doc and len(doc) > 200 and doc not in docs:
                docs.append(doc)
    return "\n\n".join(docs)


def encode(text: str) -> torch.Tensor:
    """Bytes of the ASCII text; anything else becomes '?'."""
    return torch.tensor([b if b < VOCAB_SIZE else ord("?") for b in text.encode("ascii", "replace")],
                        dtype=torch.long)


def decode(tokens) -> str:
    return bytes(int(t) for t in tokens).decode("ascii", "replace")


@dataclass
class MixedCorpus:
    """One token stream per domain, split into train and validation (the last ``val_fraction`` of each)."""

    train: dict[str, torch.Tensor]
    val: dict[str, torch.Tensor]

    @classmethod
    def build(cls, chars_per_domain: int = 200_000, val_fraction: float = 0.1, seed: int = 0) -> MixedCorpus:
        texts = {"arithmetic": arithmetic_text(chars_per_domain // 10, seed), "python": python_text(),
                 "prose": prose_text()}
        train, val = {}, {}
        for domain, text in texts.items():
            tokens = encode(text)[:chars_per_domain]
            cut = int(len(tokens) * (1 - val_fraction))
            train[domain], val[domain] = tokens[:cut], tokens[cut:]
        return cls(train, val)

    def batch(self, batch_size: int, seq_len: int, generator: torch.Generator, split: str = "train"):
        """``batch_size`` windows of ``seq_len + 1`` tokens, the same number from each domain.
        Returns (inputs, targets, domain index per row)."""
        streams = self.train if split == "train" else self.val
        rows, domains = [], []
        for i in range(batch_size):
            d = i % len(DOMAINS)
            stream = streams[DOMAINS[d]]
            start = int(torch.randint(0, len(stream) - seq_len - 1, (1,), generator=generator))
            rows.append(stream[start:start + seq_len + 1])
            domains.append(d)
        data = torch.stack(rows)
        return data[:, :-1], data[:, 1:], torch.tensor(domains)
