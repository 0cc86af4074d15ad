"""A clone in any folder works: nothing tracked names this checkout's location."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCAL = re.compile(r"^\s*(-e\s|--editable|file:|\.{0,2}/)|\s@\s*(file:|/|\.)")


def test_lock_lists_only_pinned_registry_packages() -> None:
    lines = [ln.strip() for ln in (ROOT / "requirements.lock").read_text().splitlines()]
    entries = [ln for ln in lines if ln and not ln.startswith("#")]
    assert entries, "requirements.lock is empty"
    for ln in entries:
        assert not LOCAL.search(ln), f"requirements.lock has a local or editable entry: {ln}"
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[a-z0-9,_-]+\])?==[A-Za-z0-9.+!_-]+", ln), (
            f"requirements.lock: not a pinned registry package: {ln}"
        )


@pytest.mark.parametrize(
    "line", ["-e /home/someone/checkout", "mlinfn-compress @ file:///home/someone/checkout", "file:/tmp/x.whl", "./pkg"]
)
def test_the_lock_check_catches_local_entries(line: str) -> None:
    assert LOCAL.search(line)


def test_no_tracked_file_names_this_checkout() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    here = str(ROOT).encode()
    offenders = []
    for name in files.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        if here in data:
            offenders.append(name)
    assert not offenders, f"tracked files contain the checkout's path {ROOT}: {offenders}"
