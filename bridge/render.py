"""What every page the suite writes shares: number formatting, tables, inlined figures, CSS.

Used by the claim report (:mod:`bridge.report`) and ``robmem analyze``
(:mod:`bridge.analyze_render`), so that both look and read alike.
"""

from __future__ import annotations

import base64
import html
import math
import pathlib
from typing import Any

import numpy as np

#: Significant digits of numbers in the tables (JSON keeps full precision).
TABLE_DIGITS: int = 4

CSS = """
body{font-family:system-ui,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d1d1f;line-height:1.45}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:.92em}th{background:#f2f2f2}
.verdict{font-weight:600;color:#fff;padding:1px 7px;border-radius:4px;white-space:nowrap}
section{border-top:2px solid #ddd;margin-top:1.6em;padding-top:.4em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:.9em;color:#333}code{background:#f5f5f5;padding:1px 4px}
.crit{background:#f7f7fb;border-left:4px solid #8888cc;padding:.4em .8em}
"""


def format_number(value: Any) -> str:
    """How a number appears in the HTML/Markdown tables (the JSON keeps full precision)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        if math.isnan(v):
            return "n/a"
        return f"{v:.{TABLE_DIGITS}g}"
    return str(value)


def json_safe(value: Any) -> Any:
    """Non-finite floats → None, numpy → Python, paths → str, recursively (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, pathlib.Path):
        return str(value)
    return value


def png_data_uri(path: pathlib.Path) -> str:
    """A PNG file as a ``data:`` URI (self-contained HTML)."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols.extend(c for c in row if c not in cols)
    return cols


def html_table(rows: list[dict[str, Any]]) -> str:
    """Rows (dicts; columns in first-seen order) as an HTML table ('' for no rows)."""
    if not rows:
        return ""
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(format_number(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table class='detail'><tr>{head}</tr>{body}</table>"


def md_table(rows: list[dict[str, Any]]) -> str:
    """Rows as a Markdown table ('' for no rows); '|' in cells is escaped."""
    if not rows:
        return ""
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = (format_number(r.get(c)).replace("|", "\\|") for c in cols)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
