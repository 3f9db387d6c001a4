"""The rings hold: import-linter's contracts (pyproject.toml) pass on the source tree.

ruff and mypy --strict run as their own CI steps (scripts/check), not inside the suite."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_imports_point_inward() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]



def test_the_edge_uses_no_private_sdk_attribute() -> None:
    """Issue 10: web/ and cli/ build on the SDK's public API (sessions are Bastion's own, see
    web/session_manager.py), so an SDK upgrade is a version bump there."""
    private = re.compile(r"noqa: SLF001|getattr\([^)]*[\"']_[a-z]|(?<!self)\._connection\b|\._server_instances\b")
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("web", "cli")
        for path in sorted((ROOT / "src" / "bastion" / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if private.search(line)
    ]
    assert not found, "\n".join(found)
