"""The smoke-tier report: structure, figures, numbers, and the CLI's bad-input handling."""

from __future__ import annotations

import csv
import json
import pathlib
import re

import pytest

from robmem.bridge.cli import main
from robmem.bridge.registry import CLAIM_IDS
from robmem.bridge.report import MARKER_FILE, format_number
from robmem.bridge.verdicts import VERDICTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "out"
    cache = tmp_path_factory.mktemp("cache")
    rc = main(["report", "--tier", "smoke", "--out", str(out), "--cache-dir", str(cache)])
    assert rc == 0
    return out, cache


def _doc(out):
    return json.loads((out / "report.json").read_text())


def test_every_claim_present_with_a_verdict(smoke_report) -> None:
    out, _ = smoke_report
    doc = _doc(out)
    assert doc["tier"] == "smoke"
    assert [c["id"] for c in doc["claims"]] == list(CLAIM_IDS)
    md = (out / "report.md").read_text()
    html = (out / "index.html").read_text()
    for c in doc["claims"]:
        assert c["verdict"] in VERDICTS
        assert c["error"] is None, f"{c['id']} failed: {c['error']}"
        assert f"## {c['id']}." in md and f"id='{c['id']}'" in html
        assert c["command"].startswith("robmem report --tier smoke --claims " + c["id"])
        assert c["command"] in md
    # the summary table comes first and lists every claim
    table = md.split("## Verdicts", 1)[1].split("\n## ", 1)[0]
    for cid in CLAIM_IDS:
        assert re.search(rf"^\| {cid} \|", table, flags=re.M), cid


def test_every_figure_exists_and_is_a_png(smoke_report) -> None:
    import matplotlib.image as mpimg

    out, _ = smoke_report
    doc = _doc(out)
    figures = [f for c in doc["claims"] for f in c["figures"]]
    assert len(figures) >= 8
    html = (out / "index.html").read_text()
    for f in figures:
        path = out / f["file"]
        assert path.read_bytes()[:8] == PNG_MAGIC, f["file"]
        img = mpimg.imread(path)
        assert img.shape[0] >= 300 and img.shape[1] >= 400
        assert "Tier: smoke" in f["caption"] and "Data:" in f["caption"] and "ε" in f["caption"]
        assert f"]({f['file']})" in (out / "report.md").read_text()
    # self-contained: images inlined, nothing fetched from elsewhere
    assert html.count("src='data:image/png;base64,") == len(figures)
    assert "http://" not in html and "https://" not in html


def test_json_numbers_match_tables_and_csv(smoke_report) -> None:
    out, _ = smoke_report
    doc = _doc(out)
    md = (out / "report.md").read_text()
    rows = list(csv.DictReader((out / "numbers.csv").open()))
    csv_numbers = {(r["claim"], r["number"]): r["value"] for r in rows}
    n = 0
    for c in doc["claims"]:
        section = md.split(f"## {c['id']}.", 1)[1].split("\n## ", 1)[0]
        for key, value in c["numbers"].items():
            assert f"| {key} | {format_number(value)} |" in section, (c["id"], key)
            want = "" if value is None else str(value)
            assert csv_numbers[(c["id"], key)] == want
            n += 1
        for key, est in c["estimates"].items():  # every estimate: mean, CI, n, per-seed values
            assert f"| {key} | {format_number(est['mean'])} |" in section, (c["id"], key)
            row = next(r for r in rows if r["claim"] == c["id"] and r["number"] == key)
            assert row["n"] == str(est["n"]) and row["method"] == est["method"]
            if est["method"] == "t":
                assert len(row["values"].split(";")) == est["n"]
            n += 1
    assert n == len(rows) and n > 20


def test_pandas_reads_the_numbers(smoke_report) -> None:
    pd = pytest.importorskip("pandas")
    out, _ = smoke_report
    df = pd.read_csv(out / "numbers.csv")
    assert {"claim", "number", "value", "ci_low", "ci_high", "n"} <= set(df.columns)


def test_theory_claims_verified_and_no_smoke_verdicts(smoke_report) -> None:
    """The report's mathematics is asserted: T1-T4 pass in a smoke report (a forced failure of
    any of them turns this red), and no empirical claim gets a scientific verdict at smoke."""
    out, _ = smoke_report
    doc = _doc(out)
    verdicts = {c["id"]: c["verdict"] for c in doc["claims"]}
    for cid in ("T1", "T2", "T3", "T4"):
        assert verdicts[cid] == "verified", (cid, verdicts[cid])
    kinds = {c["id"]: c["kind"] for c in doc["claims"]}
    for cid, verdict in verdicts.items():
        if kinds[cid] == "empirical":
            assert verdict in ("pipeline checked (no verdict)", "not run at this tier"), cid
    assert doc["amendments"] and "## Amendments" in (out / "report.md").read_text()


def test_rerun_into_previous_report_reuses_cache(smoke_report, capsys) -> None:
    out, cache = smoke_report
    rc = main(["report", "--tier", "smoke", "--out", str(out), "--cache-dir", str(cache)])
    assert rc == 0
    doc = _doc(out)
    assert doc["cache_hits"] and not doc["cache_misses"]
    assert json.loads((out / MARKER_FILE).read_text())["kind"] == "robmem-report"


def _run(args, capsys):
    rc = main(args)
    return rc, capsys.readouterr()


