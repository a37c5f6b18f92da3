"""``polyrl import binance`` as a user runs it: summary on stdout, progress on stderr, resume,
faults over loopback HTTP, and one-line errors naming the option, file or partition."""

from __future__ import annotations

import hashlib

import pytest

from polyrl.importers.store import Unit, unit_done
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingWriter
from polyrl.testing.archive_server import ArchiveServer
from polyrl.testing.binance_archive import rel, synthetic_day
from polyrl.testing.factories import make_event
from tests.integration.conftest import run_cli

pytestmark = pytest.mark.integration

D1, D2 = "2026-05-01", "2026-05-02"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    out = tmp_path_factory.mktemp("binance-arch")
    for d in (D1, D2):
        synthetic_day(out, d, assets=("btc", "sol"), spot_trades=3000, futures_trades=2000)
    return out


def _summary(stdout: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in stdout.splitlines() if ": " in line)


def test_import_two_days_then_skip_them(archive, tmp_path):
    root = tmp_path / "rec"
    args = ["import", "binance", "--from", D1, "--to", D2, "--assets", "btc,sol"]
    res = run_cli(*args, "--archive", str(archive), "--out", str(root))
    assert res.returncode == 0, res.stderr
    s = _summary(res.stdout)
    assert s["days"] == "2 imported, 0 already done"
    assert s["rows binance.spot.trade"] == "12,000" and s["rows binance.futures.trade"] == "8,000"
    assert s["rows binance.spot.kline"] == f"{2 * 2 * (86_400 + 1_440):,}"
    assert s["gaps"] == "0" and s["delays"] == "spot 20 ms, futures 20 ms"
    assert "BTCUSDT-aggTrades-2026-05-01.zip" in res.stderr and "sha256 ok" in res.stderr
    df = RecordingReader(root, dates=D1).read_stream("binance.spot.trade")
    assert (df["recv_ns"] - df["trade_ns"] == 20_000_000).all()
    again = run_cli(*args, "--archive", str(archive), "--out", str(root))
    assert again.returncode == 0 and _summary(again.stdout)["days"] == "0 imported, 2 already done"


def test_a_failed_day_stops_the_import_and_the_next_run_resumes_there(archive, tmp_path):
    import shutil

    arch = tmp_path / "arch"
    shutil.copytree(archive, arch)
    bad = arch / (rel("futures/um", "metrics", "BTCUSDT", D2) + ".CHECKSUM")
    good = bad.read_text()
    bad.write_text("0" * 64 + "  x.zip\n")
    root = tmp_path / "rec"
    args = ["import", "binance", "--from", D1, "--to", D2, "--assets", "btc"]
    args += ["--archive", str(arch), "--out", str(root)]
    res = run_cli(*args)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("polyrl: error: ") and "BTCUSDT-metrics-2026-05-02.zip" in last
    assert unit_done(root, Unit("binance", D1, None)) and not unit_done(
        root, Unit("binance", D2, None)
    )
    bad.write_text(good)
    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    assert _summary(res.stdout)["days"] == "1 imported, 1 already done"


def test_over_http_with_faults_and_a_missing_day(archive, tmp_path):
    import shutil

    arch = tmp_path / "arch"
    shutil.copytree(archive, arch)
    gone = arch / rel("spot", "klines", "SOLUSDT", D1, "1s")
    gone.unlink()
    with ArchiveServer(arch) as srv:
        srv.fail("*/SOLUSDT-aggTrades-2026-05-01.zip", 500, times=2)
        srv.cut("*/BTCUSDT-aggTrades-2026-05-01.zip", after=5000)
        res = run_cli(
            "import",
            "binance",
            "--from",
            D1,
            "--to",
            D1,
            "--assets",
            "btc,sol",
            "--archive",
            srv.url,
            "--out",
            str(tmp_path / "rec"),
        )
    assert res.returncode == 0, res.stderr
    s = _summary(res.stdout)
    assert s["gaps"] == "1" and "SOLUSDT-1s-2026-05-01.zip not in the archive" in s["gap"]
    assert s["repair missing_file_gap"] == "1"
    assert s["rows binance.spot.trade"] == "6,000"
    sha = hashlib.sha256((arch / rel("spot", "aggTrades", "BTCUSDT", D1)).read_bytes())
    st = RecordingReader(tmp_path / "rec", dates=D1).read_stream("recorder.status")
    assert any(sha.hexdigest() in m for m in st["message"])


def test_errors_are_one_line_naming_what_is_wrong(archive, tmp_path):
    base = ["import", "binance", "--archive", str(archive), "--out", str(tmp_path / "r")]
    cases = [
        (["--from", "2026-13-01", "--to", D1], "--from/--to"),
        (["--from", D2, "--to", D1], "--to 2026-05-01 is before --from"),
        (["--from", D1, "--to", D1, "--assets", "doge"], "--assets"),
    ]
    for extra, needle in cases:
        res = run_cli(*base, *extra)
        assert res.returncode != 0 and needle in res.stderr and "Traceback" not in res.stderr
    res = run_cli("import", "binance", "--from", D1, "--to", D1, "--archive", str(tmp_path / "no"))
    assert res.returncode == 1 and f"archive folder {tmp_path / 'no'} does not exist" in res.stderr
    root = tmp_path / "mixed"
    from polyrl.events import iso_to_ns

    with RecordingWriter(root) as w:
        w.append(make_event("binance.spot.trade", iso_to_ns(f"{D1}T03:00:00Z")))
    res = run_cli(
        "import",
        "binance",
        "--from",
        D1,
        "--to",
        D1,
        "--assets",
        "btc",
        "--archive",
        str(archive),
        "--out",
        str(root),
    )
    assert res.returncode == 1 and "binance.spot.trade date=2026-05-01 hour=03" in res.stderr
    assert "--allow-mixed" in res.stderr
    help_ = run_cli("import", "binance", "--help").stdout
    for opt in (
        "--from",
        "--to",
        "--assets",
        "--archive",
        "--out",
        "--allow-mixed",
        "--force",
        "--checksum-gap",
        "--config",
    ):
        assert opt in help_
