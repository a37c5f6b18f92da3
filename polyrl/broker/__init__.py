"""Paper execution: the vectorised PaperBroker, Polymarket taker fees and settlement.

See :mod:`polyrl.broker.broker` for what each action does in each state, and
:mod:`polyrl.broker.fees` for the fee schedules and their rounding.
"""

from polyrl.broker.book import ASK, BID, DOWN, UP, Books, best_price, walk_buy, walk_sell
from polyrl.broker.broker import PaperBroker
from polyrl.broker.config import BrokerConfig, MarketRules
from polyrl.broker.fees import raw_taker_fee, round_fee, taker_fee
from polyrl.broker.results import (
    ACTION_NAMES,
    BUY,
    DECIDED,
    HOLD,
    REJECT_MIN_NOTIONAL,
    REJECT_MIN_SIZE,
    REJECT_NAMES,
    REJECT_NO_LIQUIDITY,
    REJECT_NONE,
    REJECT_NOT_TRADABLE,
    SELL,
    Fills,
    Settlement,
    StepResult,
)

__all__ = [
    "ACTION_NAMES",
    "ASK",
    "BID",
    "BUY",
    "DECIDED",
    "DOWN",
    "HOLD",
    "REJECT_MIN_NOTIONAL",
    "REJECT_MIN_SIZE",
    "REJECT_NAMES",
    "REJECT_NO_LIQUIDITY",
    "REJECT_NONE",
    "REJECT_NOT_TRADABLE",
    "SELL",
    "UP",
    "Books",
    "BrokerConfig",
    "Fills",
    "MarketRules",
    "PaperBroker",
    "Settlement",
    "StepResult",
    "best_price",
    "raw_taker_fee",
    "round_fee",
    "taker_fee",
    "walk_buy",
    "walk_sell",
]
