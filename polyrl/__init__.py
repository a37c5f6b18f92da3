"""polyrl: record, replay, train and paper-trade on Polymarket's 15-minute crypto Up/Down markets.

Paper trading only: nothing in this package ever sends an order to a venue.

How data flows
--------------
``sources`` adapters (WebSocket and REST, one per venue channel) hand each raw frame,
stamped with its ``recv_ns``, to a ``FrameSink`` (``sources.sink``); pure parsers turn a
frame into ``Event`` rows. ``recording`` keeps them: the ``Recorder`` writes every frame to
a write-ahead log, then Parquet (one directory per stream and hour), and the
``RecordingReader`` merges the streams back in ``(recv_ns, seq)`` order. ``features`` turns
merged batches into one observation per decision tick (``FeatureEngine``; ``DayCache`` keeps
a day of them). The ``engine`` runs clock + observations -> ``Policy`` -> ``broker``
(``PaperBroker``: fills, fees, settlement) -> ``runlog`` (the files of ``runs/<run>/``).
``rl`` trains PPO on the same day caches in a vectorised ``ReplayEnv``::

    sources -> recording -> features -> engine + broker -> runs/<run>/
                                     -> rl (ReplayEnv, PPO)

Two composition roots put the parts together and differ only in clock and event source:
``replay`` (a recording read back, on a ``ReplayClock``) and ``live`` (the adapters feeding
a ``Recorder`` and the Engine at once, on the ``LiveClock``). ``rl.train`` composes a
training run, ``parity`` checks that a live run and its replay agree. Around them:
``importers`` write public history as recordings, ``sim`` makes synthetic markets and
serves them from loopback venue servers (``sim.serve``), ``analysis`` reads runs for
notebooks, ``dashboard`` shows a run, and ``cli`` is the thin command line over all of it.

Floors: who may import whom
---------------------------
A module imports only parts on a lower floor (and modules of its own part), and nothing
imports in a circle. A name is a module or package below ``polyrl``; a dotted name places
that module apart from its package (``rl.train`` stands above the rest of ``rl``);
``polyrl`` is this file. Imports inside functions and under ``TYPE_CHECKING`` count too.
``tests/unit/test_layering.py`` reads this table and holds the code to it, so a new module
needs a floor here first::

    floor  parts                                   what lives there
     12    __main__                                ``python -m polyrl``
     11    cli                                     typer commands; nothing else imports them
     10    parity, analysis.examples, sweep        live-vs-replay check; sample runs; Tune sweeps
      9    sections                                registers every config section
      8    rl.train, features.bench                a training run; the feature benchmark
      8    rl.gym                                  the replay env for Gymnasium algorithms
      8    features.cache_bench                    cold day-cache builds, one by one and parallel
      7    policies.ppo, replay, live, importers.bench  composition roots; import speed
      7    policies.plugin                         ``--strategy module:Name``: a Policy of yours
      7    recording.s3bench                       reading a day from S3 vs from local disk
      6    engine, rl, policies.baselines, analysis, dashboard, testing, recording.bench
      5    features, sim, importers                observations; synthetic venues; history
      4    recording                               WAL, Parquet store, reader, provenance
      3    sources, broker, policies               adapters and parsers; paper broker; Policy
      2    clock, config, runlog                   clocks; TOML loader; run directory files
      2    storage                                 paths and URIs (s3://, gs://) as filesystems
      1    polyrl, events, errors                  Event and time helpers; the error tree
      1    envvars                                 environment variables set for a block

``config`` reads TOML into each part's own config dataclass without importing the parts:
``sections`` registers them, and whatever builds or loads a Config imports it (the CLI,
parity, the examples; ``from polyrl.sections import Config, load_config`` is the entry point
for tests and notebooks). ``replay`` and ``live`` take a built Config. A contract
lives with the side that defines it: ``sources.sink`` (what an adapter writes to),
``recording.columns`` (the stream columns the store hands out), ``sim.serve.config``.
"""

__version__ = "0.1.0"
