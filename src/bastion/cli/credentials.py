"""The CLI's stored session tokens (from `bastion login`), one per gateway URL, in a 0600 file.

Used when BASTION_TOKEN / --token is not given. Keyed by URL so a token never goes to another gateway.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

FILE_NAME = "credentials.json"


def credentials_path() -> Path:
    return Path(click.get_app_dir("bastion")) / FILE_NAME


def _key(url: str) -> str:
    return url.rstrip("/")


def _read() -> dict[str, str]:
    try:
        data = json.loads(credentials_path().read_text())
    except (OSError, ValueError):
        return {}
    sessions = data.get("sessions") if isinstance(data, dict) else None
    return {k: v for k, v in sessions.items() if isinstance(v, str)} if isinstance(sessions, dict) else {}


def _write(sessions: dict[str, str]) -> None:
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # Created 0600 from the start (never world-readable, not even briefly), and fixed if it existed.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"sessions": sessions}, out, indent=2)


def stored_token(url: str) -> str | None:
    return _read().get(_key(url))


def store_token(url: str, token: str) -> Path:
    sessions = _read()
    sessions[_key(url)] = token
    _write(sessions)
    return credentials_path()


def drop_token(url: str) -> bool:
    sessions = _read()
    if sessions.pop(_key(url), None) is None:
        return False
    _write(sessions)
    return True
