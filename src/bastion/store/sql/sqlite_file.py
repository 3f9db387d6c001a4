"""The SQLite database file: created private to its owner (it holds password and token hashes)."""

from __future__ import annotations

import logging
import os

from sqlalchemy.engine import make_url

log = logging.getLogger("bastion.store")


def private_sqlite_file(url: str) -> None:
    """Create the database file 0600 before SQLite does (its -wal and -shm files take the same
    mode); warn about an existing one others can read. It holds password and token hashes."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if os.stat(path).st_mode & 0o077:
            log.warning("database file %s is readable by other users; chmod 600 it (and its -wal, -shm)", path)
        return
    except OSError:
        return  # a directory that does not exist: SQLite reports it
    os.close(fd)
