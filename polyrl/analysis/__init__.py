"""Analysis of runs and recordings for notebooks and reports (polars frames, matplotlib).

Loading:

- :func:`load_run` (``runs/<name>`` of any kind -> :class:`Run` of frames: ``metrics``,
  ``trades``, ``episodes``, ``decisions``, ``timing``, held-out ``eval_trades`` and
  ``eval_episodes``, with ``config`` and ``summary``); :func:`load_runs` stacks several with
  a ``run`` column; :meth:`Run.results` gives ``{strategy: (trades, episodes)}``;
  :func:`sibling_runs` finds the other runs of a ``polyrl backtest --strategy all``;
- :func:`load_recording` (a recording root and date globs -> :class:`Recording`: streams,
  rates, status and gaps, markets, one window around its close).

Tables (:mod:`polyrl.analysis.stats`, :mod:`polyrl.analysis.paired`,
:mod:`polyrl.analysis.trades`, :mod:`polyrl.analysis.calibration`): :func:`summary_table`,
:func:`by_time_left`, :func:`time_left_table`, :func:`compare` (Holm-corrected, on the same
clusters), :func:`paired_difference`, :func:`positions`, :func:`equity`,
:func:`calibration_table` (n, wins and a Wilson interval per entry-price bin).

Every interval is the seeded cluster bootstrap of :mod:`polyrl.analysis.bootstrap`.

Figures (:mod:`polyrl.analysis.plots`), each returning a matplotlib Figure:
:func:`plot_equity`, :func:`plot_pnl_by_asset`, :func:`plot_training`,
:func:`plot_calibration`, :func:`plot_trade_pnl`, :func:`plot_pnl_by_time_left`,
:func:`plot_comparison`, :func:`plot_data_quality`, :func:`plot_window`.

Reports (:mod:`polyrl.analysis.report`): :func:`results_tables` and :func:`results_figures`
(any ``{strategy: (trades, episodes)}`` on the same days), :func:`run_tables`,
:func:`run_figures`, :func:`write_report` (what ``polyrl report`` runs). Sample runs for
the notebooks: :mod:`polyrl.analysis.examples`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Names resolve on first use, so that ``polyrl.analysis.stats`` (which training and backtests
# import) does not pull in matplotlib and the rest.
_EXPORTS = {
    "plots": ("plot_calibration", "plot_comparison", "plot_data_quality", "plot_equity",
              "plot_pnl_by_asset", "plot_pnl_by_time_left", "plot_trade_pnl", "plot_training",
              "plot_window"),
    "trades": ("closed_pnl", "equity", "positions"),
    "calibration": ("calibration_table", "wilson_interval"),
    "recordings": ("Recording", "WindowView", "load_recording"),
    "report": ("RunTables", "results_figures", "results_tables", "run_figures", "run_tables",
               "write_report"),
    "runs": ("Run", "RunError", "Runs", "find_runs", "load_run", "load_runs", "sibling_runs"),
    "stats": ("by_time_left", "summarize", "summary_frame", "summary_table", "time_left_table"),
    "paired": ("compare", "paired_difference"),
}  # fmt: skip
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'polyrl.analysis' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"polyrl.analysis.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
