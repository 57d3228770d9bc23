"""What every page the suite writes shares: the output folder, number formatting, tables,
inlined figures, CSS and the page's parts.

Used by the claim report (:mod:`robmem.bridge.report`) and ``robmem analyze``
(:mod:`robmem.bridge.analyze_render`), so that both look and read alike.
"""

from __future__ import annotations

import base64
import html
import json
import math
import pathlib
from typing import Any

import numpy as np

#: Folder of the PNG files, inside every output folder.
FIGURES_DIR = "figures"

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


# ============================================================================ output folder
def check_output_dir(
    out_dir: str | pathlib.Path, marker_file: str, kind: str, *, force: bool = False
) -> dict[str, Any] | None:
    """Raise unless ``out_dir`` may be written; return the marker of a previous output of the
    same ``kind`` (e.g. ``"robmem-report"``) found in it, if any.

    Creates nothing, so a command rejected later leaves no folder behind.

    Raises
    ------
    FileExistsError
        ``out_dir`` is a file, or a non-empty folder that holds no previous output of ``kind``
        (and not ``force``).
    """
    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out={out} exists and is not a folder")
    if not (out.is_dir() and any(out.iterdir())):
        return None
    try:
        previous = json.loads((out / marker_file).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        previous = None
    if isinstance(previous, dict) and previous.get("kind") == kind:
        return previous
    if not force:
        raise FileExistsError(
            f"out={out} is not empty and holds no previous {kind.replace('-', ' ')}; choose an "
            "empty or new folder, or pass --force to write into it (no file is deleted)"
        )
    return None


def prepare_output_dir(
    out_dir: str | pathlib.Path, marker_file: str, kind: str, *, force: bool = False
) -> pathlib.Path:
    """Create ``out_dir`` and its figures folder after :func:`check_output_dir`; remove only
    the files a previous output of the same kind listed in its marker."""
    out = pathlib.Path(out_dir)
    previous = check_output_dir(out, marker_file, kind, force=force)
    if previous is not None:
        for rel in previous.get("files", []):
            path = (out / rel).resolve()
            if out.resolve() in path.parents and path.is_file():
                path.unlink()
    (out / FIGURES_DIR).mkdir(parents=True, exist_ok=True)
    return out


# ============================================================================ page parts
def html_page(title: str, body: list[str]) -> str:
    """A self-contained HTML page: head with ``title`` and the CSS, then ``body``, a part a line."""
    head = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        f"<style>{CSS}</style></head><body>",
    ]
    return "\n".join([*head, *body, "</body></html>"])


def html_notes(notes: list[str]) -> list[str]:
    return [f"<p><i>Note.</i> {html.escape(note)}</p>" for note in notes]


def html_details(
    numbers: dict[str, Any],
    table: list[dict[str, Any]],
    figures: list[tuple[str, str]],
    notes: list[str],
    out: pathlib.Path,
    numbers_attrs: str = "",
) -> list[str]:
    """A section's numbers, table, figures (``(file name, caption)``, read from
    ``out/figures`` and inlined) and notes, as HTML parts."""
    esc = html.escape
    parts = []
    if numbers:
        rows = "".join(
            f"<tr><td>{esc(k)}</td><td>{esc(format_number(v))}</td></tr>"
            for k, v in numbers.items()
        )
        parts.append(f"<table{numbers_attrs}><tr><th>number</th><th>value</th></tr>{rows}</table>")
    parts.append(html_table(table))
    for name, caption in figures:
        uri = png_data_uri(out / FIGURES_DIR / name)
        parts.append(
            f"<figure><img src='{uri}' alt='{esc(name)}'>"
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    return parts + html_notes(notes)


def md_notes(notes: list[str]) -> list[str]:
    return [line for note in notes for line in (f"*Note.* {note}", "")]


def md_details(
    numbers: dict[str, Any],
    table: list[dict[str, Any]],
    figures: list[tuple[str, str]],
    notes: list[str],
) -> list[str]:
    """The Markdown twin of :func:`html_details` (figures linked from ``figures/``), as lines."""
    lines = []
    if numbers:
        lines += ["| number | value |", "|---|---|"]
        lines += [f"| {k} | {format_number(v)} |" for k, v in numbers.items()]
        lines.append("")
    if table:
        lines += [md_table(table), ""]
    for name, caption in figures:
        lines += [f"![{name}]({FIGURES_DIR}/{name})", "", f"*{caption}*", ""]
    return lines + md_notes(notes)
