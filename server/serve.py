"""``sheetsync serve``: the HTTP service on this machine, in local mode by default.

Serves the ``.xlsx``/``.xlsm`` workbooks of a folder on 127.0.0.1 and prints the token callers
must present (``Authorization: Bearer <token>``). Settings not given on the command line come
from the ``SHEETSYNC_…`` environment variables (`server.config`). For many users use gunicorn:
``gunicorn -w 4 'server.wsgi:app'``.
"""

from __future__ import annotations

import sys

from werkzeug.serving import make_server

from . import create_app
from .config import from_env


def serve(host: str = "127.0.0.1", port: int = 8750, folder: str | None = None,
          token: str | None = None, out=sys.stdout) -> int:
    config = from_env()
    if folder:
        config["LOCAL_FOLDER"] = folder
    if token:
        config["LOCAL_TOKEN"] = token
    app = create_app(config)
    server = make_server(host, port, app, threaded=True)
    print(f"sheetsync serving on http://{host}:{server.server_port} ({app.config['MODE']} mode)", file=out)
    if app.config["MODE"] == "local":
        print(f"workbooks: {app.config['LOCAL_FOLDER']}", file=out)
        print(f"local token: {app.config['LOCAL_TOKEN']}", file=out)
        print(f"try: curl -H 'Authorization: Bearer {app.config['LOCAL_TOKEN']}' -H 'Content-Type: "
              f"application/json' -d '{{\"spreadsheet\": \"sheetsync-demo.xlsx\"}}' "
              f"http://{host}:{server.server_port}/v1/runs", file=out)
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        app.extensions["sheetsync"].runs.shutdown()
    return 0
