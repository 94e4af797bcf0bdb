"""``sheetsync serve``: the HTTP service on this machine, in local mode by default.

Serves the ``.xlsx``/``.xlsm`` workbooks of a folder on 127.0.0.1 and prints the token callers
must present (``Authorization: Bearer <token>``). Settings not given on the command line come
from the ``SHEETSYNC_…`` environment variables (`sheetsync.server.config`).

It runs on waitress, a production WSGI server (pure Python, any OS): one thread reads and
writes every socket and hands only complete requests to a fixed pool of SERVE_THREADS, so slow
or idle clients hold no thread; at most SERVE_CONNECTIONS connections are open (the rest wait in
the listen backlog) and one idle or half-sent for SERVE_TIMEOUT seconds is closed. For several
processes: ``gunicorn -w 4 'sheetsync.server.wsgi:app'``.
"""

from __future__ import annotations

import sys

from . import create_app
from .config import from_env


def make_server(app, host: str, port: int):
    """A waitress server for `app` with the bounds of its config (port 0: any free port)."""
    from waitress.server import create_server

    timeout = float(app.config["SERVE_TIMEOUT"])
    return create_server(app, host=host, port=port, threads=int(app.config["SERVE_THREADS"]),
                         connection_limit=int(app.config["SERVE_CONNECTIONS"]),
                         channel_timeout=timeout, cleanup_interval=max(1, int(timeout // 2)),
                         max_request_body_size=int(app.config["MAX_CONTENT_LENGTH"]),
                         max_request_header_size=16 * 1024, expose_tracebacks=False, ident="sheetsync")


def serve(host: str = "127.0.0.1", port: int = 8750, folder: str | None = None,
          token: str | None = None, out=sys.stdout) -> int:
    config = from_env()
    if folder:
        config["LOCAL_FOLDER"] = folder
    if token:
        config["LOCAL_TOKEN"] = token
    app = create_app(config)
    server = make_server(app, host, port)
    port = server.effective_port
    print(f"sheetsync serving on http://{host}:{port} ({app.config['MODE']} mode; "
          f"{app.config['SERVE_THREADS']} threads, at most {app.config['SERVE_CONNECTIONS']} connections)", file=out)
    if app.config["MODE"] == "local":
        print(f"workbooks: {app.config['LOCAL_FOLDER']}", file=out)
        print(f"local token: {app.config['LOCAL_TOKEN']}", file=out)
        print(f"try: curl -H 'Authorization: Bearer {app.config['LOCAL_TOKEN']}' -H 'Content-Type: "
              f"application/json' -d '{{\"spreadsheet\": \"sheetsync-demo.xlsx\"}}' "
              f"http://{host}:{port}/v1/runs", file=out)
    out.flush()
    try:
        server.run()
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (see sheetsync.__main__)
        pass
    finally:
        server.close()
        app.extensions["sheetsync"].runs.shutdown()
    return 0
