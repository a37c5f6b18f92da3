"""Each market settles (and computes ref_move) on its own reference feed.

One simulated 17-minute span of two assets in TWAP mode (markets carry ``cryptoMarketConfig``
with a 60 s TWAP, RTDS sends ``crypto_prices_twap_sixty``), recorded through the real parsers
and writer.
Variants of its files: resolutions removed (the reference fallback decides), instantaneous
Chainlink ticks added (parsed from RTDS frames by the real parser, mirrored around each
window's open so that they always give the opposite outcome), TWAP ticks removed (only a
foreign feed left) or thinned before a window's end (a stale close tick), and the market rows
stripped of their TWAP config (a pre-TWAP market).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from polyrl.clock import ReplayClock
from polyrl.events import NS_PER_S, WINDOW_NS, iso_to_ns
from polyrl.features.engine import FeatureConfig, FeatureEngine
from polyrl.features.sets import feature_set
from polyrl.policies.baselines import make_baseline
from polyrl.recording.reader import RecordingReader
from polyrl.recording.writer import RecordingConfig
from polyrl.replay import load_days, replay_engine
from polyrl.rl.env import evaluate
from polyrl.rl.episodes import EpisodeStore
from polyrl.runlog import RunLog
from polyrl.sections import Config
from polyrl.sim.record import simulate_to_recording
from polyrl.sources.config import SourcesConfig
from polyrl.sources.polymarket.rtds import parse_rtds

START = iso_to_ns("2026-09-01T00:00:00Z")
END = START + WINDOW_NS  # the first windows' end (all four assets)
TIMEOUT = 3600 * NS_PER_S
REF = "reference.price/date=2026-09-01/hour=00"
ASSETS = ("btc", "sol")
CFG = Config(assets=ASSETS)


@pytest.fixture(scope="module")
def twap_rec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("twap") / "rec"
    simulate_to_recording(
        root,
        start_ns=START,
        end_ns=START + 17 * 60 * NS_PER_S,
        seed=3,
        config=Config(
            assets=ASSETS,
            recording=RecordingConfig(fsync=False),
            sources=SourcesConfig(reference_feed="twap60"),
        ),
    )
    return root


def _copy(src: Path, dst: Path, *, resolutions: bool = False) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cache"))
    if not resolutions:
        shutil.rmtree(dst / "polymarket.resolution", ignore_errors=True)
    return dst


def _ref_file(root: Path) -> Path:
    (f,) = sorted((root / REF).glob("*.parquet"))
    return f


def _instant_rows(twap: pl.DataFrame, seq0: int) -> pl.DataFrame:
    """Instantaneous Chainlink rows at the TWAP rows' times, parsed from RTDS frames: each
    value mirrored around the TWAP tick stamped at its window's start, so the instantaneous
    verdict of every window is the opposite of the TWAP one."""
    rows = []
    opens = {
        (r["key"], r["exch_ns"]): r["value"]
        for r in twap.filter((pl.col("exch_ns") - START) % WINDOW_NS == 0).iter_rows(named=True)
    }
    for i, r in enumerate(twap.sort("recv_ns", "seq").iter_rows(named=True)):
        w0 = START + (r["exch_ns"] - START - 1) // WINDOW_NS * WINDOW_NS
        value = 2 * opens[(r["key"], w0)] - r["value"] if (r["key"], w0) in opens else r["value"]
        frame = json.dumps(
            {
                "topic": "crypto_prices_chainlink",
                "type": "update",
                "timestamp": r["server_ns"] // 1_000_000,
                "payload": {
                    "symbol": r["key"],
                    "timestamp": r["exch_ns"] // 1_000_000,
                    "value": value,
                },
            }
        )
        (ev,) = parse_rtds(frame, r["recv_ns"])
        rows.append(
            {
                "recv_ns": ev.recv_ns, "seq": seq0 + i, "exch_ns": ev.exch_ns, "key": ev.key,
                "asset": ev.asset, "quality": ev.quality, **ev.fields, "raw": frame,
            }
        )  # fmt: skip
    return pl.DataFrame(rows, schema=twap.schema)


def _with_instant(root: Path, *, keep_twap: bool = True) -> None:
    f = _ref_file(root)
    twap = pl.read_parquet(f)
    inst = _instant_rows(twap, int(twap["seq"].max()) + 10_000_000)
    both = pl.concat([twap, inst]) if keep_twap else inst
    both.sort("recv_ns", "seq").write_parquet(f)


def _strip_twap_config(root: Path) -> None:
    for f in root.glob("polymarket.market/date=*/hour=*/*.parquet"):
        df = pl.read_parquet(f)
        df.with_columns(twap_seconds=pl.lit(None, dtype=df.schema["twap_seconds"])).write_parquet(f)


def _gamma_outcomes(root: Path) -> dict[str, str]:
    df = pl.concat(
        [pl.read_parquet(f) for f in root.glob("polymarket.resolution/date=*/hour=*/*.parquet")]
    )
    return dict(zip(df["key"].to_list(), df["outcome"].to_list(), strict=True))


def _settle(root: Path, config: FeatureConfig | None = None) -> FeatureEngine:
    fe = FeatureEngine(ASSETS, config)
    last = 0
    for b in RecordingReader(root).batches(batch_size=50_000):
        fe.ingest(b)
        last = int(b.recv_ns[-1])
    fe.finalize_outcomes(last + TIMEOUT, TIMEOUT)
    return fe


def _first(fe: FeatureEngine) -> list:  # type: ignore[type-arg]
    ws = [w for w in fe.windows if w.end_ns == END]
    assert len(ws) == len(ASSETS)
    return ws


def test_twap_market_settles_on_twap_ticks_not_instantaneous(
    twap_rec: Path, tmp_path: Path
) -> None:
    gamma = _gamma_outcomes(twap_rec)
    root = _copy(twap_rec, tmp_path / "rec")
    _with_instant(root)
    fe = _settle(root)
    for w in _first(fe):
        assert w.reference_feed == "twap60"
        assert w.outcome_source == "reference" and w.outcome == gamma[w.condition_id]
        assert not w.reference_mismatch and not w.reference_stale
        # The instantaneous ticks in the same recording say the opposite.
        inst = dataclasses.replace(w, outcome=None, reference_feed="chainlink")
        assert fe.reference_outcome(inst, END + TIMEOUT).outcome not in (None, w.outcome)
    # The recording stops 2 minutes into the next windows: their close tick is 13 minutes
    # older than their end, so a fallback settles them flagged stale.
    later = [w for w in fe.windows if w.end_ns > END]
    assert len(later) == len(ASSETS)
    assert all(w.outcome_source == "reference" and w.reference_stale for w in later)

    # A pre-TWAP market (no cryptoMarketConfig) on the same ticks settles, as before, on the
    # instantaneous price.
    pre = _copy(root, tmp_path / "pre")
    _strip_twap_config(pre)
    for w in _first(_settle(pre)):
        assert w.reference_feed == "chainlink" and w.outcome_source == "reference"
        assert w.outcome not in (None, gamma[w.condition_id]) and not w.reference_mismatch


def test_foreign_feed_only_is_refused_and_flagged_through_replay_and_env(
    twap_rec: Path, tmp_path: Path
) -> None:
    root = _copy(twap_rec, tmp_path / "rec")
    _with_instant(root, keep_twap=False)
    cfg = CFG
    (cache,) = load_days(root, "*", cfg)
    w = cache.windows
    first = w.filter(pl.col("end_ns") == END)
    assert first.height == len(ASSETS)
    assert (first["outcome"] == "missing").all() and first["reference_mismatch"].all()
    assert (first["reference_feed"] == "twap60").all()
    # The windows still open when the recording stops are refused alike.
    assert (w.filter(pl.col("end_ns") > END)["outcome"] == "missing").all()

    fset = feature_set(cfg.features.feature_set)
    log = RunLog(tmp_path / "run", config={}, overwrite=True)
    replay_engine([cache], make_baseline("random", fset, cfg.baselines, seed=1), cfg, log)
    log.flush()
    eng = log.frame("episodes").filter(pl.col("end_ns") == END)
    assert eng.height == len(ASSETS)
    assert eng["reference_mismatch"].all() and eng["no_outcome"].all()
    assert eng["pnl"].is_null().all()
    store = EpisodeStore.build([cache], exclude_gap=False, exclude_missing=False)
    _, env = evaluate(
        store, make_baseline("random", fset, cfg.baselines, seed=1), fset=fset, broker=cfg.broker
    )
    env = env.filter(pl.col("end_ns") == END)
    assert env.height > 0 and env["reference_mismatch"].all() and env["no_outcome"].all()
    assert not env["reference_stale"].any()


def test_stale_boundary_tick_is_flagged(twap_rec: Path, tmp_path: Path) -> None:
    gamma = _gamma_outcomes(twap_rec)
    root = _copy(twap_rec, tmp_path / "rec")
    f = _ref_file(root)
    df = pl.read_parquet(f)
    # btc's last 40 s of TWAP ticks before the end are lost: its close tick is 40 s old.
    hole = (pl.col("asset") == "btc") & pl.col("exch_ns").is_between(END - 39 * NS_PER_S, END)
    df.filter(~hole).write_parquet(f)
    fe = _settle(root)
    by_asset = {w.asset: w for w in _first(fe)}
    btc = by_asset.pop("btc")
    assert btc.outcome_source == "reference" and btc.reference_stale
    assert btc.outcome in ("Up", "Down") and not btc.reference_mismatch
    for w in by_asset.values():
        assert not w.reference_stale and w.outcome == gamma[w.condition_id]
    # A longer allowed age accepts the same tick.
    lax = _settle(root, FeatureConfig(reference_max_age_s=60.0))
    assert not [w for w in _first(lax) if w.asset == "btc"][0].reference_stale


def test_ref_move_reads_only_the_markets_own_feed(twap_rec: Path, tmp_path: Path) -> None:
    both = _copy(twap_rec, tmp_path / "both")
    _with_instant(both)
    pre = _copy(both, tmp_path / "pre")
    _strip_twap_config(pre)

    def ref_move(root: Path) -> tuple[np.ndarray, np.ndarray]:
        fe = FeatureEngine(ASSETS, FeatureConfig(feature_set="full"))
        j = fe.fset.market_names.index("ref_move")
        out, at = [], []
        for batch, ticks in ReplayClock(5 * NS_PER_S).drive(
            RecordingReader(root).batches(batch_size=50_000)
        ):
            fe.ingest(batch)
            if ticks.shape[0]:
                o = fe.observe_many(ticks)
                out.append(np.where(o.window >= 0, o.features[:, :, j], np.nan))
                at.append(ticks)
        return np.concatenate(out), np.concatenate(at)

    (alone, t), (mixed, _), (instant, _) = ref_move(twap_rec), ref_move(both), ref_move(pre)
    # The first windows (the mirrored instantaneous ticks are simple to read there).
    live = np.isfinite(alone) & (alone != 0) & (t < END)[:, None]
    assert live.sum() > 100
    # Adding another feed's ticks changes nothing for a TWAP market...
    assert np.array_equal(alone, mixed, equal_nan=True)
    # ...while a pre-TWAP market reads them (mirrored: the opposite move).
    assert (np.sign(instant[live]) == -np.sign(alone[live])).all()


def test_a_market_seen_without_its_config_learns_its_twap_from_a_later_row() -> None:
    from polyrl.features.markets import MarketLog
    from polyrl.recording.reader import MergedBatch
    from polyrl.sources.polymarket.gamma import parse_gamma

    path = Path(__file__).parents[2] / "data/frames/polymarket/gamma/market_by_slug_open.json"
    full = json.loads(path.read_text())
    bare = {k: v for k, v in full.items() if k != "cryptoMarketConfig"}
    log = MarketLog(("btc",))
    for i, m in enumerate((bare, full)):
        evs = [e for e in parse_gamma(json.dumps(m), 10 + i) if e.stream == "polymarket.market"]
        evs = [dataclasses.replace(e, seq=i) for e in evs]
        log.ingest(MergedBatch.from_events(evs))
        log.advance(10 + i)
        (w,) = log.windows
        assert w.reference_feed == ("chainlink" if i == 0 else "twap60")
