"""polyrl: record, replay, train and paper-trade on Polymarket's 15-minute crypto Up/Down markets.

Paper trading only: nothing in this package ever sends an order to a venue.
"""

__version__ = "0.1.0"
