"""Who holds the RPC port: a free one to start on, and proof that its listener is our aria2c.

The first call of a private daemon carries its RPC secret, so it is sent only once the socket
listening on 127.0.0.1:<port> is proven to be aria2c's own: when another process holds the IPv4
port, aria2c stays up on ``[::1]`` only, and the process on 127.0.0.1 would otherwise get the
secret. On Linux, /proc tells who holds a listening socket: ``/proc/net/tcp{,6}`` lists the
listening sockets by inode, and ``/proc/<pid>/fd`` shows the socket inodes a process holds. Where
/proc does not tell (another system, a sandbox), :func:`can_prove_listener_owner` says so and the
daemon makes aria2c refuse to serve on ``[::1]`` alone instead.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from ..logs import logger

__all__ = ["can_prove_listener_owner", "free_port", "port_in_use", "rpc_listener_owner"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller must cope with losing a race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """True if some socket listens on ``host:port`` now (a quick refusal before launching).

    SO_REUSEADDR so that connections of an earlier aria2c in TIME_WAIT do not count (on Linux
    a listening socket still does). Not on Windows, where SO_REUSEADDR means "take it over".
    """
    if os.name == "nt":
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            return error.errno == errno.EADDRINUSE
    return False


_proof_works: bool | None = None


def can_prove_listener_owner() -> bool:
    """True where /proc tells who holds a listening socket (Linux), checked once per process
    on a socket of our own: a /proc that exists but does not tell (a sandbox) must not make
    every start wait for a proof that cannot come."""
    global _proof_works
    if _proof_works is None:
        _proof_works = _proof_self_test()
    return _proof_works


def _proof_self_test() -> bool:
    if not (os.path.exists("/proc/net/tcp") and os.path.isdir("/proc/self/fd")):
        return False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.listen(1)
            works = rpc_listener_owner(os.getpid(), sock.getsockname()[1]) == "ours"
    except (OSError, ValueError):
        works = False
    if not works:
        logger.debug("/proc does not show who listens on a port; aria2c runs with --disable-ipv6")
    return works


def _proc_hex(address: str, family: int) -> str:
    """An address as /proc/net/tcp{,6} prints it: each 32-bit word in host byte order."""
    packed = socket.inet_pton(family, address)
    return "".join(f"{word:08X}" for word in struct.unpack(f"={len(packed) // 4}I", packed))


def _listening_inodes(port: int) -> tuple[set[int], set[int]]:
    """Inodes of TCP sockets listening on ``port``: (on 127.0.0.1 exactly, on any address that
    also takes connections to 127.0.0.1: 0.0.0.0, ::, ::ffff:127.0.0.1)."""
    loopback = _proc_hex("127.0.0.1", socket.AF_INET)
    covering = {
        _proc_hex("0.0.0.0", socket.AF_INET),
        _proc_hex("::", socket.AF_INET6),
        _proc_hex("::ffff:127.0.0.1", socket.AF_INET6),
    }
    exact: set[int] = set()
    other: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as handle:
                next(handle, None)
                for line in handle:
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                        continue
                    address, _, hex_port = fields[1].partition(":")
                    if int(hex_port, 16) != port:
                        continue
                    if address == loopback:
                        exact.add(int(fields[9]))
                    elif address in covering:
                        other.add(int(fields[9]))
        except OSError:
            continue
    return exact, other


def _socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets open in ``pid`` and its descendants (an aria2c started through
    a launcher holds its sockets in a child process)."""
    inodes: set[int] = set()
    pending: list[int] = [pid]
    seen: set[int] = set()
    while pending and len(seen) < 64:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        fd_dir = f"/proc/{current}/fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            try:
                target = os.readlink(os.path.join(fd_dir, name))
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
        pending.extend(_children(current))
    return inodes


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                out.extend(int(child) for child in handle.read().split())
        except (OSError, ValueError):
            continue
    return out


def rpc_listener_owner(pid: int, port: int) -> str:
    """``"ours"`` if process ``pid`` (or a descendant) holds the socket listening on
    127.0.0.1:``port``, ``"foreign"`` if another process listens where 127.0.0.1:``port``
    connections would go (or would keep aria2c from binding), ``"none"`` if nobody listens yet.

    The tables are read before the process's descriptors: a socket is a descriptor before it
    listens, so a listener of the child's never looks foreign.
    """
    exact, other = _listening_inodes(port)
    if not exact and not other:
        return "none"
    mine = _socket_inodes(pid)
    if (exact | other) - mine:
        return "foreign"
    return "ours" if exact else "none"
