"""The one error hierarchy of polyrl.

Every error a user can cause is a ``PolyrlError`` whose message names the file, field or
option at fault; the CLI prints it to stderr and exits non-zero without a traceback.

    PolyrlError
    ├── ConfigError          a config file or option is unknown, mistyped or out of range
    ├── RecordingError       a recording root, partition or file cannot be used
    │   ├── SchemaMismatch   a stored file's columns disagree with the stream's schema
    │   └── StorageError     an object store refused: credentials, bucket, connection
    ├── ParseError           a raw frame cannot be turned into events (adapters turn it
    │                        into a recorder.status row instead of raising)
    ├── CheckpointError      a checkpoint is missing, corrupt or incomplete
    └── FeatureSetMismatch   a checkpoint or cache was built for another feature set
"""

from __future__ import annotations


class PolyrlError(Exception):
    """Base of every error polyrl raises on purpose."""


class ConfigError(PolyrlError):
    """A config file, key or CLI option is wrong; the message names it."""


class RecordingError(PolyrlError):
    """A recording root, partition or file cannot be read or written; the message names it."""


class SchemaMismatch(RecordingError):
    """A stored file disagrees with its stream's schema; the message names stream and column."""


class StorageError(RecordingError):
    """An object store or URI cannot be used (a credential variable unset, no such bucket,
    a cut connection); the message names the variable, bucket or object."""


class ParseError(PolyrlError):
    """A raw frame could not be parsed; carries the channel and the raw text."""

    def __init__(self, message: str, *, channel: str = "", raw: str = "") -> None:
        super().__init__(message)
        self.channel = channel
        self.raw = raw


class CheckpointError(PolyrlError):
    """A checkpoint cannot be loaded; the message names the file or tensor."""


class FeatureSetMismatch(PolyrlError):
    """Something was built for a different feature set (name or version) than requested."""
