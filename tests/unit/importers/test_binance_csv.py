"""Binance archive CSVs: headers detected, ms/µs by magnitude, sorted, deduplicated, and the
conversion of each file type into polyrl's stream columns with receive times after the fact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from polyrl.importers import binance_convert as conv
from polyrl.importers.binance_csv import ArchiveFormatError, has_header, parse

DATA = Path(__file__).resolve().parents[2] / "data" / "binance"
MS = 1_000_000
KLINE_HEADER = (
    b"open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    b"taker_buy_quote_volume,ignore\n"
)
# Spot aggTrades as the archive writes them: no header, True/False, ms before 2025, µs after.
SPOT_AGG_MS = (
    b"3041029081,96584.01000000,0.00010000,3993217811,3993217811,1735689600123,False,True\n"
    b"3041029082,96584.00000000,0.05000000,3993217812,3993217813,1735689600124,True,True\n"
)
SPOT_AGG_US = SPOT_AGG_MS.replace(b"1735689600123,", b"1735689600123000,").replace(
    b"1735689600124,", b"1735689600124000,"
)
UM_AGG = (
    b"agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"
    b"2450000002,96500.10,0.010,5700000004,5700000004,1735689600300,true\n"
    b"2450000001,96500.00,0.002,5700000001,5700000003,1735689600200,false\n"
)
METRICS = (
    b"create_time,symbol,sum_open_interest,sum_open_interest_value,"
    b"count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,count_long_short_ratio,"
    b"sum_taker_long_short_vol_ratio\n"
    b"2026-05-01 00:00:00,BTCUSDT,80000.123,7700000000.5,1.8,1.6,1.9,0.95\n"
    b"2026-05-01 00:05:00,BTCUSDT,80010.5,7701000000.0,1.8,1.6,1.9,1.05\n"
    b"2026-05-01 00:05:00,BTCUSDT,80010.5,7701000000.0,1.8,1.6,1.9,1.05\n"
    b"2026-05-01 00:20:00,BTCUSDT,80020.0,7702000000.0,1.7,1.5,1.8,1.00\n"
)


def test_real_kline_rows_with_and_without_header_read_the_same():
    raw = (DATA / "ADABTC-1m-2021-11-27.head.csv").read_bytes()
    bare = parse("klines", raw, "ADABTC-1m.csv")
    headed = parse("klines", KLINE_HEADER + raw, "ADABTC-1m.csv")
    assert not bare.header and headed.header and not has_header(raw)
    assert bare.table.equals(headed.table)
    t = bare.table
    assert t.num_rows == 5 and bare.time_units == {"open_time": "ms", "close_time": "ms"}
    assert t.column("open_time")[0].as_py() == 1637971200000 * MS
    assert t.column("close_time")[0].as_py() == 1637971259999 * MS
    assert t.column("close")[1].as_py() == 0.00002859
    assert t.column("trades")[3].as_py() == 158
    assert t.column("taker_buy_quote")[4].as_py() == 0.05814797


def test_spot_microseconds_and_milliseconds_decided_by_magnitude():
    ms = parse("aggTrades", SPOT_AGG_MS, "a.csv")
    us = parse("aggTrades", SPOT_AGG_US, "b.csv")
    assert ms.time_units == {"time": "ms"} and us.time_units == {"time": "us"}
    assert ms.table.equals(us.table)
    assert ms.table.column("time").to_pylist() == [1735689600123 * MS, 1735689600124 * MS]
    assert ms.table.column("buyer_maker").to_pylist() == [False, True]
    assert ms.table.column("price").to_pylist() == [96584.01, 96584.0]


def test_futures_header_detected_and_out_of_order_rows_sorted():
    p = parse("aggTrades", UM_AGG, "um.csv")
    assert p.header and p.table.num_columns == 7
    assert p.table.column("trade_id").to_pylist() == [2450000001, 2450000002]
    assert p.repairs == {"rows_out_of_order_sorted": 1}


def test_metrics_exact_duplicates_dropped_and_times_parsed():
    p = parse("metrics", METRICS, "m.csv")
    assert p.repairs == {"duplicate_rows_dropped": 1}
    t0 = 1777593600 * 1_000_000_000
    assert p.table.column("create_time").to_pylist() == [t0, t0 + 300e9, t0 + 1200e9]
    missing = conv.missing_slots(p.table.column("create_time").to_numpy(), t0, t0 + 1500e9, 300e9)
    assert missing == [(t0 + 600_000_000_000, t0 + 1_200_000_000_000, 2)]


def test_a_file_of_the_wrong_shape_is_named():
    with pytest.raises(ArchiveFormatError, match=r"x\.csv: 3 columns, a klines file has 12"):
        parse("klines", b"1,2,3\n", "x.csv")
    with pytest.raises(ArchiveFormatError, match=r"y\.csv"):
        parse("aggTrades", b"1,abc,1,1,1,1,True,True\n", "y.csv")


def test_trades_sign_times_and_delay():
    t = parse("aggTrades", SPOT_AGG_US, "b.csv").table
    out = conv.trades(t, symbol="BTCUSDT", asset="btc", delay_ns=20 * MS, futures=True)
    assert out.column("side").to_pylist() == [1, -1]
    assert out.column("trade_ns").to_pylist() == out.column("exch_ns").to_pylist()
    recv = np.array(out.column("recv_ns").to_pylist())
    assert list(recv - np.array(out.column("trade_ns").to_pylist())) == [20 * MS, 20 * MS]
    assert out.column("qty_no_rpi").null_count == 2
    assert out.column("quality").to_pylist() == [0, 0]
    assert set(out.column("key").to_pylist()) == {"BTCUSDT"}


def test_a_kline_is_received_only_after_its_bar_closed():
    raw = (DATA / "ADABTC-1m-2021-11-27.head.csv").read_bytes()
    t = parse("klines", raw, "k.csv").table
    out = conv.klines(t, interval="1m", symbol="ADABTC", asset="btc", delay_ns=7 * MS)
    open_ns = np.array(out.column("open_ns").to_pylist())
    close_ns = np.array(out.column("close_ns").to_pylist())
    recv = np.array(out.column("recv_ns").to_pylist())
    assert (recv == open_ns + 60_000 * MS + 7 * MS).all()
    assert (recv == close_ns + MS + 7 * MS).all()
    assert out.column("closed").to_pylist() == [True] * 5
    assert out.column("interval").to_pylist() == ["1m"] * 5


def _bars(opens: list[int], closes: list[float]) -> pa.Table:
    return pa.table(
        {
            "open_time": pa.array([o * MS for o in opens], pa.int64()),
            "close": pa.array(closes, pa.float64()),
        }
    )


def test_mark_rows_from_mark_index_and_funding_never_look_ahead():
    m0 = 1777593600000  # 2026-05-01T00:00Z, a funding time
    mark = _bars([m0, m0 + 60_000, m0 + 120_000], [100.0, 101.0, 102.0])
    index = _bars([m0, m0 + 120_000], [99.0, 101.5])  # minute 1 of the index is missing
    funding = pa.table(  # as parsed: ns; the archive's calc times are a few ms off the hour
        {
            "calc_time": pa.array([(m0 - 8 * 3600_000 + 5) * MS, (m0 + 3) * MS], pa.int64()),
            "funding_interval_hours": pa.array([8, 8], pa.int64()),
            "last_funding_rate": [0.0001, 0.0002],
        }
    )
    out, counts = conv.mark(mark, index, funding, symbol="BTCUSDT", asset="btc", delay_ns=20 * MS)
    assert counts["mark_minutes_without_both_bars"] == 1
    assert out.column("mark_px").to_pylist() == [100.0, 102.0]
    assert out.column("index_px").to_pylist() == [99.0, 101.5]
    assert out.column("exch_ns").to_pylist() == [(m0 + 60_000) * MS, (m0 + 180_000) * MS]
    assert out.column("recv_ns").to_pylist() == [(m0 + 60_020) * MS, (m0 + 180_020) * MS]
    # the settlement at 00:00 is in force after it; the next is 08:00
    assert out.column("funding_rate").to_pylist() == [0.0002, 0.0002]
    assert out.column("next_funding_ns").to_pylist() == [(m0 + 8 * 3600_000) * MS] * 2
    assert out.column("settle_px").null_count == 2
    late, counts = conv.mark(
        _bars([m0 + 9 * 3600_000], [1.0]),
        _bars([m0 + 9 * 3600_000], [1.0]),
        funding,
        symbol="BTCUSDT",
        asset="btc",
        delay_ns=0,
    )
    # 09:01 is past the 08:00 settlement the file lacks: the rate is unknown, not stale
    assert late.column("funding_rate").to_pylist() == [None]
    assert counts["funding_rate_unknown_rows"] == 1
    assert late.column("next_funding_ns").to_pylist() == [(m0 + 16 * 3600_000) * MS]


def test_open_interest_rows():
    p = parse("metrics", METRICS, "m.csv")
    out = conv.open_interest(p.table, symbol="BTCUSDT", asset="btc", delay_ns=5 * MS)
    assert out.column("open_interest").to_pylist() == [80000.123, 80010.5, 80020.0]
    t0 = 1777593600 * 1_000_000_000
    assert out.column("exch_ns")[0].as_py() == t0
    assert out.column("recv_ns")[0].as_py() == t0 + 5 * MS
