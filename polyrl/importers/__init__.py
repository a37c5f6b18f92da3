"""Importers: public archives -> the same streams the recorder writes, marked as imported.

Converters are pure (an archive's rows in, Arrow tables of polyrl's stream schemas out);
the I/O that fetches archive objects (local folders, HTTP with range reads, checksums,
retries) sits beside them, and :mod:`polyrl.importers.store` writes what they produce into a
recording root with deterministic ``seq``, atomically and idempotently. Imported rows carry
provenance (``recorder.status`` rows of kind ``import``) and receive times no recorder in
one place could have beaten; what an archive lacks is a gap, never invented.

Floor: above ``recording/`` and ``sources/`` (it writes through the store's file rules and
reuses the sources' Gamma parsing); nothing in the core imports it.
"""
