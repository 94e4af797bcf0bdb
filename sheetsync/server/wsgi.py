"""WSGI entry for gunicorn: ``gunicorn 'sheetsync.server.wsgi:app'`` (settings from SHEETSYNC_… variables)."""

from . import create_app

app = create_app()
