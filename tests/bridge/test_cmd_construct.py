"""`robmem construct`: every flag, through robmem.bridge.cli.main."""

import re

import pytest

from robmem.bridge.cli import main
from robmem.empirics.idx import default_mnist_test_dir


def _run(capsys, *argv):
    code = main(["construct", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _row(text, key):
    for line in text.splitlines():
        parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        if parts[0] == key:
            return parts[1] if len(parts) > 1 else ""
    raise AssertionError(f"row {key!r} missing in:\n{text}")


def test_digits_linf(capsys):
    code, out, _ = _run(capsys, "--data", "digits", "--delta", "0.1", "-n", "60")
    assert code == 0
    assert _row(out, "N (memorized/total)") == "60/60"
    assert _row(out, "d") == "64"
    assert _row(out, "certified").startswith("100.00%")
    assert _row(out, "parameters (non-zero)") == _row(out, "parameters (closed form)")
    assert _row(out, "δ").startswith("0.1")


def test_synthetic_flags(capsys):
    code, out, _ = _run(
        capsys,
        "--data",
        "synthetic",
        "--delta",
        "0.05",
        "-n",
        "25",
        "--dim",
        "3",
        "--seed",
        "2",
        "--clean",
        "linear",
    )
    assert code == 0
    assert _row(out, "d") == "3" and _row(out, "N (memorized/total)") == "25/25"
    assert _row(out, "f_clean") == "linear"
    assert _row(out, "f̂ = f_clean outside β-balls") == "True"


def test_small_margin_subset(capsys):
    code, out, _ = _run(
        capsys, "--data", "synthetic", "--delta", "0.05", "-n", "80", "--subset", "small-margin"
    )
    assert code == 0
    memorized, total = map(int, _row(out, "N (memorized/total)").split("/"))
    assert total == 80 and memorized < total
    assert _row(out, "certified").startswith("100.00%")


def test_l2_sawtooth_and_teeth(capsys):
    code, out, _ = _run(
        capsys,
        "--data",
        "digits",
        "--delta",
        "0.1",
        "-n",
        "20",
        "--norm",
        "2",
        "--l2-method",
        "sawtooth",
        "--teeth",
        "4",
    )
    assert code == 0
    assert "l2-sawtooth, m=4" in _row(out, "distance")
    assert _row(out, "parameters (non-zero)") == _row(out, "parameters (closed form)")


def test_l2_inclusion(capsys):
    code, out, _ = _run(capsys, "--data", "digits", "--delta", "0.1", "-n", "20", "--norm", "2")
    assert code == 0 and _row(out, "distance") == "linf"


@pytest.mark.skipif(default_mnist_test_dir() is None, reason="MNIST test set not found")
def test_mnist_subset(capsys):
    code, out, _ = _run(capsys, "--data", "mnist10k", "--delta", "0.3", "-n", "50")
    assert code == 0 and _row(out, "d") == "784"


def test_bad_delta_is_a_user_error(capsys):
    code, _, err = _run(capsys, "--data", "digits", "--delta", "0.3", "-n", "200")
    assert code == 2 and "delta: must be <" in err and "closest opposite-label pair" in err
    code, _, err = _run(capsys, "--data", "digits", "--delta", "-1")
    assert code == 2 and "--delta" in err
    code, _, err = _run(capsys, "--data", "digits", "--delta", "0.1", "-n", "0")
    assert code == 2 and "-n" in err


def test_choices_are_enforced(capsys):
    with pytest.raises(SystemExit):
        main(["construct", "--data", "cifar", "--delta", "0.1"])
    with pytest.raises(SystemExit):
        main(["construct", "--data", "digits", "--delta", "0.1", "--norm", "1"])
