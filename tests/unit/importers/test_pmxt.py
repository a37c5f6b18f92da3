"""PMXT hour rows -> polymarket streams: exact decimals, sides, book order, entries, raw."""

from __future__ import annotations

import json
from decimal import Decimal

import pyarrow.parquet as pq

from polyrl.importers.pmxt import convert_hour
from polyrl.importers.pmxt_format import PMXT_SCHEMA
from polyrl.importers.store import Unit, write_unit
from polyrl.recording.reader import RecordingReader
from polyrl.sources.quality import CROSSED
from polyrl.testing.pmxt import write_pmxt_table

CID = "0x" + "ab" * 32
OTHER = "0x" + "cd" * 32
UP, DOWN = "1111", "2222"
T = 1_777_593_600_000  # 2026-05-01T00:00Z, ms


def row(event_type: str, tsr: int, ts: int, asset: str = UP, market: str = CID, **kw) -> dict:
    r = dict.fromkeys(PMXT_SCHEMA.names)
    r.update(timestamp_received=tsr, timestamp=ts, market=market.encode(),
             event_type=event_type, asset_id=asset, **kw)  # fmt: skip
    return r


def pc(tsr, ts, price, size, side="BUY", asset=UP, bid="0.4900", ask="0.5100", **kw):
    return row("price_change", tsr, ts, asset, price=Decimal(price), size=Decimal(size),
               side=side, best_bid=Decimal(bid), best_ask=Decimal(ask), **kw)  # fmt: skip


def convert(tmp_path, rows, rg=1000):
    path = write_pmxt_table(rows, tmp_path / "h.parquet", row_group_size=rg)
    return convert_hour(pq.read_table(path), {CID: "btc"}), path


def test_file_has_exactly_the_documented_schema(tmp_path):
    _, path = convert(tmp_path, [pc(T, T, "0.5", "1")])
    assert pq.read_schema(path).equals(PMXT_SCHEMA)
    assert str(PMXT_SCHEMA.field("timestamp_received").type) == "timestamp[ms, tz=UTC]"
    assert str(PMXT_SCHEMA.field("market").type) == "fixed_size_binary[66]"


def test_decimals_convert_to_the_float_of_their_exact_value(tmp_path):
    rows = [
        pc(T + 1, T, "0.1234", "123456789.123457"),
        pc(T + 2, T + 1, "0.0001", "0.000001", side="SELL", bid="0.0000", ask="0.0001"),
        pc(T + 3, T + 2, "0.9990", "5.100000"),
    ]
    out, _ = convert(tmp_path, rows)
    t = out["polymarket.price_change"].to_pydict()
    assert t["price"] == [float("0.1234"), float("0.0001"), float("0.999")]
    assert t["size"] == [float("123456789.123457"), float("0.000001"), float("5.1")]
    assert t["side"] == ["BUY", "SELL", "BUY"]
    assert t["best_bid"] == [0.49, 0.0, 0.49] and t["best_ask"] == [0.51, 0.0001, 0.51]
    assert t["recv_ns"] == [(T + k) * 1_000_000 for k in (1, 2, 3)]
    assert t["exch_ns"] == [(T + k) * 1_000_000 for k in (0, 1, 2)]
    assert t["key"] == [UP] * 3 and t["asset"] == ["btc"] * 3 and t["market"] == [CID] * 3
    assert t["hash"] == [None] * 3 and t["quality"] == [0, 0, 0]


def test_book_sides_parsed_and_sorted_best_first(tmp_path):
    bids = json.dumps([["0.47", "10"], ["0.49", "12.5"], ["0.48", "3"]])
    asks = json.dumps([["0.55", "1"], ["0.51", "7"], ["0.52", "2.25"]])
    out, _ = convert(tmp_path, [row("book", T, T - 5, bids=bids, asks=asks)])
    b = out["polymarket.book"].to_pylist()[0]
    assert b["bid_px"] == [0.49, 0.48, 0.47] and b["bid_size"] == [12.5, 3.0, 10.0]
    assert b["ask_px"] == [0.51, 0.52, 0.55] and b["ask_size"] == [7.0, 2.25, 1.0]
    assert b["origin"] == "ws" and b["quality"] == 0 and b["exch_ns"] == (T - 5) * 1_000_000
    raw = json.loads(b["raw"])
    assert raw["event_type"] == "book" and raw["bids"] == bids and raw["market"] == CID


