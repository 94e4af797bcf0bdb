"""Every server setting comes through its config: the scheduler's (SCHEDULER, REDIS_URL) and
the serving bounds too. An app built from a config ignores the environment; the environment is
read once, by `from_env` (``sheetsync serve``, ``sheetsync.server.wsgi``)."""

from __future__ import annotations

import pytest

from sheetsync.server import create_app
from sheetsync.server.config import ConfigError, complete, from_env


def test_the_environment_does_not_reach_an_app_built_from_a_config(tmp_path, monkeypatch):
    monkeypatch.setenv("SHEETSYNC_SCHEDULER", "embedded")
    monkeypatch.setenv("SHEETSYNC_REDIS_URL", "redis://127.0.0.1:1/0")
    app = create_app({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), "LOCAL_TOKEN": "t" * 24,
                      "RUN_STORE": str(tmp_path / "store" / "runs.sqlite3")})
    assert "sheetsync.scheduler" not in app.extensions  # no trigger thread started behind its back
    assert app.config["SCHEDULER"] is None and app.config["REDIS_URL"] is None
    app.extensions["sheetsync"].runs.shutdown()


def test_from_env_reads_every_setting(monkeypatch):
    env = {"SHEETSYNC_SCHEDULER": "embedded", "SHEETSYNC_REDIS_URL": "redis://r:6379/0",
           "SHEETSYNC_SERVE_THREADS": "3", "SHEETSYNC_SERVE_CONNECTIONS": "50", "SHEETSYNC_SERVE_TIMEOUT": "5"}
    config = from_env(env)
    assert config == {"SCHEDULER": "embedded", "REDIS_URL": "redis://r:6379/0", "SERVE_THREADS": 3,
                      "SERVE_CONNECTIONS": 50, "SERVE_TIMEOUT": 5.0}


@pytest.mark.parametrize("setting, value, says", [
    ("SERVE_THREADS", 0, "SHEETSYNC_SERVE_THREADS"),
    ("SERVE_TIMEOUT", 0.1, "SHEETSYNC_SERVE_TIMEOUT"),
    ("SCHEDULER", "sometimes", "SHEETSYNC_SCHEDULER"),
])
def test_bad_settings_name_their_variable(tmp_path, setting, value, says):
    with pytest.raises(ConfigError, match=says):
        complete({"MODE": "local", "LOCAL_FOLDER": str(tmp_path), setting: value})


def test_the_scheduler_reads_its_store_and_redis_url_in_one_place(tmp_path):
    from sheetsync.schedule.config import from_env as schedule_env

    env = {"XDG_STATE_HOME": str(tmp_path), "SHEETSYNC_REDIS_URL": "redis://r:6379/1"}
    assert schedule_env(env) == {"STORE": str(tmp_path / "sheetsync" / "schedules.sqlite3"),
                                 "REDIS_URL": "redis://r:6379/1"}
    assert schedule_env({"SHEETSYNC_SCHEDULE_STORE": "/x/s.sqlite3"})["STORE"] == "/x/s.sqlite3"
    assert from_env(env)["REDIS_URL"] == "redis://r:6379/1"  # the server's config names the same variable


def test_the_service_is_packaged_inside_sheetsync():
    """`pip install .` must not put a module named `server` into a user's site-packages."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    packaging = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert packaging["include"] == ["sheetsync*"]
    assert not (root / "server" / "__init__.py").exists()
