"""Each notebook's results summary: named rows of what this run measured beside the published reference and what
that reference is, shown as one table; the checks read a row by its name (``summary.measured("...")``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from course_utils import quick


@dataclass
class Summary:
    what: str                                   # what the measured column is, e.g. "this notebook (toy MoE LM)"
    rows: dict[str, tuple] = field(default_factory=dict)

    def add(self, name: str, measured, reference="-", about: str = "") -> None:
        """One row: this run's figure, the published one (or "-") and what the published one is."""
        self.rows[name] = (measured, reference, about)

    def measured(self, name: str):
        """This run's figure in the row ``name`` (a KeyError names the rows there are)."""
        if name not in self.rows:
            raise KeyError(f"no summary row {name!r}; the rows: {', '.join(self.rows)}")
        return self.rows[name][0]

    def reference(self, name: str):
        return self.rows[name][1]

    def table(self):
        """The rows as a DataFrame, the measured column marked in the quick mode."""
        import pandas as pd

        columns = [quick.label(self.what, short=True), "published", "what the published figure is"]
        frame = pd.DataFrame([[_show(m), _show(r), about] for m, r, about in self.rows.values()],
                             index=list(self.rows), columns=columns)
        if not any(about for _, _, about in self.rows.values()):
            frame = frame.drop(columns=columns[2])
        return frame

    def _repr_html_(self):
        import pandas as pd

        with pd.option_context("display.max_colwidth", 100):
            return self.table()._repr_html_()

    def __repr__(self) -> str:
        import pandas as pd

        with pd.option_context("display.max_colwidth", 100, "display.width", 200):
            return repr(self.table())


def _show(value) -> str:
    """Numbers as numbers (0.207, not np.float64(0.2068...)), rounded to 3 significant decimals where long."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value)
