"""Tests of ``robmem sizes`` (every flag)."""

from __future__ import annotations

import json

import pytest

from robmem.bridge.cli import main

BASE = ["sizes", "--n", "50", "--d", "6", "--eps", "0.1", "--delta", "0.05"]


def test_table_is_printed(capsys) -> None:
    assert main(BASE) == 0
    out = capsys.readouterr().out
    assert "T2 size table: N=50, d=6" in out and "vacuous at n = N: yes" in out


def test_every_flag(capsys) -> None:
    assert main(BASE + ["--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    rows = {r["key"]: r["value"] for r in base["rows"]}
    assert main(BASE + ["--json", "--norm", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"]
    assert main(BASE + ["--json", "--clean-hidden-layers", "2"]) == 0
    deeper = {r["key"]: r["value"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert deeper["clean_size"] == 2 * 6 * 7 + 7 and rows["clean_size"] == 6 * 7 + 7
    assert main(BASE + ["--json", "--confidence", "0.5"]) == 0
    conf = {r["key"]: r["value"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert conf["vc_gap_at_n"] < rows["vc_gap_at_n"]
    assert main(BASE + ["--json", "--C", "3"]) == 0
    c3 = {r["key"]: r["value"] for r in json.loads(capsys.readouterr().out)["rows"]}
    assert c3["memorization_lower"] == pytest.approx(3 * rows["memorization_lower"])


@pytest.mark.parametrize(
    ("flag", "value", "name"),
    [
        ("--n", "0", "n_points"),
        ("--d", "0", "dim"),
        ("--eps", "0.7", "eps"),
        ("--delta", "0.2", "delta"),
        ("--confidence", "1.0", "confidence"),
    ],
)
def test_bad_input_exits_2_naming_the_argument(capsys, flag, value, name) -> None:
    args = list(BASE)
    if flag in args:
        args[args.index(flag) + 1] = value
    else:
        args += [flag, value]
    assert main(args) == 2
    assert name in capsys.readouterr().err
