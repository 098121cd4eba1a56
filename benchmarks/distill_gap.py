"""Why does notebook 02's digits student close less of the teacher-student gap than Hinton et al.'s 91%? Each factor
the notebook could change, measured on the same teachers and seeds: temperature and alpha, a jittered transfer set
(the teacher labels a fresh noisy copy of every image each epoch), training length, the student's size, and whether
a validation split can choose the temperature. Prints one table per factor with the share of the gap closed.

    python benchmarks/distill_gap.py [--seeds 0 1 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import course_utils  # noqa: F401  (first: it sets the OpenMP spin before torch loads OpenMP)

# isort: split
import torch

from course_utils import distill as D

ROOT = Path(__file__).resolve().parent.parent


class Setup:
    """The digits split, the notebook's teachers (one per seed) and their logits on the training images."""

    def __init__(self, seeds: list[int]):
        self.seeds = seeds
        self.x, self.x_test, self.y, self.y_test = D.digits_split()
        self.teachers = {s: D.digits_teacher(self.x, self.y, s) for s in seeds}
        self.logits = {s: t(self.x).detach() for s, t in self.teachers.items()}
        self.teacher_errors = statistics.mean(D.errors(t, self.x_test, self.y_test)
                                              for t in self.teachers.values())

    def student(self, seed: int, hidden: int = 16, kd: bool = True, temperature: float = 4.0, alpha: float = 0.9,
                epochs: int = 600, jitter: float = 0.0, rows=None) -> torch.nn.Module:
        rows = slice(None) if rows is None else rows
        model = D.mlp([64, hidden, 10], seed=seed)
        if jitter:
            return self._jittered(model, seed, temperature, alpha, epochs, jitter)
        teacher_logits = self.logits[seed][rows] if kd else None
        return D.train_classifier(model, self.x[rows], self.y[rows], seed=seed, epochs=epochs,
                                  lr=D.DIGITS["student"]["lr"],
                                  teacher_logits=teacher_logits, temperature=temperature, alpha=alpha)

    def _jittered(self, model, seed, temperature, alpha, epochs, jitter):
        torch.manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=D.DIGITS["student"]["lr"])
        for _ in range(epochs):
            noisy = self.x + jitter * torch.randn_like(self.x)
            with torch.no_grad():
                targets = self.teachers[seed](noisy)   # the teacher labels this epoch's noisy copy
            loss = D.kd_loss(model(noisy), targets, self.y, temperature=temperature, alpha=alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return model.eval()

    def row(self, **options) -> dict:
        scratch_options = {k: v for k, v in options.items() if k in ("hidden", "epochs")}
        scratch = statistics.mean(D.errors(self.student(s, kd=False, **scratch_options), self.x_test, self.y_test)
                                  for s in self.seeds)
        distilled = [D.errors(self.student(s, **options), self.x_test, self.y_test) for s in self.seeds]
        gap = scratch - self.teacher_errors
        return {**options, "teacher": round(self.teacher_errors, 1), "scratch": round(scratch, 1),
                "distilled": round(statistics.mean(distilled), 1), "distilled per seed": distilled,
                "gap (errors)": round(gap, 1), "share closed": round(D.gap_closed(self.teacher_errors, scratch,
                                                                                   statistics.mean(distilled)), 2)}


def validation_choice(setup: Setup, hidden: int, temperatures=(1, 2, 4, 8, 20)) -> dict:
    """Validation errors per temperature: students fitted on 80% of the training images, counted on the other 20%."""
    order = torch.randperm(len(setup.x), generator=torch.Generator().manual_seed(7))
    held, fit = order[: len(order) // 5], order[len(order) // 5:]
    seed = setup.seeds[0]
    errors = {t: D.errors(setup.student(seed, hidden, temperature=t, rows=fit), setup.x[held], setup.y[held])
              for t in temperatures}
    return {"hidden": hidden, "validation images": len(held), "validation errors by T": errors}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="build/benchmarks/distill_gap.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    setup = Setup(args.seeds)
    factors = {
        "temperature and alpha": [dict(temperature=t, alpha=a) for t in (1, 2, 4, 8, 20) for a in (0.5, 0.9, 1.0)],
        "jittered transfer set": [dict(jitter=j, temperature=t) for j in (0.05, 0.1, 0.2) for t in (2, 4, 20)],
        "training length (both students)": [dict(epochs=e) for e in (300, 600, 1200, 2400)],
        "student size (hidden units)": [dict(hidden=h) for h in (16, 32, 64, 128)],
    }
    results = {}
    for factor, settings in factors.items():
        results[factor] = [setup.row(**options) for options in settings]
        print(f"\n== {factor} (T = 4, alpha = 0.9, 600 epochs, 16 hidden units unless stated; seeds {args.seeds})")
        for row in results[factor]:
            print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    results["validation split"] = [validation_choice(setup, h) for h in (16, 64, 128)]
    print("\n== can a validation split choose T?")
    for row in results["validation split"]:
        print("  " + ", ".join(f"{k} {v}" for k, v in row.items()))
    print(f"\n{time.perf_counter() - started:.0f} s, {args.threads} thread(s)")
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
