"""What ``aria2-sync get`` makes of each SOURCE on its command line: its kind, and a metalink
at a URL fetched here (so that every file it describes is a download the command watches).
"""

from __future__ import annotations

from ..errors import Aria2Error, Aria2InputError, redact_text

__all__ = ["MAX_METALINK_BYTES", "fetch_metalink", "kind_of"]


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
    it as one download per file with no way to watch all of them under the client's handles."""
    import requests  # (only a metalink URL needs it here)

    if not url.lower().startswith(("http://", "https://")):
        raise Aria2InputError(f"a metalink URL must be http(s): {redact_text(url)}")
    try:
        with requests.get(url, timeout=30, stream=True) as response:
            response.raise_for_status()
            document = response.raw.read(MAX_METALINK_BYTES + 1, decode_content=True)
    except requests.RequestException as error:  # (exit 1, like a download that failed)
        raise Aria2Error(f"cannot fetch the metalink {redact_text(url)}: {redact_text(str(error))}") from None
    if len(document) > MAX_METALINK_BYTES:
        raise Aria2Error(f"the metalink at {redact_text(url)} is larger than {MAX_METALINK_BYTES} bytes")
    return bytes(document)
