"""PolyBolt client pieces: credentials from the environment only, the auth and subscribe
messages as the live-data docs spell them, the close-code meanings, and which feed a PolyBolt
TWAP row is."""

from __future__ import annotations

import json

import pytest

from polyrl.errors import ConfigError
from polyrl.sim.serve.polybolt import decimal_of_e18
from polyrl.sources.polymarket.polybolt import (
    CLOSE_CODES,
    ENV_VARS,
    ack_of,
    auth_message,
    close_meaning,
    credentials_from_env,
    subscribe_message,
)
from polyrl.sources.polymarket.reference import is_settlement_feed, market_feed, row_feed

FULL = dict(zip(ENV_VARS, ("k-123", "s-456", "p-789"), strict=True))


def test_no_variable_set_means_no_credentials() -> None:
    assert credentials_from_env({}) is None
    assert credentials_from_env({name: "" for name in ENV_VARS}) is None


def test_all_three_give_credentials_that_never_show_in_repr() -> None:
    creds = credentials_from_env(FULL)
    assert creds is not None and creds.values() == ("k-123", "s-456", "p-789")
    for text in (repr(creds), str(creds)):
        assert not any(v in text for v in FULL.values()), text


@pytest.mark.parametrize("missing", ENV_VARS)
def test_a_half_set_triple_is_one_line_naming_the_missing_variable(missing: str) -> None:
    env = {k: v for k, v in FULL.items() if k != missing}
    with pytest.raises(ConfigError) as e:
        credentials_from_env(env)
    msg = str(e.value)
    assert f"{missing} not set" in msg and "\n" not in msg
    assert not any(v in msg for v in FULL.values())  # values are never echoed


def test_an_empty_variable_counts_as_missing() -> None:
    with pytest.raises(ConfigError, match="POLYRL_CLOB_API_SECRET not set"):
        credentials_from_env({**FULL, "POLYRL_CLOB_API_SECRET": ""})


def test_auth_message_is_the_documented_op() -> None:
    creds = credentials_from_env(FULL)
    assert creds is not None
    msg = json.loads(auth_message(creds, rid="a1"))
    assert msg == {
        "op": "auth",
        "rid": "a1",
        "auth": {"apiKey": "k-123", "secret": "s-456", "passphrase": "p-789"},
    }


def test_subscribe_message_asks_the_60s_twap_of_each_asset_in_lowercase_usd() -> None:
    msg = json.loads(subscribe_message(["btc", "eth", "sol", "xrp"]))
    assert msg["op"] == "subscribe"
    assert msg["subscriptions"] == [
        {"channel": "price.crypto.twap", "filter": {"symbol": f"{a}usd", "window_seconds": 60}}
        for a in ("btc", "eth", "sol", "xrp")
    ]


def test_more_than_64_subscriptions_are_refused_before_sending() -> None:
    with pytest.raises(ConfigError, match="64"):
        subscribe_message([f"a{i}" for i in range(65)])


@pytest.mark.parametrize(
    "code,words",
    [
        (4001, "authentication failed"),
        (4002, "slow consumer or pong timeout"),
        (4003, "server draining"),
        (4008, "policy violation"),
    ],
)
def test_close_codes_are_named(code: int, words: str) -> None:
    assert code in CLOSE_CODES
    assert close_meaning(code) == f"close {code} ({CLOSE_CODES[code]})"
    assert words in close_meaning(code)


def test_unknown_and_missing_close_codes() -> None:
    assert close_meaning(1006) == "close 1006"
    assert close_meaning(None) == "no close code"


def test_ack_of_reads_acknowledgements_only() -> None:
    assert ack_of('{"op":"authed","rid":"a1"}') == ("authed", None)
    assert ack_of('{"op":"error","code":"auth_required","channel":"price.crypto"}') == (
        "error",
        "auth_required",
    )
    assert ack_of('{"v":1,"channel":"price.crypto.twap","seq":1}') is None
    assert ack_of("not json") is None


def test_a_polybolt_twap60_row_is_the_twap60_markets_own_feed() -> None:
    feed = row_feed("price.crypto.twap", 60)
    assert feed == market_feed(60) == row_feed("crypto_prices_twap_sixty", 60)
    assert is_settlement_feed(feed)
    # PolyBolt serves the 60 s window only: a row without window_seconds is that one.
    assert row_feed("price.crypto.twap", None) == "twap60"
    # Pyth (price.crypto) is no market's settlement feed.
    assert not is_settlement_feed(row_feed("price.crypto", None))


def test_the_loopback_turns_rtds_e18_into_polybolt_decimal_strings() -> None:
    assert decimal_of_e18("65048078900000000000000") == "65048.078900000000000000"
    assert decimal_of_e18("5") == "0.000000000000000005"
    assert decimal_of_e18("-1500000000000000000") == "-1.500000000000000000"


def test_simulate_help_names_the_test_credentials_the_loopback_accepts() -> None:
    from polyrl.cli.simulate import simulate_cmd
    from polyrl.sim.serve import ServeConfig

    doc = " ".join((simulate_cmd.__doc__ or "").split())
    cfg = ServeConfig()
    for name, value in zip(
        ENV_VARS, (cfg.polybolt_api_key, cfg.polybolt_secret, cfg.polybolt_passphrase), strict=True
    ):
        assert f"{name}={value}" in doc, name


def test_polybolt_status_rows_name_the_polybolt_channel() -> None:
    from polyrl.events import CH_POLYBOLT_WS, CH_RTDS_WS, Frame
    from polyrl.sources.parse import Parser

    parser = Parser()
    ack = '{"op":"authed","rid":"auth"}'
    dropped = (
        '{"v":1,"channel":"price.crypto.twap","seq":9,"ts":1790658060000,"dropped":2,'
        '"payload":{"symbol":"btcusd","value":1.5,"full_accuracy_value":"1.5",'
        '"timestamp":1790658060000,"window_seconds":60}}'
    )
    for channel in (CH_POLYBOLT_WS, CH_RTDS_WS):
        evs = [
            ev
            for text in (ack, dropped)
            for ev in parser.parse(Frame(channel=channel, recv_ns=10**18, text=text))
        ]
        status = [e for e in evs if e.stream == "recorder.status"]
        assert [e.fields["kind"] for e in status] == ["control", "gap"]
        assert all(e.key == channel for e in status)
        (row,) = [e for e in evs if e.stream == "reference.price"]
        assert row.fields["topic"] == "price.crypto.twap" and row.fields["window_s"] == 60
