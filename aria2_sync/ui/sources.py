"""What ``aria2-sync get`` makes of each SOURCE on its command line: its kind, a metalink at a
URL fetched here (so that every file it describes is a download the command watches), and the
adds of them all, in order, with nothing left running when one of them is refused.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

from .. import Aria2Client, DownloadFuture
from ..errors import Aria2Error, Aria2InputError, redact_text, redact_url
from ..logs import logger

__all__ = ["MAX_METALINK_BYTES", "add_all", "fetch_metalink", "kind_of"]


def kind_of(source: str) -> str:
    """What ``aria2-sync get`` makes of one input: ``magnet``, ``torrent`` (a .torrent file or
    URL), ``metalink`` (a local .meta4/.metalink), ``metalink-url``, or ``url``."""
    lowered = source.lower().split("?", 1)[0]
    if source.startswith("magnet:?"):
        return "magnet"
    if lowered.endswith(".torrent"):
        return "torrent"
    if lowered.endswith((".meta4", ".metalink")):
        return "metalink-url" if "://" in lowered else "metalink"
    return "url"


#: The most of a metalink document ``aria2-sync get`` reads from a URL (they are a few KiB).
MAX_METALINK_BYTES = 4 * 1024 * 1024


def fetch_metalink(url: str) -> bytes:
    """The metalink document at ``url``, fetched here rather than by aria2: aria2 would follow
    it as one download per file with no way to watch all of them under the client's handles.

    Raises :class:`Aria2InputError` for a URL that is not http(s), and :class:`Aria2Error` when
    it cannot be fetched or is larger than :data:`MAX_METALINK_BYTES` (credentials masked)."""
    import requests  # (only a metalink URL needs it here)

    if not url.lower().startswith(("http://", "https://")):
        raise Aria2InputError(f"a metalink URL must be http(s): {redact_url(url)}")
    try:
        with requests.get(url, timeout=30, stream=True) as response:
            response.raise_for_status()
            document = response.raw.read(MAX_METALINK_BYTES + 1, decode_content=True)
    except requests.RequestException as error:  # (exit 1, like a download that failed)
        reason = redact_text(str(error), _credentials(url))  # (requests quotes the path and query)
        raise Aria2Error(f"cannot fetch the metalink {redact_url(url)}: {reason}") from None
    if len(document) > MAX_METALINK_BYTES:
        raise Aria2Error(f"the metalink at {redact_url(url)} is larger than {MAX_METALINK_BYTES} bytes")
    return bytes(document)


def add_all(
    client: Aria2Client,
    items: list[tuple[str, str | None, str | None]],
    options: dict[str, Any],
    directory: str,
    extra: dict[str, str],
) -> list[DownloadFuture]:
    """Add every input, in order: plain URLs as one batch; magnets and torrents each as one
    download under one handle; a metalink (a file, or fetched from its URL here) as one batch of
    a download per file it describes, so that every file is watched.

    Returns one future per item of ``items``, in order; a metalink of several files gives
    several, so its item is replaced in ``items`` (in place) by one item per file, shown as
    ``<metalink> (<file name>)``, to keep ``items`` and the futures in step."""
    kinds = [kind_of(url) for url, _, _ in items]
    if any(path for (_, path, _), kind in zip(items, kinds) if kind != "url"):
        raise Aria2InputError(
            "-o NAME is for one plain URL: magnets, torrents and metalinks name their files"
        )
    if any(checksum for (_, _, checksum), kind in zip(items, kinds) if kind != "url"):
        raise Aria2InputError(
            "--checksum is for one plain URL: torrents verify their pieces, metalinks carry their hashes"
        )
    # Fetched before anything is added: a metalink that cannot be had leaves nothing behind.
    fetched = {
        n: fetch_metalink(item[0])
        for n, (item, kind) in enumerate(zip(items, kinds))
        if kind == "metalink-url"
    }
    plain = [item for item, kind in zip(items, kinds) if kind == "url"]
    batch: list[DownloadFuture] = []
    futures: list[DownloadFuture] = []
    try:
        if plain:
            batch = client.batch_futures(client.add_batch_downloads(plain, options=options))
        shown = _add_each(client, items, kinds, fetched, iter(batch), futures, directory, extra)
    except Exception:
        # A source refused half-way (a bad magnet, an unreadable .torrent): what was added for
        # the sources before it is removed again, so that a failed command leaves nothing running.
        for future in [*batch, *futures]:
            try:
                client.cancel_download(future.gid)  # (now: the client closes right after)
            except Aria2Error as error:
                logger.warning("could not remove download %s again: %s", future.gid, error)
        raise
    items[:] = shown
    return futures


def _add_each(
    client: Aria2Client,
    items: list[tuple[str, str | None, str | None]],
    kinds: list[str],
    fetched: dict[int, bytes],
    queue: Iterator[DownloadFuture],
    futures: list[DownloadFuture],
    directory: str,
    extra: dict[str, str],
) -> list[tuple[str, str | None, str | None]]:
    """:func:`add_all`'s loop: appends each source's futures to ``futures`` (plain URLs' from
    ``queue``, their batch) and returns what to show for each future, in order."""
    shown: list[tuple[str, str | None, str | None]] = []
    for n, (item, kind) in enumerate(zip(items, kinds)):
        url = item[0]
        if kind in ("metalink", "metalink-url"):
            document = fetched.get(n, url)
            files = client.batch_futures(client.add_metalink_batch(document, directory, options=extra))
            for future in files:
                info = client.get_retry_info(future.gid)
                name = info["options"].get("out") if info is not None else None
                shown.append((f"{url} ({name})" if name else url, None, None))
            futures.extend(files)
            continue
        shown.append(item)
        if kind == "url":
            futures.append(next(queue))
        elif kind == "magnet":
            futures.append(client.submit_magnet(url, directory, options=extra))
        else:
            futures.append(client.submit_torrent(url, directory, options=extra))
    return shown


def _credentials(url: str) -> list[str]:
    """The password and every query value of ``url``: what a message about it must not show."""
    parts = urllib.parse.urlsplit(url)
    values = [value for _, value in urllib.parse.parse_qsl(parts.query) if value]
    return [parts.password, *values] if parts.password else values
