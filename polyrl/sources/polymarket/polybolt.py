"""PolyBolt (``wss://ws-live-v2.polymarket.com/ws``), RTDS's successor for the settlement
reference: the Chainlink 60 s TWAP on channel ``price.crypto.twap``.

Protocol (Polymarket's live-data docs): after the socket opens the client sends
``{"op":"auth","rid":..,"auth":{"apiKey","secret","passphrase"}}`` with its CLOB API
credentials and waits for ``{"op":"authed"}``, then
``{"op":"subscribe","subscriptions":[{"channel":"price.crypto.twap","filter":{"symbol":
"btcusd","window_seconds":60}}, ...]}`` (lowercase ``<asset>usd`` symbols; 60 s is the only
window). Each new subscription gets an acknowledgement and one snapshot of the last two
minutes, then live envelopes ``{v, channel, seq, ts, snapshot?, dropped?, payload}``. The
server pings every 25 s at the WebSocket level (the websockets library answers with pongs;
two missed pongs close 4002). Close codes: :data:`CLOSE_CODES`. After every reconnect the
client authenticates and subscribes again.

**Credentials** come only from the environment (:data:`ENV_VARS`), are held in a
:class:`ClobCredentials` whose ``repr`` hides them, and are written nowhere: not to configs,
recordings (no frame we send is recorded; status rows name the variables, never values),
run files or logs. A half-set triple is a :class:`~polyrl.errors.ConfigError` naming what is
missing.

**Refusals** (close 4001, or an error acknowledgement of the auth op) and policy closes (4008)
are each written as an ``auth_failed`` / ``policy_close`` status row and said on stderr; the
next try waits ``reconnect_max_s`` times the failures so far, and after
:data:`MAX_AUTH_FAILURES` in a row the adapter stops trying (a ``gave_up`` status row and an
alert) while the other sources go on recording. A 4003 (server draining) reconnects once
after a uniform 0-10 s delay; everything else backs off like every WebSocket adapter.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection

from polyrl.errors import ConfigError
from polyrl.events import CH_POLYBOLT_WS, NS_PER_S, Frame
from polyrl.sources.config import SourcesConfig
from polyrl.sources.parse import status_frame
from polyrl.sources.sink import FrameSink
from polyrl.sources.ws import WsConnection

ENV_API_KEY = "POLYRL_CLOB_API_KEY"
ENV_SECRET = "POLYRL_CLOB_API_SECRET"
ENV_PASSPHRASE = "POLYRL_CLOB_API_PASSPHRASE"
ENV_VARS = (ENV_API_KEY, ENV_SECRET, ENV_PASSPHRASE)
"""The environment variables holding the CLOB API key, secret and passphrase."""

TWAP_CHANNEL = "price.crypto.twap"
TWAP_WINDOW_S = 60
"""PolyBolt's only TWAP window (there is no 30 s one)."""
MAX_SUBSCRIPTIONS = 64
"""Active (channel, filter) pairs one connection may hold (more: close 4008)."""
AUTH_TIMEOUT_S = 10.0
"""Clock seconds to wait for the answer to the auth op (never under
:data:`AUTH_TIMEOUT_MIN_REAL_S` real seconds); no answer is not a refusal: the connection is
dropped and retried with the usual backoff."""
AUTH_TIMEOUT_MIN_REAL_S = 5.0
MAX_AUTH_FAILURES = 3
"""Refusals in a row after which the adapter stops trying."""
DRAIN_RECONNECT_MAX_S = 10.0
"""A 4003 (server draining) reconnects after a uniform delay up to this, seconds."""

CLOSE_CODES: dict[int, str] = {
    4001: "authentication failed on a presented credential",
    4002: "slow consumer or pong timeout",
    4003: "server draining",
    4008: "policy violation",
}
"""PolyBolt's close codes and what they mean (Polymarket's live-data docs)."""
AUTH_CLOSE = 4001
POLICY_CLOSE = 4008
DRAIN_CLOSE = 4003


def close_meaning(code: int | None) -> str:
    """``"close 4001 (authentication failed on a presented credential)"``, or the bare code."""
    if code is None:
        return "no close code"
    meaning = CLOSE_CODES.get(code)
    return f"close {code} ({meaning})" if meaning else f"close {code}"


@dataclass(frozen=True, slots=True)
class ClobCredentials:
    """CLOB API credentials; ``repr`` and ``str`` never show them."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str = field(repr=False)

    def values(self) -> tuple[str, str, str]:
        return (self.api_key, self.secret, self.passphrase)


def credentials_from_env(environ: Mapping[str, str]) -> ClobCredentials | None:
    """The credentials from :data:`ENV_VARS` (an empty value counts as unset); None when none
    is set; a :class:`ConfigError` naming the variables missing when only some are."""
    got = {name: environ.get(name, "") for name in ENV_VARS}
    missing = [name for name, v in got.items() if not v]
    if len(missing) == len(ENV_VARS):
        return None
    if missing:
        have = ", ".join(n for n in ENV_VARS if n not in missing)
        raise ConfigError(
            f"PolyBolt credentials: {', '.join(missing)} not set ({have} set); set all three "
            "or none"
        )
    return ClobCredentials(got[ENV_API_KEY], got[ENV_SECRET], got[ENV_PASSPHRASE])


def no_credentials_note() -> str:
    """The one line said at start when PolyBolt is not recorded."""
    return (
        f"PolyBolt not recorded: no CLOB API credentials ({', '.join(ENV_VARS)} unset); "
        "recording the RTDS reference topics only"
    )


def polybolt_symbol(asset: str) -> str:
    """PolyBolt's symbol of an asset: lowercase ``<asset>usd`` (``btcusd``)."""
    return f"{asset.lower()}usd"


