"""A TWAP-60 market settles on PolyBolt's ``price.crypto.twap`` when the recording holds no
RTDS TWAP topic: a simulated TWAP-mode span whose RTDS TWAP rows are replaced by the same
ticks as PolyBolt envelopes, parsed by the real parser, settles every window on the
reference with the outcome Gamma gives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

from polyrl.events import NS_PER_MS, NS_PER_S, WINDOW_NS, iso_to_ns
from polyrl.features.engine import FeatureEngine
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.sections import Config
from polyrl.sim.record import simulate_to_recording
from polyrl.sim.serve.polybolt import decimal_of_e18
from polyrl.sources.config import SourcesConfig
from polyrl.sources.polymarket.rtds import parse_rtds

START = iso_to_ns("2026-09-01T00:00:00Z")
END = START + WINDOW_NS
TIMEOUT = 3600 * NS_PER_S
ASSETS = ("btc",)


@pytest.fixture(scope="module")
def twap_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twap") / "rec"
    simulate_to_recording(
        root,
        start_ns=START,
        end_ns=START + 16 * 60 * NS_PER_S,
        seed=5,
        config=Config(
            assets=ASSETS,
            recording=RecordingConfig(fsync=False),
            sources=SourcesConfig(reference_feed="twap60"),
        ),
    )
    return root


def _as_polybolt(root: Path) -> int:
    """Rewrite every RTDS TWAP row as the PolyBolt row of the same tick; returns how many."""
    n = 0
    for f in root.glob("reference.price/date=*/hour=*/*.parquet"):
        df = pl.read_parquet(f)
        rows = []
        for r in df.iter_rows(named=True):
            assert r["topic"] == "crypto_prices_twap_sixty"
            frame = json.dumps(
                {
                    "v": 1,
                    "channel": "price.crypto.twap",
                    "seq": n + 1,
                    "ts": r["server_ns"] // NS_PER_MS,
                    "payload": {
                        "symbol": r["key"].replace("/", ""),
                        "timestamp": r["exch_ns"] // NS_PER_MS,
                        "value": r["value"],
                        "full_accuracy_value": decimal_of_e18(r["full_accuracy"]),
                        "window_seconds": 60,
                    },
                }
            )
            (ev,) = parse_rtds(frame, r["recv_ns"])
            rows.append(
                {
                    "recv_ns": ev.recv_ns, "seq": r["seq"], "exch_ns": ev.exch_ns,
                    "key": ev.key, "asset": ev.asset, "quality": ev.quality, **ev.fields,
                    "raw": frame,
                }
            )  # fmt: skip
            n += 1
        pl.DataFrame(rows, schema=df.schema).write_parquet(f)
    return n


def test_a_twap60_market_settles_on_polybolt_when_rtds_is_absent(
    twap_rec: Path, tmp_path: Path
) -> None:
    root = tmp_path / "rec"
    shutil.copytree(twap_rec, root, ignore=shutil.ignore_patterns(".cache"))
    res = pl.concat([pl.read_parquet(f) for f in root.glob("polymarket.resolution/**/*.parquet")])
    gamma = dict(zip(res["key"].to_list(), res["outcome"].to_list(), strict=True))
    shutil.rmtree(root / "polymarket.resolution")  # the reference alone must decide
    assert _as_polybolt(root) > 500
    topics = RecordingReader(root).read_stream("reference.price")["topic"].unique().to_list()
    assert topics == ["price.crypto.twap"]
    fe = FeatureEngine(ASSETS, None)
    last = 0
    for b in RecordingReader(root).batches(batch_size=50_000):
        fe.ingest(b)
        last = int(b.recv_ns[-1])
    fe.finalize_outcomes(last + TIMEOUT, TIMEOUT)
    (w,) = [w for w in fe.windows if w.end_ns == END]
    assert w.reference_feed == "twap60"
    assert w.outcome_source == "reference" and w.outcome == gamma[w.condition_id]
    assert not w.reference_mismatch and not w.reference_stale
