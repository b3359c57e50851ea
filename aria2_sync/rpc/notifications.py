"""aria2's push notifications over WebSocket, as a wake-up call for the monitor.

aria2 sends ``aria2.onDownloadStart/Pause/Stop/Complete/Error`` on its RPC port's WebSocket
(``ws://host:port/jsonrpc``) within milliseconds of the event. The payload is only a GID, and a
socket can drop, so notifications never carry state here: they only wake the monitor, whose
next tick reads the truth. Without the optional ``websocket-client`` package, or while the
socket is down, polling carries on alone; the socket reconnects with backoff.
"""

from __future__ import annotations

import importlib.util
import json
import socket as sockets
import ssl
import threading
import urllib.parse
from typing import Any, Callable

import requests.utils

from ..errors import redact_url
from ..logs import logger
from ..threads import ThreadFactory, daemon_thread

__all__ = ["NotificationListener", "websocket_available", "websocket_url"]


#: The notifications that mean "a download changed state".
EVENTS = frozenset(
    {
        "aria2.onDownloadStart",
        "aria2.onDownloadPause",
        "aria2.onDownloadStop",
        "aria2.onDownloadComplete",
        "aria2.onDownloadError",
        "aria2.onBtDownloadComplete",
    }
)

MAX_RECONNECT_PAUSE = 10.0


def websocket_available() -> bool:
    """Whether the optional ``websocket-client`` package is installed (nothing is imported)."""
    return importlib.util.find_spec("websocket") is not None


def websocket_url(rpc_url: str) -> str:
    """``http://host:port/jsonrpc`` -> ``ws://host:port/jsonrpc`` (https -> wss)."""
    parts = urllib.parse.urlsplit(rpc_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, parts.path or "/jsonrpc", "", ""))


class NotificationListener:
    """A daemon thread that listens to aria2's notifications and calls ``on_event(gid)``.

    ``on_event()`` (no GID) after a (re)connection: whatever happened meanwhile is unknown.
    ``thread_factory`` makes the thread (a client's runtime passes its own, to wait for it)."""

    def __init__(
        self,
        rpc_url: str,
        on_event: Callable[..., Any],
        read_timeout: float = 1.0,
        thread_factory: ThreadFactory = daemon_thread,
        ca_file: str | None = None,
    ) -> None:
        self.url = websocket_url(rpc_url)
        #: For a ``wss://`` URL: the CA file the daemon's certificate is checked against (None:
        #: the CAs the JSON-RPC calls trust, certifi's, read when the thread connects).
        self._ca_file = ca_file
        self._new_thread = thread_factory
        self._on_event = on_event
        self._read_timeout = read_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.events_seen = 0
        self._socket: Any = None

    def ensure_started(self) -> None:
        """Start the thread unless it runs (or ran): also when an interrupt (KeyboardInterrupt)
        kept the previous one from starting, which then left a thread object never started."""
        with self._lock:
            if (self._thread is None or self._thread.ident is None) and not self._stop.is_set():
                self._thread = self._new_thread("aria2_sync-notifications", self._run)
                self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop listening: wakes the reading thread at once and waits for it."""
        self._stop.set()
        with self._lock:
            thread, socket = self._thread, self._socket
        if socket is not None:
            try:
                socket.abort()  # wakes a thread blocked in recv()
            except Exception:
                pass
        # A thread never started (an interrupt in ensure_started) has nothing to wait for.
        if thread is not None and thread.ident is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        import websocket  # the optional dependency, imported only when used

        pause = 0.1
        announced_down = False
        while not self._stop.is_set():
            try:
                socket = self._connect(websocket)
            except Exception as error:
                if not announced_down:
                    logger.info(
                        "aria2 notifications unavailable at %s (%s); polling only until they are",
                        redact_url(self.url),
                        error,
                    )
                    announced_down = True
                self._stop.wait(pause)
                pause = min(MAX_RECONNECT_PAUSE, pause * 2)
                continue
            pause = 0.1
            announced_down = False
            with self._lock:
                self._socket = socket
            if self._stop.is_set():  # closed while connecting
                socket.close()
                return
            self.connected.set()
            logger.debug("listening to aria2 notifications at %s", redact_url(self.url))
            self._on_event()  # events before this moment were not heard: look once now
            try:
                self._listen(socket, websocket)
            finally:
                self.connected.clear()
                with self._lock:
                    self._socket = None
                try:
                    socket.close()
                except Exception:
                    pass
            self._on_event()  # the socket dropped: something may have happened meanwhile

    def _connect(self, websocket: Any) -> Any:
        """A WebSocket to the daemon, over a connection of our own making.

        As the JSON-RPC calls (whose session ignores the environment): no proxy of
        ``$http_proxy``/``$https_proxy``, and for ``wss://`` the CAs those calls trust (the
        client's ``rpc_ca_file``, else requests' bundle), never the system's store or
        ``$SSL_CERT_FILE``. websocket-client, left to connect, would read all of them.
        """
        parts = urllib.parse.urlsplit(self.url)
        secure = parts.scheme == "wss"
        host, port = parts.hostname or "localhost", parts.port or (443 if secure else 80)
        connection = sockets.create_connection((host, port), self._read_timeout)
        try:
            if secure:
                trusted = self._ca_file or requests.utils.DEFAULT_CA_BUNDLE_PATH
                context = ssl.create_default_context(cafile=trusted)
                connection = context.wrap_socket(connection, server_hostname=host)
            return websocket.create_connection(self.url, timeout=self._read_timeout, socket=connection)
        except BaseException:
            connection.close()
            raise

    def _listen(self, socket: Any, websocket: Any) -> None:
        while not self._stop.is_set():
            try:
                message = socket.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:
                return
            gid = self._event_gid(message)
            if gid is not None:
                self.events_seen += 1
                self._on_event(gid or None)

    @staticmethod
    def _event_gid(message: Any) -> str | None:
        """The GID a download event is about ("" if it names none); None for anything else."""
        try:
            data = json.loads(message)
        except (TypeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("method") not in EVENTS:
            return None
        params = data.get("params") or [{}]
        first = params[0] if isinstance(params, list) and params else {}
        return str(first.get("gid", "")) if isinstance(first, dict) else ""
