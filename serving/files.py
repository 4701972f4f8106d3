"""Atomic file writes for everything serving keeps under the runtime home, and who and when
the file-based working stores (campaigns, trigger cases) record an action as.

A crash mid-write must leave the previous file, never half a file: write a temporary sibling,
fsync it, then `os.replace` it into place.
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import os
import tempfile
from pathlib import Path

PUBLIC_MODE = 0o644


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def default_actor() -> str:
    """Who is acting: `RISKMATRIX_ACTOR` if set (service accounts), else the OS user."""
    actor = os.environ.get("RISKMATRIX_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes, mode: int = PUBLIC_MODE) -> str:
    """Write `data` to `path` via a temporary sibling and `os.replace`; returns its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return sha256_bytes(data)
