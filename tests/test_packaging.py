"""The wheel ships the canned queries (sql/) inside the package and both packages."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_sql_and_packages(tmp_path):
    pytest.importorskip("hatchling")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    wheel = next(tmp_path.glob("prefcurate-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for sql in sorted((ROOT / "sql").glob("*.sql")):
        assert f"prefcurate/sql/{sql.name}" in names
    assert "prefcurate/cli/__init__.py" in names
    assert any(n.startswith("trainers/") for n in names)
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "prefcurate = prefcurate.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
