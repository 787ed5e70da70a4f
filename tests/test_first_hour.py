"""What a new operator runs first works as README says, whatever else the machine has."""

import json
import os
import subprocess

import pytest

from tests.servers import ROOT
from tests.test_stack import installed_venv_view

pytestmark = pytest.mark.process


def test_bin_dev_flask_uses_the_projects_virtualenv_whatever_is_on_path(tmp_path, database_url):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    impostor = elsewhere / "flask"
    impostor.write_text("#!/bin/sh\necho 'another flask' >&2\nexit 1\n")
    impostor.chmod(0o755)
    environment = {
        **os.environ,
        "PATH": f"{elsewhere}:{os.environ['PATH']}",
        "VENV": str(installed_venv_view(tmp_path)),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "first-hour",
    }
    finished = subprocess.run(
        [str(ROOT / "bin" / "dev"), "flask", "db-info", "--json"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=tmp_path,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads(finished.stdout)["health"]["database"]["connected"] is True
