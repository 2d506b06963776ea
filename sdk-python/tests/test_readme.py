"""The quickstarts of sdk-python/README.md and the repository README run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, Server


def python_block(readme: Path, heading: str) -> str:
    text = readme.read_text()
    section = text.split(heading, 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, f"no python block after {heading!r} in {readme}"
    return match.group(1)


@pytest.mark.parametrize(
    ("readme", "heading"),
    [(REPO / "sdk-python" / "README.md", "## Quickstart"), (REPO / "README.md", "## Python")],
)
def test_quickstart_runs_as_written(server: Server, readme: Path, heading: str, tmp_path: Path) -> None:
    script = tmp_path / "quickstart.py"
    script.write_text(python_block(readme, heading))
    environment = {
        **os.environ,
        "EARSHOT_API_KEY": server.api_key,
        "EARSHOT_PROJECT_ID": server.project_id,
        "EARSHOT_BASE_URL": server.url,
    }
    finished = subprocess.run([sys.executable, str(script)], env=environment, capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "accepted" in finished.stdout
