"""Provenance: every recording day says what made it (simulated, recorded, imported) or is
unknown, and a run's ``data`` section names the simulator settings and seed."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from polyrl.errors import RecordingError
from polyrl.events import NS_PER_S, iso_to_ns
from polyrl.recording.provenance import (
    KINDS,
    changed_settings,
    data_section,
    day_provenance,
    note_day,
    provenance_path,
    recorded_entry,
    root_provenance,
)
from polyrl.recording.writer import RecordingConfig, RecordingWriter, recording_files
from polyrl.sections import Config
from polyrl.sim.config import SimConfig
from polyrl.sim.record import simulate_to_recording, simulation_provenance
from polyrl.sources.config import SourcesConfig
from polyrl.testing.factories import make_event

FAST = RecordingConfig(fsync=False)
T0 = iso_to_ns("2024-06-01T23:59:00Z")
# Whatever the simulator's defaults become, this differs from them.
LAG = SimConfig().book_lag_s + 1.5


def _simulate(root: Path, sim: SimConfig, seed: int = 7) -> Config:
    cfg = Config(recording=FAST, sim=sim, assets=("btc",))
    simulate_to_recording(root, start_ns=T0, end_ns=T0 + 120 * NS_PER_S, seed=seed, config=cfg)
    return cfg


def test_a_simulated_recording_names_its_settings_and_seed_on_every_day(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    cfg = _simulate(root, dataclasses.replace(SimConfig(), book_lag_s=LAG))
    days = root_provenance(root)
    assert list(days) == ["2024-06-01", "2024-06-02"]  # the span crosses midnight
    want = simulation_provenance(
        cfg, start_ns=T0, end_ns=T0 + 120 * NS_PER_S, seed=7, by="polyrl simulate"
    )
    for day in days.values():
        assert day.kind == "simulated"
        (entry,) = day.sources
        # The full settings round-trip: a SimConfig rebuilt from them is the one simulated.
        assert entry == json.loads(json.dumps(want))
        assert SimConfig(**{k: tuple(v) if isinstance(v, list) else v
                            for k, v in entry["sim"].items()}) == cfg.sim  # fmt: skip
        assert entry["seed"] == 7 and entry["assets"] == ["btc"]
    data = data_section(root, ["2024-06-01", "2024-06-02"], sim_class=SimConfig)
    assert data["kinds"] == ["simulated"]
    assert data["days"]["2024-06-01"]["changed"] == {"book_lag_s": LAG}
    assert data["days"]["2024-06-02"]["seed"] == 7
    assert data["text"] == f"simulated, seed 7, book_lag_s={LAG}"
    assert len(data["sources"]) == 1 and data["sources"][0]["sim"]["book_lag_s"] == LAG


@pytest.fixture(scope="module")
def default_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two simulated minutes across midnight, default settings, seed 3."""
    root = tmp_path_factory.mktemp("default-sim") / "rec"
    _simulate(root, SimConfig(), seed=3)
    return root


def test_default_settings_are_said_and_follow_the_dataclass_defaults(default_sim: Path) -> None:
    root = default_sim
    data = data_section(root, ["2024-06-01"], sim_class=SimConfig)
    assert data["text"] == "simulated, seed 3, default settings"
    assert data["days"]["2024-06-01"]["changed"] == {}

    # Against other defaults (as when the simulator's defaults change after a recording was
    # made), the same recording names the settings that now differ.
    @dataclasses.dataclass(frozen=True)
    class Later:
        book_lag_s: float = SimConfig().book_lag_s + 1.0
        new_knob: int = 1

    entry = day_provenance(root, "2024-06-01").sources[0]
    changed = changed_settings(entry, Later)
    assert changed["book_lag_s"] == SimConfig().book_lag_s
    assert changed["new_knob"] == "(not recorded)"
    # [sources] settings the simulator followed are named when they differ too.
    poll = SourcesConfig().resolution_poll_s + 5.0
    other = {**entry, "sources": {**entry["sources"], "resolution_poll_s": poll}}
    assert changed_settings(other, SimConfig) == {"sources.resolution_poll_s": poll}


def test_recorded_days_say_recorded_and_name_non_default_venues(tmp_path: Path) -> None:
    public = tmp_path / "public"
    entry = recorded_entry(SourcesConfig(), by="polyrl record")
    with RecordingWriter(public, config=FAST, provenance=entry) as w:
        w.append(make_event("binance.spot.trade", T0, i=0))
    day = day_provenance(public, "2024-06-01")
    assert day.kind == "recorded" and day.sources[0]["non_default_venues"] == []
    assert data_section(public, ["2024-06-01"], sim_class=SimConfig)["text"] == "recorded"

    loop = tmp_path / "loopback"
    src = SourcesConfig(
        binance_spot_ws="ws://127.0.0.1:9101", polymarket_gamma_rest="http://127.0.0.1:9105"
    )
    entry = recorded_entry(src, by="polyrl record", clock_speed=50.0)
    with RecordingWriter(loop, config=FAST, provenance=entry) as w:
        w.append(make_event("binance.spot.trade", T0, i=0))
    data = data_section(loop, ["2024-06-01"], sim_class=SimConfig)
    assert data["kinds"] == ["recorded"]
    assert data["text"] == (
        "recorded from non-default venues (127.0.0.1:9101, 127.0.0.1:9105), clock at 50x real time"
    )
    assert data["sources"][0]["venues"]["binance_spot_ws"] == "ws://127.0.0.1:9101"


