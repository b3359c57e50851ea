"""The aria2_sync download API as a Flask app (the logic is in :mod:`examples.web_downloads`).

Run it against an embedded private aria2c (started on the first request, stopped at exit)::

    ARIA2_SYNC_DOWNLOAD_ROOT=/srv/downloads flask --app 'examples.flask_app:create_app()' run

or against your own daemon: also set ``ARIA2_SYNC_RPC_URL`` and ``ARIA2_SYNC_RPC_SECRET`` (or, for
several daemons, ``ARIA2_SYNC_DAEMONS``: their URLs, separated by spaces or commas).
From code::

    app = create_app({
        "ARIA2_SYNC_DOWNLOAD_ROOT": "/srv/downloads",        # required
        "ARIA2_SYNC_RPC_URL": "http://127.0.0.1:6800/jsonrpc",  # None: embedded daemon
        "ARIA2_SYNC_RPC_SECRET": "change-me",
        "ARIA2_SYNC_DAEMONS": None,        # or [(url, secret), ...]: a pool (instead of RPC_URL)
        "ARIA2_SYNC_STATE": None,          # state file for Aria2Client(state=...), if wanted
        "ARIA2_SYNC_MAX_ITEMS": 100,       # files per request
        "ARIA2_SYNC_CLIENT_OPTIONS": {},   # more Aria2Client keyword arguments
        "ARIA2_SYNC_URL_POLICY": None,     # which URLs may be fetched; None: public http(s) only
    })

Then::

    curl -X POST localhost:5000/downloads -H 'Content-Type: application/json' \\
         -d '{"items": [{"url": "https://example.com/a.zip", "name": "zips/a.zip"}]}'
    curl localhost:5000/downloads/<batch_id>
    curl -X POST localhost:5000/downloads/<batch_id>/retry
    curl -X DELETE localhost:5000/downloads/<batch_id>

Serve it from one process with threads (``flask run`` and ``waitress`` do): batches live in
that process's client (see the notes in :mod:`examples.web_downloads`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from examples import web_downloads

__all__ = ["create_app"]

_PREFIX = "ARIA2_SYNC_"
_EXTENSION = "aria2_sync"

downloads = Blueprint("downloads", __name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; the settings are checked here, so a bad one fails at start-up.

    ``config`` holds Flask config keys (``ARIA2_SYNC_*`` and any of Flask's own); without
    it, the ``ARIA2_SYNC_*`` environment variables are used. No aria2 client is created here:
    the first request creates the process's client.
    """
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 1 << 20  # a batch request is small; refuse huge bodies
    if config is None:
        config = {_PREFIX + key: value for key, value in web_downloads.config_from_environ().items()}
    app.config.update(config)
    settings = web_downloads.Settings.from_mapping(
        app.config.get_namespace(_PREFIX, lowercase=False, trim_namespace=True)
    )
    app.extensions[_EXTENSION] = settings
    app.register_blueprint(downloads)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _respond(operation: Any, *args: Any):
    """Run a shared operation with this app's settings and answer its reply as JSON."""
    settings = current_app.extensions[_EXTENSION]
    reply = web_downloads.call(lambda: operation(settings, *args))
    return jsonify(reply.body), reply.status


def _http_error(error: HTTPException):
    """Flask's own errors (unknown route, wrong method, body too large) as JSON too."""
    response = error.get_response()
    response.data = jsonify({"error": error.description or error.name}).get_data()
    response.content_type = "application/json"
    return response


@downloads.post("/downloads")
def create():
    return _respond(web_downloads.create_batch, request.get_data(), request.content_type)


@downloads.get("/downloads/<batch_id>")
def progress(batch_id: str):
    return _respond(web_downloads.batch_progress, batch_id)


@downloads.post("/downloads/<batch_id>/retry")
def retry(batch_id: str):
    return _respond(web_downloads.retry_batch, batch_id)


@downloads.delete("/downloads/<batch_id>")
def cancel(batch_id: str):
    return _respond(web_downloads.cancel_batch, batch_id)
