"""The embedded ``sample`` recording: generated on first use, deterministically.

``sample`` is accepted wherever a recording root or ``--replay`` is taken. It names a small
simulated recording (fixed start, span and seed) kept under ``<recordings root>/sample``:
two hours of all four assets from 2024-06-01T23:00 UTC, so it spans two recording days
(``polyrl train --replay sample`` trains on the first and evaluates on the second);
if it is missing or was left incomplete it is (re)generated, which takes well under a
minute, and every machine generates byte-identical files.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from polyrl.config import Config, load_config, to_dict
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.provenance import FORMAT as PROVENANCE_FORMAT

SAMPLE_NAME = "sample"
SAMPLE_START = "2024-06-01T23:00:00Z"
SAMPLE_HOURS = 2.0
SAMPLE_SEED = 20240601
_MARKER = "SAMPLE.json"


def sample_root(config: Config | None = None) -> Path:
    """Where the sample lives: ``<recording.root>/sample``."""
    cfg = config or load_config()
    return Path(cfg.recording.root) / SAMPLE_NAME


def ensure_sample(
    config: Config | None = None, progress: Callable[[int], None] | None = None
) -> Path:
    """The sample's root, generating it first if it is not complete."""
    from polyrl.sim.record import simulate_to_recording

    user = config or load_config()
    root = sample_root(user)
    # Built-in defaults only (never the user's [sim] or [sources] tweaks): the sample must be
    # the same recording on every machine.
    cfg = Config(recording=user.recording)
    marker = root / _MARKER
    spec = {
        "start": SAMPLE_START,
        "hours": SAMPLE_HOURS,
        "seed": SAMPLE_SEED,
        "assets": list(cfg.assets),
        # A sample made before recordings carried provenance files is made again.
        "provenance": PROVENANCE_FORMAT,
        # The simulator's settings too: a sample made under older defaults is regenerated.
        "sim": to_dict(cfg.sim),
    }
    if marker.exists():
        try:
            if json.loads(marker.read_text()) == spec:
                return root
        except (OSError, ValueError):
            pass
    if root.exists():
        shutil.rmtree(root)
    start = iso_to_ns(SAMPLE_START)
    simulate_to_recording(
        root,
        start_ns=start,
        end_ns=start + int(SAMPLE_HOURS * 3600) * NS_PER_S,
        seed=SAMPLE_SEED,
        config=cfg,
        progress=progress,
        by="the embedded sample",
    )
    marker.write_text(json.dumps(spec))
    return root


def resolve_root(
    root: str | Path,
    config: Config | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """A recording root argument -> a path; ``sample`` means the embedded sample."""
    if str(root) == SAMPLE_NAME:
        return ensure_sample(config, progress)
    return Path(root)
