"""Settings of the example project: only what the JSON download API needs (no database).

Run it (an embedded private aria2c starts on the first request and stops at exit)::

    ARIA2_SYNC_DOWNLOAD_ROOT=/srv/downloads DJANGO_SECRET_KEY=... \\
        python -m django runserver --settings examples.django_project.settings

or against your own daemon: also set ``ARIA2_SYNC_RPC_URL`` and ``ARIA2_SYNC_RPC_SECRET``.
The API (same as the Flask example's; the logic is in :mod:`examples.web_downloads`)::

    POST   /downloads                  {"urls": [...]} or {"items": [{"url", "name"}]}
    GET    /downloads/<batch_id>
    POST   /downloads/<batch_id>/retry
    DELETE /downloads/<batch_id>

Serve it from one process with threads (``runserver`` does; with gunicorn use ``--workers 1
--threads N``): batches live in that process's client.
"""

import os

from examples.web_downloads import config_from_environ

# A development key only: set DJANGO_SECRET_KEY anywhere else. (The API uses no sessions or
# signing, but Django requires the setting.)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "dev-only-not-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")

INSTALLED_APPS = ["examples.django_project.downloads"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",  # the API views are exempt: see downloads.views
]
ROOT_URLCONF = "examples.django_project.urls"
DATABASES = {}
USE_TZ = True

# The download API: DOWNLOAD_ROOT (required), RPC_URL / RPC_SECRET (None: an embedded private
# aria2c), STATE (a state file for Aria2Client(state=...)), MAX_ITEMS (files per request),
# CLIENT_OPTIONS (more Aria2Client keyword arguments), URL_POLICY (which URLs the server may
# fetch; default: web_downloads.public_http_only, public http(s) addresses only, against
# server-side request forgery). Environment: ARIA2_SYNC_<KEY> (not for CLIENT_OPTIONS/URL_POLICY).
ARIA2_SYNC = config_from_environ(DOWNLOAD_ROOT="downloads")  # relative: to the working directory
