"""Progress bars that a saved notebook shows finished.

tqdm's notebook bars are widgets: a notebook saved after its run keeps only their first state, "0% | 0/500", so a
finished training looks as if it never started. These are tqdm's text bars, written to the cell's output at most
once a second; Jupyter draws each update over the last, so the saved output shows where each bar ended.
"""

from __future__ import annotations

import sys


def bar(iterable=None, **options):
    """``tqdm(iterable, ...)`` as a text bar on stdout that stays when done; tqdm's options pass through."""
    from tqdm.std import tqdm

    options = {"mininterval": 1.0, "file": sys.stdout, "dynamic_ncols": False, "ncols": 100, **options}
    options["leave"] = True
    return tqdm(iterable, **options)