def test_unreadable_or_crossed_book_is_flagged_so_the_engine_unsyncs(tmp_path):
    crossed = row("book", T, T, bids='[["0.60","1"]]', asks='[["0.50","1"]]')
    broken = row("book", T + 1, T, bids="[[", asks="[]")
    out, _ = convert(tmp_path, [crossed, broken])
    q = out["polymarket.book"].column("quality").to_pylist()
    assert q[0] & CROSSED and q[1] & 1
    assert out["polymarket.book"].column("bid_px").to_pylist()[1] == []


def test_entries_number_rows_of_one_frame_in_file_order(tmp_path):
    rows = [
        pc(T, T, "0.49", "1", asset=UP),
        pc(T, T, "0.48", "2", asset=UP),
        pc(T, T, "0.51", "3", side="SELL", asset=DOWN),
        pc(T + 7, T + 5, "0.49", "4", asset=UP),
    ]
    out, _ = convert(tmp_path, rows)
    t = out["polymarket.price_change"].to_pydict()
    # rows by receive time, file order within one ms (UP's two, then DOWN's); entries
    # number each frame's rows in file order
    assert t["size"] == [1.0, 2.0, 3.0, 4.0]
    assert t["entry"] == [0, 1, 2, 0]


def test_trade_and_tick_size_rows(tmp_path):
    rows = [
        row("last_trade_price", T, T - 1, price=Decimal("0.5300"), size=Decimal("10.500000"),
            side="SELL", fee_rate_bps=1000, transaction_hash="0xfeed"),
        row("tick_size_change", T + 1, T, old_tick_size=Decimal("0.0100"),
            new_tick_size=Decimal("0.0010")),
    ]  # fmt: skip
    out, _ = convert(tmp_path, rows)
    tr = out["polymarket.trade"].to_pylist()[0]
    assert (tr["price"], tr["size"], tr["side"], tr["fee_rate_bps"]) == (0.53, 10.5, "SELL", 1000.0)
    assert tr["transaction_hash"] == "0xfeed"
    tk = out["polymarket.tick_size"].to_pylist()[0]
    assert (tk["old_tick_size"], tk["new_tick_size"]) == (0.01, 0.001)
    # The typed columns hold every value of these rows: raw is "" (no wire frame is kept).
    assert tr["raw"] == "" and tk["raw"] == ""


def test_raw_is_valid_json_whatever_the_strings_hold(tmp_path):
    odd = 'a"b\\c'
    bids = '[["0.4", "2"]]'
    rows = [
        row("last_trade_price", T, T, price=Decimal("0.5"), size=Decimal("1"), side="BUY",
            transaction_hash=odd),
        pc(T + 1, T, "0.5", "1", asset='9"9'),
        row("book", T + 2, T, asset='9"9', bids=bids, asks="[]"),
    ]  # fmt: skip
    out, _ = convert(tmp_path, rows)
    # A book's raw is the archive row (its side texts as read); the others' typed columns
    # keep the strings verbatim and their raw is "".
    raw = json.loads(out["polymarket.book"].column("raw")[0].as_py())
    assert raw["asset_id"] == '9"9' and raw["bids"] == bids and raw["asks"] == "[]"
    assert out["polymarket.trade"].column("transaction_hash").to_pylist() == [odd]
    assert out["polymarket.price_change"].column("key").to_pylist() == ['9"9']
    assert out["polymarket.trade"].column("raw").to_pylist() == [""]
    assert out["polymarket.price_change"].column("raw").to_pylist() == [""]


def test_other_markets_and_unknown_assets(tmp_path):
    out, _ = convert(tmp_path, [pc(T, T, "0.5", "1", market=OTHER)])
    assert out["polymarket.price_change"].column("asset").to_pylist() == [None]