def auth_message(creds: ClobCredentials, rid: str = "auth") -> str:
    """The auth op (the one frame holding the credentials; it is sent, never recorded)."""
    auth = {"apiKey": creds.api_key, "secret": creds.secret, "passphrase": creds.passphrase}
    return json.dumps({"op": "auth", "rid": rid, "auth": auth}, separators=(",", ":"))


def subscribe_message(assets: Sequence[str], rid: str = "twap") -> str:
    """One batch subscribing the 60 s TWAP of every asset."""
    if len(assets) > MAX_SUBSCRIPTIONS:
        raise ConfigError(f"PolyBolt allows {MAX_SUBSCRIPTIONS} subscriptions, not {len(assets)}")
    subs = [
        {
            "channel": TWAP_CHANNEL,
            "filter": {"symbol": polybolt_symbol(a), "window_seconds": TWAP_WINDOW_S},
        }
        for a in assets
    ]
    return json.dumps({"op": "subscribe", "rid": rid, "subscriptions": subs}, separators=(",", ":"))


def ack_of(text: str) -> tuple[str, str | None] | None:
    """``(op, code)`` of an acknowledgement frame, None for anything else."""
    try:
        o = json.loads(text)
    except ValueError:
        return None
    if not isinstance(o, dict) or not isinstance(o.get("op"), str):
        return None
    code = o.get("code")
    return o["op"], (str(code) if code is not None else None)


class PolyBoltAdapter:
    """The 60 s TWAP of ``assets`` from PolyBolt, on channel :data:`CH_POLYBOLT_WS`."""

    def __init__(
        self,
        assets: Sequence[str],
        cfg: SourcesConfig,
        credentials: ClobCredentials,
        *,
        on_alert: Callable[[str, str], None] | None = None,
        seed: int = 5,
    ) -> None:
        self.name = CH_POLYBOLT_WS
        self.assets = list(assets)
        self.cfg = cfg
        self._creds = credentials
        self.on_alert = on_alert
        self.rng = random.Random(seed)
        self.failures = 0
        """Refusals in a row (reset by a successful auth)."""
        self.gave_up = False
        self._refused: str | None = None

    async def run(self, sink: FrameSink) -> None:
        self.sink = sink
        conn = WsConnection(
            channel=CH_POLYBOLT_WS,
            url=lambda: self.cfg.polymarket_polybolt_ws,
            sink=sink,
            config=self.cfg,
            on_open=self._on_open,
            name="polybolt",
            rng=self.rng,
            after_close=self._after_close,
        )
        await conn.run()
        await asyncio.Event().wait()  # gave up: idle until the recorder stops

    def _status(self, kind: str, message: str) -> None:
        now = self.sink.clock.now_ns()
        self.sink.emit(status_frame(kind, now, channel=self.name, message=message))

    def _alert(self, message: str) -> None:
        if self.on_alert is not None:
            self.on_alert("alert", message)

    async def _on_open(self, ws: ClientConnection) -> None:
        self._refused = None
        await ws.send(auth_message(self._creds))
        clock = self.sink.clock
        wait = max(clock.real_seconds(int(AUTH_TIMEOUT_S * NS_PER_S)), AUTH_TIMEOUT_MIN_REAL_S)
        op, code = "", None
        try:
            async with asyncio.timeout(wait):
                while op not in ("authed", "error"):
                    msg = await ws.recv()
                    text = msg if isinstance(msg, str) else msg.decode("utf-8", errors="replace")
                    self.sink.emit(Frame(channel=self.name, recv_ns=clock.now_ns(), text=text))
                    op, code = ack_of(text) or ("", None)
        except TimeoutError:
            self._status("auth_timeout", f"PolyBolt: no answer to auth in {AUTH_TIMEOUT_S:g}s")
            await ws.close()
            return
        if op == "authed":
            self.failures = 0
            await ws.send(subscribe_message(self.assets))
            symbols = ",".join(polybolt_symbol(a) for a in self.assets)
            self._status("subscribe", f"{TWAP_CHANNEL} window {TWAP_WINDOW_S}s: {symbols}")
            return
        # An error acknowledgement leaves the socket open: close it ourselves.
        self._refused = f"auth refused ({code or 'error'})"
        await ws.close()

    def _after_close(self, code: int | None) -> float | None:
        refused = self._refused
        self._refused = None
        if code == AUTH_CLOSE or code == POLICY_CLOSE or refused is not None:
            self.failures += 1
            why = close_meaning(code) if code in (AUTH_CLOSE, POLICY_CLOSE) else str(refused)
            kind = "policy_close" if code == POLICY_CLOSE else "auth_failed"
            line = (
                f"PolyBolt {why}: check {', '.join(ENV_VARS)} "
                f"(failure {self.failures} of {MAX_AUTH_FAILURES})"
            )
            self._status(kind, line)
            self._alert(line)
            if self.failures >= MAX_AUTH_FAILURES:
                self.gave_up = True
                line = (
                    f"PolyBolt: gave up after {self.failures} refusals in a row; the other "
                    "sources keep recording (restart to try again)"
                )
                self._status("gave_up", line)
                self._alert(line)
                return math.inf
            return self.cfg.reconnect_max_s * self.failures
        if code == DRAIN_CLOSE:
            self._status("close_code", f"PolyBolt {close_meaning(code)}")
            return self.rng.uniform(0.0, DRAIN_RECONNECT_MAX_S)
        if code in CLOSE_CODES:
            self._status("close_code", f"PolyBolt {close_meaning(code)}")
        return None
