"""`bastion serve --config FILE`: bring the configuration to a file on start, on SIGHUP and when the
file changes (GitOps). Secret references are resolved from this process's environment."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import anyio

from bastion.app.root import Bastion
from bastion.core.config_doc import Action, ConfigDoc, read_document, resolve_references
from bastion.core.errors import BadRequest, BastionError

log = logging.getLogger("bastion.config")


def read_config_file(path: str) -> ConfigDoc:
    """The file's document with its secret references resolved; BadRequest saying what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BadRequest(f"cannot read configuration file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"configuration file {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        return resolve_references(read_document(text), os.environ)
    except BadRequest as exc:
        raise BadRequest(f"{path}: {exc.detail}") from None


async def apply_config_file(bastion: Bastion, path: str, *, prune: bool) -> list[Action]:
    assert bastion.config is not None
    doc = read_config_file(path)
    actions = await bastion.config.apply(doc, dry_run=False, prune=prune, actor=f"configuration file {path}")
    if actions:
        log.info("configuration file %s applied: %s", path, "; ".join(a.line() for a in actions))
    else:
        log.info("configuration file %s: nothing to change", path)
    return actions


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None


async def watch_config_file(bastion: Bastion, path: str, *, prune: bool, interval: float) -> None:
    """Apply the file again on SIGHUP and whenever its modification time changes. A file that is
    wrong is logged and changes nothing; the gateway keeps running on what it has."""
    changed = anyio.Event()
    trigger: list[anyio.Event] = [changed]

    async def on_sighup() -> None:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                log.info("SIGHUP: reloading configuration file %s", path)
                trigger[0].set()

    async def poll() -> None:
        seen = _mtime(path)
        while True:
            await anyio.sleep(interval)
            now = _mtime(path)
            if now is not None and now != seen:
                seen = now
                log.info("configuration file %s changed: reloading", path)
                trigger[0].set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(on_sighup)
        tg.start_soon(poll)
        while True:
            await trigger[0].wait()
            trigger[0] = anyio.Event()
            try:
                await apply_config_file(bastion, path, prune=prune)
            except BastionError as exc:
                log.error("configuration file %s not applied: %s", path, exc.detail)
