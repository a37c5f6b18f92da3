"""Loopback venue servers: Binance spot and USD-M WebSockets, the Polymarket CLOB market
channel and RTDS, and every REST endpoint the recorder polls, speaking the venues' real wire
protocols on 127.0.0.1, with fault injection and an exact log of what was sent.

Content comes from the simulator (:class:`SimContent`) or a recording
(:class:`RecordingContent`); time from a shared :class:`polyrl.clock.LiveClock` (sped up so
a 15-minute window passes in seconds). See :mod:`.servers` for the layout and an example,
:mod:`.faults` for the faults, :mod:`.log` for the sent logs.

Unlike the rest of :mod:`polyrl.sim` this package does I/O (sockets, a producer thread).
"""

from polyrl.sim.serve.config import ServeConfig
from polyrl.sim.serve.content import RecordingContent, SimContent, VenueContent
from polyrl.sim.serve.faults import FaultSpec
from polyrl.sim.serve.log import ConnectionLog, HttpExchange, SentFrame
from polyrl.sim.serve.servers import ServersThread, VenueServers

__all__ = [
    "ConnectionLog",
    "FaultSpec",
    "HttpExchange",
    "RecordingContent",
    "SentFrame",
    "ServeConfig",
    "ServersThread",
    "SimContent",
    "VenueContent",
    "VenueServers",
]