def test_same_ms_book_is_applied_before_the_change(tmp_path):
    """A change arriving in the same ms as a snapshot is sequenced after it (sizes are
    absolute, so this is right whichever came first on the wire)."""
    book = row("book", T, T, bids='[["0.49","100"]]', asks='[["0.51","100"]]')
    change = pc(T, T, "0.49", "7")
    # The archive may list the change first within the same ms.
    out, _ = convert(tmp_path, [change, book])
    unit = Unit("pmxt", "2026-05-01", 0, out)
    write_unit(tmp_path / "rec", unit, entry={"kind": "imported", "by": "test"})
    r = RecordingReader(tmp_path / "rec")
    b = r.read_stream("polymarket.book")["seq"][0]
    c = r.read_stream("polymarket.price_change")["seq"][0]
    assert b < c


def test_vectorised_books_equal_the_row_by_row_reading(tmp_path):
    import polars as pl

    from polyrl.importers import pmxt_book as pmxt

    sides = [
        ('[["0.47","10"],["0.49","12.5"],["0.48","3"]]', '[["0.55","1"],["0.51","7"]]'),  # bad time
        ('[["0.5","0"],["0.4","10"]]', '[["0.45","5"]]'),  # a removal: best bid is 0.4
        ('[["0.6","1"]]', '[["0.5","1"]]'),  # crossed
        ("[]", '[["1.5","2"],["0.9","1"]]'),  # empty side, a price out of range
        (None, '[["0.3","1"],["0.3","2"],["0.3","0.5"]]'),  # no side; equal prices
        ('[["-0.1","1"]]', "[]"),  # a bad level
    ]
    rows = [row("book", T + i, T + i - (0 if i else 10**9), bids=b, asks=a)
            for i, (b, a) in enumerate(sides)]  # fmt: skip
    path = write_pmxt_table(rows, tmp_path / "h.parquet", row_group_size=1000)
    df = pmxt._common(pmxt._book_frame(pq.read_table(path)), {CID: "btc"})
    fast, slow = pmxt._books_vectorised(df), pmxt._books_rows(df)
    assert fast is not None
    assert fast.select(slow.columns).equals(slow)
    assert len(set(slow["quality"].to_list())) == 6  # the cases above are told apart
    # Text JSON would escape otherwise, or a side of another shape: read row by row.
    for b in ('[{"price":"0.5","size":"1"}]', '[["0.5","1"]]\n'):
        odd = df.with_columns(bids=pl.lit(b))
        assert pmxt._books_vectorised(odd) is None
        assert pmxt._books(odd).equals(pmxt._books_rows(odd))


def test_chunked_rows_convert_as_one_chunk(tmp_path):
    # The read stage hands over several chunks; gathers across them keep every value.
    rows = [pc(T + k % 7, T, f"0.{10 + k % 80}", f"{k}.5", asset=(UP, DOWN)[k % 2],
               side=("BUY", "SELL")[k % 3 == 0]) for k in range(60)]  # fmt: skip
    rows += [row("book", T + 3, T, bids='[["0.4", "2"]]', asks='[["0.6", "1"]]'),
             row("last_trade_price", T + 2, T, price=Decimal("0.4"), size=Decimal("2"),
                 side="BUY", fee_rate_bps=0, transaction_hash="0x1")]  # fmt: skip
    out, path = convert(tmp_path, rows, rg=7)
    chunked = pq.read_table(path)
    assert chunked.column("asset_id").num_chunks > 1
    one = convert_hour(chunked.combine_chunks(), {CID: "btc"})
    assert out.keys() == one.keys() and len(out) == 3
    for stream in out:
        assert out[stream].equals(one[stream]), stream
    t = out["polymarket.price_change"]
    assert t.column("recv_ns").to_pylist() == sorted(t.column("recv_ns").to_pylist())
    assert sorted(t.column("size").to_pylist()) == [k + 0.5 for k in range(60)]


def test_rows_without_timestamp_are_frames_of_their_own(tmp_path):
    rows = [pc(T, None, "0.5", "1"), pc(T, None, "0.5", "2"), pc(T, T, "0.5", "3")]
    out, _ = convert(tmp_path, rows)
    t = out["polymarket.price_change"].to_pydict()
    assert t["exch_ns"] == [None, None, T * 1_000_000]
    assert t["entry"] == [0, 0, 0] and t["quality"] == [0, 0, 0]
