"""`polyrl import polymarket` against a loopback PMXT archive and Gamma built from a simulation.

A simulated half hour (two UTC hours: 00:50-01:20) is exported to PMXT v2 hour files and a
static Gamma; importing them back must rebuild the same Up/Down books at every 1 s tick.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.features.cache import ReplaySpec, build_day
from polyrl.features.engine import FeatureConfig
from polyrl.importers.fetch import HttpArchive, LocalArchive
from polyrl.importers.polymarket import import_range
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.record import simulate_to_recording
from polyrl.sources.polymarket.book import TokenBook
from polyrl.testing.archive_server import ArchiveServer
from polyrl.testing.pmxt import gamma_objects, gamma_route, write_pmxt_hours

from .conftest import run_cli

pytestmark = pytest.mark.integration

START = iso_to_ns("2024-06-01T00:52:00Z")
END = START + 20 * 60 * NS_PER_S
MS = 1_000_000
BOOK_STREAMS = ("polymarket.book", "polymarket.price_change", "polymarket.trade",
                "polymarket.tick_size")  # fmt: skip
H01 = "polymarket_orderbook_2024-06-01T01.parquet"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("pmxt-sim")
    root = base / "rec"
    cfg = Config(assets=("btc",), recording=RecordingConfig(fsync=False))
    simulate_to_recording(root, start_ns=START, end_ns=END, seed=5, config=cfg)
    r = RecordingReader(root)
    frames = {s: r.read_stream(s) for s in (*BOOK_STREAMS, "polymarket.market",
                                             "polymarket.resolution")}  # fmt: skip
    archive = base / "archive"
    files = write_pmxt_hours(frames, archive, row_group_size=2000)
    gamma = gamma_objects(frames["polymarket.market"], frames["polymarket.resolution"])
    return {"root": root, "frames": frames, "archive": archive, "files": files, "gamma": gamma,
            "base": base}  # fmt: skip


def _serve(sim: dict, folder: Path | None = None) -> ArchiveServer:
    srv = ArchiveServer(folder or sim["archive"])
    srv.route("/markets", gamma_route(sim["gamma"]))
    return srv


def _cli_import(url: str, out: Path, *extra: str):
    return run_cli("import", "polymarket", "--from", "2024-06-01T00", "--to", "2024-06-01T01",
                   "--assets", "btc", "--archive", url, "--gamma", url, "--out", str(out),
                   *extra, timeout=120)  # fmt: skip


def _books_at_ticks(root: Path, markets, truncate: bool) -> list:
    """Up/Down books of btc's current window at every 1 s tick, rebuilt from book and
    price_change rows in (recv_ns, seq) order (recv_ns truncated to ms if asked)."""
    r = RecordingReader(root)
    ev = []
    for row in r.read_stream("polymarket.book").iter_rows(named=True):
        ev.append((row["recv_ns"], row["seq"], 0, row["key"],
                   (row["bid_px"], row["bid_size"], row["ask_px"], row["ask_size"])))  # fmt: skip
    for row in r.read_stream("polymarket.price_change").iter_rows(named=True):
        ev.append((row["recv_ns"], row["seq"], 1, row["key"],
                   (row["side"] == "BUY", row["price"], row["size"])))  # fmt: skip
    if truncate:
        ev = [(t // MS * MS, *rest) for t, *rest in ev]
    ev.sort(key=lambda e: (e[0], e[1]))
    books: dict[str, TokenBook] = {}
    out, i = [], 0
    for t in range(START + NS_PER_S, END, NS_PER_S):
        while i < len(ev) and ev[i][0] <= t:
            _, _, kind, key, p = ev[i]
            book = books.setdefault(key, TokenBook(key))
            if kind == 0:
                book.replace(*p)
            else:
                book.set_level(*p)
            i += 1
        w = next(m for m in markets if m["window_start_ns"] <= t < m["window_end_ns"])
        snap = []
        for tok in (w["up_token"], w["down_token"]):
            b = books.get(tok)
            snap.append(None if b is None else (tuple(b.bids()), tuple(b.asks())))
        out.append(tuple(snap))
    return out


def _import_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("import-*.parquet"))
    }


def test_round_trip_rebuilds_the_same_books_and_is_idempotent(sim, tmp_path):
    out = tmp_path / "imported"
    with _serve(sim) as srv:
        res = _cli_import(srv.url, out)
        assert res.returncode == 0, res.stderr
        assert "2024-06-01T00:" in res.stderr and "2024-06-01T01:" in res.stderr
        # 8 windows looked up: 00:45 and 01:00 imported; 01:15's market is listed (the
        # simulation ends at 01:12) but its tokens have no rows yet; 5 not on Gamma.
        want = (
            "windows: 2 imported, 6 gaps (0 missing hours, 5 markets absent from Gamma, "
            "1 absent from the archive)"
        )
        assert want in res.stdout, res.stdout
        assert "bytes fetched:" in res.stdout
        first = _import_files(out)
        again = _cli_import(srv.url, out, "--force")
        assert again.returncode == 0, again.stderr
        assert _import_files(out) == first  # importing twice gives identical files
        skip = _cli_import(srv.url, out)
        assert skip.returncode == 0 and "done before, skipped" in skip.stderr
    orig = RecordingReader(sim["root"])
    got = RecordingReader(out)
    for s in BOOK_STREAMS:
        assert len(got.read_stream(s)) == len(orig.read_stream(s)), s
    res_o = orig.read_stream("polymarket.resolution")
    res_i = got.read_stream("polymarket.resolution")
    assert res_i["outcome"].to_list() == res_o["outcome"].to_list()
    assert (res_i["recv_ns"] >= res_i["window_end_ns"]).all()
    markets = list(orig.read_stream("polymarket.market").iter_rows(named=True))
    imported = _books_at_ticks(out, markets, truncate=False)
    original_ms = _books_at_ticks(sim["root"], markets, truncate=True)
    assert len(imported) == 20 * 60 - 1
    assert sum(x[0] is not None for x in imported) > 1100  # books exist at nearly every tick
    assert imported == original_ms
    prov = (out / "provenance" / "2024-06-01.json").read_text()
    assert '"kind": "imported"' in prov and "polyrl import polymarket" in prov
    from polyrl.recording.inspect import format_report, inspect_recording

    text = format_report(inspect_recording(out))
    book = next(x for x in text.splitlines() if "2024-06-01  polymarket.book " in x)
    assert "imported (pmxt) from 127.0.0.1:" in book and "recorded" not in book
    market = next(x for x in text.splitlines() if "2024-06-01  polymarket.market " in x)
    assert "imported (gamma) from 127.0.0.1:" in market


def test_a_missing_hour_is_a_gap_and_its_windows_are_not_tradable(sim, tmp_path):
    folder = tmp_path / "archive"
    shutil.copytree(sim["archive"], folder)
    (folder / H01).unlink()
    out = tmp_path / "imported"
    with _serve(sim, folder) as srv:
        ar = HttpArchive(srv.url, backoff_s=0.01)
        s = import_range(out, iso_to_ns_dt("2024-06-01T00"), iso_to_ns_dt("2024-06-01T02"),
                         assets=["btc"], archive=ar, gamma=HttpArchive(srv.url))  # fmt: skip
    assert s.missing_hours == ["2024-06-01T01"] and s.windows == 1 and s.gap_windows == 7
    st = RecordingReader(out).read_stream("recorder.status")
    gaps = st.filter(st["kind"] == "gap")
    assert "import.pmxt" in gaps["key"].to_list()
    # Replay it with the simulation's other streams: the missing hour's windows are flagged
    # and never tradable; the window before it is.
    for d in sim["root"].iterdir():
        if d.is_dir() and not d.name.startswith(("polymarket.", "recorder.", "provenance")):
            shutil.copytree(d, out / d.name)
    spec = ReplaySpec(assets=("btc",), features=FeatureConfig(), tick_ns=NS_PER_S,
                      fill_latency_ns=0, resolution_timeout_s=600)  # fmt: skip
    arrays, windows, _ = build_day(out, "2024-06-01", spec)
    by_start = {w.start_ns: w for w in windows}
    h1 = iso_to_ns("2024-06-01T01:00:00Z")
    assert by_start[h1].gap and by_start[h1 + 900 * NS_PER_S].gap
    assert not by_start[h1 - 900 * NS_PER_S].gap
    ticks, tradable = arrays["ticks"], arrays["tradable"][:, 0]
    assert not tradable[ticks >= h1].any()
    assert tradable[(ticks >= START) & (ticks < h1)].any()


def iso_to_ns_dt(text: str):
    import datetime as dt

    return dt.datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=dt.UTC)


def test_interrupted_import_resumes_without_partial_files(sim, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[importer]\nretries = 1\nbackoff_s = 0.01\n")
    out = tmp_path / "imported"
    with _serve(sim) as srv:
        srv.fail(f"/{H01}", 500, times=2)  # the HEAD and its one retry: hour 01 fails
        bad = _cli_import(srv.url, out, "--config", str(cfg))
        assert bad.returncode == 1
        err = bad.stderr.strip().splitlines()[-1]
        assert err.startswith("polyrl: error:") and H01 in err and "HTTP 500" in err
        assert "Traceback" not in bad.stderr
        assert not list(out.rglob("import-pmxt-2024-06-01T01*"))
        assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file left
        assert not (out / ".import" / "pmxt" / "pmxt-2024-06-01T01.json").exists()
        good = _cli_import(srv.url, out, "--config", str(cfg))
    assert good.returncode == 0, good.stderr
    assert "2024-06-01T00: done before, skipped" in good.stderr
    assert (out / ".import" / "pmxt" / "pmxt-2024-06-01T01.json").exists()
    n = len(RecordingReader(out).read_stream("polymarket.price_change"))
    assert n == len(sim["frames"]["polymarket.price_change"])


def test_refuses_to_mix_with_recorded_rows(sim, tmp_path):
    root = tmp_path / "rec"
    shutil.copytree(sim["root"], root)
    with _serve(sim) as srv:
        res = _cli_import(srv.url, root)
    assert res.returncode == 1
    line = res.stderr.strip().splitlines()[-1]
    assert "date=2024-06-01 hour=00 already holds recorded rows" in line
    assert "polymarket." in line and "--allow-mixed" in line


def test_cli_errors_name_the_option_or_folder(tmp_path):
    bad = run_cli("import", "polymarket", "--from", "2024-13-01", "--to", "2024-06-01")
    assert bad.returncode == 1 and "--from: '2024-13-01' is not a UTC day" in bad.stderr
    rev = run_cli("import", "polymarket", "--from", "2024-06-02", "--to", "2024-06-01")
    assert rev.returncode == 1 and "--to" in rev.stderr
    nope = str(tmp_path / "nope")
    missing = run_cli("import", "polymarket", "--from", "2024-06-01", "--to", "2024-06-01",
                      "--archive", nope, "--out", str(tmp_path / "o"))  # fmt: skip
    assert missing.returncode == 1
    assert f"archive folder {tmp_path / 'nope'} does not exist" in missing.stderr
    assert "Traceback" not in bad.stderr + rev.stderr + missing.stderr


def test_gamma_and_archive_absences_are_counted(sim, tmp_path):
    """A market Gamma knows whose rows the archive lacks is a gap; Gamma 429s are retried;
    the archive is a local folder of hour files."""
    gamma = dict(sim["gamma"])
    extra = dict(next(iter(gamma.values())))
    extra.update(slug="btc-updown-15m-1717203600", conditionId="0x" + "9" * 64,
                 eventStartTime="2024-06-01T01:00:00Z", endDate="2024-06-01T01:15:00Z")  # fmt: skip
    gamma["btc-updown-15m-1717203600"] = extra  # replaces 01:00: a market with no rows
    out = tmp_path / "imported"
    with ArchiveServer(sim["archive"]) as srv:
        srv.route("/markets", gamma_route(gamma))
        srv.fail("/markets", 429, times=2, retry_after=0.01)
        g = HttpArchive(srv.url, backoff_s=0.01)
        s = import_range(out, iso_to_ns_dt("2024-06-01T00"), iso_to_ns_dt("2024-06-01T02"),
                         assets=["btc"], archive=LocalArchive(sim["archive"]), gamma=g)  # fmt: skip
    assert g.stats.retries == 2
    assert s.absent_archive == ["btc-updown-15m-1717203600", "btc-updown-15m-1717204500"]
    assert len(s.absent_gamma) == 5 and s.windows == 1 and s.gap_windows == 7
    assert 0 < s.bytes_fetched <= s.bytes_total
    assert np.isclose(s.bytes_total, sum(f.stat().st_size for f in sim["files"]))