def test_refuses_foreign_folder_unless_force_and_never_deletes(tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    args = ["report", "--tier", "smoke", "--claims", "T3", "--out", str(out),
            "--cache-dir", str(tmp_path / "c")]  # fmt: skip
    rc, cap = _run(args, capsys)
    assert rc == 2 and "not empty" in cap.err and "--force" in cap.err
    assert not (out / "report.json").exists()
    rc, cap = _run(args + ["--force"], capsys)
    assert rc == 0
    assert (out / "thesis.tex").read_text() == "precious"
    assert (out / "report.json").exists()
    # now it holds a previous report plus the user's file: re-running keeps the user's file
    rc, _ = _run(args, capsys)
    assert rc == 0 and (out / "thesis.tex").read_text() == "precious"
    (tmp_path / "afile").write_text("x")
    rc, cap = _run(["report", "--tier", "smoke", "--out", str(tmp_path / "afile")], capsys)
    assert rc == 2 and "not a folder" in cap.err


def test_bad_claim_tier_and_missing_arguments(tmp_path, capsys) -> None:
    rc, cap = _run(
        ["report", "--tier", "smoke", "--claims", "E1,X7", "--out", str(tmp_path / "o")], capsys
    )
    assert rc == 2 and "unknown claim id" in cap.err and "X7" in cap.err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--tier", "laptop", "--out", str(tmp_path / "o")])
    assert exc.value.code != 0
    assert "invalid choice" in capsys.readouterr().err
    rc, cap = _run(["report", "--out", str(tmp_path / "o")], capsys)
    assert rc == 2 and "--tier is required" in cap.err
    rc, cap = _run(["report", "--tier", "cpu"], capsys)
    assert rc == 2 and "--out is required" in cap.err
    with pytest.raises(SystemExit):
        main(["report", "--tier", "smoke", "--claims", ",", "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_list_and_no_cache_flags(tmp_path, capsys) -> None:
    rc, cap = _run(["report", "--list"], capsys)
    assert rc == 0
    for cid in CLAIM_IDS:
        assert re.search(rf"^{cid}\s", cap.out, flags=re.M)
    rc, cap = _run(["report", "--list", "--claims", "B3"], capsys)
    assert rc == 0 and "gpu: not run" in cap.out and "E1" not in cap.out
    args = ["report", "--tier", "smoke", "--claims", "T2,T3", "--cache-dir", str(tmp_path / "c")]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--no-cache"]) == 0
    doc = _doc(tmp_path / "b")
    assert doc["cache_dir"] == str(tmp_path / "c")
    out = capsys.readouterr()
    assert "T2" in out.out and "[" in out.err  # verdict lines on stdout, progress on stderr


def test_device_flag_reaches_every_training_run(tmp_path, capsys) -> None:
    rc, cap = _run(
        ["report", "--tier", "smoke", "--claims", "E3", "--device", "tpu",
         "--out", str(tmp_path / "bad")], capsys,
    )  # fmt: skip
    assert rc == 2 and "device must be" in cap.err and "tpu" in cap.err
    assert not (tmp_path / "bad").exists()
    cache = tmp_path / "c"
    args = ["report", "--tier", "smoke", "--claims", "E3", "--cache-dir", str(cache)]
    assert main([*args, "--device", "auto", "--out", str(tmp_path / "a")]) == 0
    doc = _doc(tmp_path / "a")
    assert doc["device"] == "auto" and "--device auto" in doc["command"]
    configs = [json.loads(p.read_text()) for p in cache.rglob("train/config.json")]
    assert configs and all(c["device"] == "auto" for c in configs)
    # Without the flag the tier's own device is used: new cache entries, not the "auto" ones.
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert _doc(tmp_path / "b")["cache_hits"] == []


def test_per_claim_time_sums_the_runs_metrics(smoke_report) -> None:
    """Each claim with runs reports how many it reads, how many are shared, and the seconds
    their metrics.jsonl recorded: recomputed here from the run folders of the cache."""
    from robmem.bridge.cache import RunCache
    from robmem.bridge.claims.runs import merge_requests
    from robmem.bridge.registry import all_claims

    out, cache_dir = smoke_report
    doc = {c["id"]: c for c in _doc(out)["claims"]}
    cache = RunCache(cache_dir)
    readers: dict[str, int] = {}
    claims = [c for c in all_claims() if c.plan("smoke").enabled]
    for c in claims:
        for name in {r.cache_name for r in c.requests("smoke")}:
            readers[name] = readers.get(name, 0) + 1
    checked = 0
    for c in claims:
        own = merge_requests(c.requests("smoke"))
        entry = doc[c.id]
        assert entry["runs"] == len(own)
        assert entry["shared_runs"] == sum(readers[r.cache_name] > 1 for r in own)
        total = 0.0
        for r in own:
            result = cache.load(r.cache_name, r.key())
            assert result is not None, r.cache_name
            for line in (pathlib.Path(result["train_dir"]) / "metrics.jsonl").open():
                row = json.loads(line)
                total += sum(v for k, v in row.items() if k.startswith("time_") and v)
        assert entry["run_seconds"] == pytest.approx(total, abs=0.051)
        if own:
            assert entry["run_seconds"] > 0
            section = (out / "report.md").read_text().split(f"## {c.id}.", 1)[1]
            assert f"{len(own)} training runs" in section.split("\n## ", 1)[0]
            checked += 1
    assert checked >= 5
