"""The config file that points polyrl at the loopback venues: ``assets``, the full
``[sources]`` section (every URL at the servers) and the ``[clock]`` they run on, as TOML.
Written by ``polyrl simulate --serve`` and the recorder benchmark.
"""

from __future__ import annotations

import json
from typing import Any

from polyrl.config import Config, to_dict
from polyrl.errors import ConfigError
from polyrl.events import ns_to_iso
from polyrl.sources.config import SourcesConfig


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        # JSON string escapes are valid TOML basic-string escapes.
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"cannot write {v!r} to TOML")


def serve_toml(
    config: Config, sources: SourcesConfig, *, speed: float, start_ns: int, anchor_ns: int
) -> str:
    """A config file: ``assets`` and the full ``[sources]`` section (URLs at the servers).

    The header says how the servers' clock runs, so a recorder can share it: virtual time =
    ``start + (wall time - anchor) * speed``.
    """
    lines = [
        "# Written by `polyrl simulate --serve`: polyrl pointed at the loopback venue servers.",
        f"# The servers' clock runs {speed:g}x: it read {ns_to_iso(start_ns)} at wall time",
        f"# {ns_to_iso(anchor_ns)} (virtual = start + (wall - anchor) x speed). A recorder",
        "# run against them shares the [clock] below.",
        f"assets = {_toml_value(list(config.assets))}",
        "",
        "[sources]",
    ]
    for key, value in to_dict(sources).items():
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    lines += [
        "",
        "[clock]",
        f"speed = {_toml_value(float(speed))}",
        f"start = {_toml_value(ns_to_iso(start_ns))}",
        f"anchor_real_ns = {anchor_ns}",
    ]
    return "\n".join(lines) + "\n"
