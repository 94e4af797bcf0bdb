"""WSGI entry for gunicorn: ``gunicorn 'server.wsgi:app'`` (settings from SHEETSYNC_… variables)."""

from . import create_app

app = create_app()