def test_a_root_without_provenance_is_unknown_never_guessed(tmp_path: Path) -> None:
    root = tmp_path / "old"
    with RecordingWriter(root, config=FAST) as w:  # a writer that says nothing
        w.append(make_event("binance.spot.trade", T0, i=0))
    assert not (root / "provenance").exists()
    day = root_provenance(root)["2024-06-01"]
    assert day.kind == "unknown" and day.sources == ()
    data = data_section(root, ["2024-06-01"], sim_class=SimConfig)
    assert data["kinds"] == ["unknown"]
    assert data["text"].startswith("unknown (no provenance file")
    # An unreadable file is unknown too, and is left as it was (never overwritten).
    path = provenance_path(root, "2024-06-01")
    path.parent.mkdir()
    path.write_text("{not json")
    assert day_provenance(root, "2024-06-01").kind == "unknown"
    assert "unreadable provenance file" in day_provenance(root, "2024-06-01").problem
    assert note_day(root, "2024-06-01", {"kind": "recorded", "by": "x"}) is False
    assert path.read_text() == "{not json"


def test_entries_are_kept_once_and_a_day_of_two_kinds_is_mixed(tmp_path: Path) -> None:
    rec = {"kind": "recorded", "by": "polyrl record", "venues": {}, "non_default_venues": []}
    imp = {"kind": "imported", "by": "an importer", "archive": "an archive"}
    for entry in (rec, rec, imp, rec):
        assert note_day(tmp_path, "2024-06-01", entry, fsync=False)
    day = day_provenance(tmp_path, "2024-06-01")
    assert day.sources == (rec, imp) and day.kind == "mixed"
    assert "imported" in KINDS


def test_an_entry_of_no_known_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="provenance kind 'synthetic'"):
        note_day(tmp_path, "2024-06-01", {"kind": "synthetic"})
    with pytest.raises(RecordingError, match="provenance kind"):
        RecordingWriter(tmp_path, config=FAST, provenance={"seed": 1})


def test_days_of_different_data_are_each_named(default_sim: Path, tmp_path: Path) -> None:
    root = tmp_path / "rec"
    shutil.copytree(default_sim, root)  # 2024-06-01 and -02, simulated
    with RecordingWriter(root, config=FAST) as w:  # a later day with no provenance
        w.append(make_event("binance.spot.trade", iso_to_ns("2024-06-03T01:00:00Z"), i=0))
    data = data_section(root, ["2024-06-01", "2024-06-02", "2024-06-03"], sim_class=SimConfig)
    assert data["kinds"] == ["simulated", "unknown"]
    assert data["text"].startswith(
        "2024-06-01..2024-06-02: simulated, seed 3, default settings; 2024-06-03: unknown ("
    )


def test_a_provenance_file_that_cannot_be_written_never_costs_rows(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    root.mkdir()
    (root / "provenance").write_text("in the way")  # a file where the folder should be
    entry = recorded_entry(SourcesConfig(), by="polyrl record")
    with RecordingWriter(root, config=FAST, provenance=entry) as w:
        w.append(make_event("binance.spot.trade", T0, i=0))
    assert len(recording_files(root)) == 1  # the rows are on disk
    assert day_provenance(root, "2024-06-01").kind == "unknown"
    # Once the way is clear, the writer's next file of the day says what made it.
    (root / "provenance").unlink()
    w = RecordingWriter(root, config=FAST, provenance=entry)
    (root / "provenance").write_text("in the way")
    w.append(make_event("binance.spot.trade", T0 + 1, i=1))
    w.flush()
    (root / "provenance").unlink()
    w.append(make_event("binance.spot.trade", T0 + 2, i=2))
    w.close()
    assert day_provenance(root, "2024-06-01").sources == (entry,)


def test_inspect_names_each_day_and_never_claims_defaults_it_did_not_compare(
    default_sim: Path,
) -> None:
    from polyrl.recording.inspect import format_report, inspect_recording

    report = inspect_recording(default_sim, sim_class=SimConfig)
    want = "simulated, seed 3, default settings"
    assert report.data == {"2024-06-01": want, "2024-06-02": want}
    assert f"  2024-06-02  {want}" in format_report(report)
    assert json.loads(report.to_json())["data"] == report.data
    # Without the simulator's defaults to compare with, it says where the settings are.
    bare = inspect_recording(default_sim).data["2024-06-01"]
    assert bare == "simulated, seed 3, settings in provenance/"
    data = data_section(default_sim, ["2024-06-01"], sim_class=None)
    assert "changed" not in data["days"]["2024-06-01"] and "default" not in data["text"]
