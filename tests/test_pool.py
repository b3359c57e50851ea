"""A pool of aria2 daemons behind one client (issue 16), against real aria2c "hosts".

Each host is its own aria2c on its own port of 127.0.0.1 with its own download directory and
session file (:mod:`tests.support.daemons`); files come from the local fault server. What a
daemon holds is read from that daemon's own RPC, past the client under test.
"""

from __future__ import annotations

import os
import secrets

import pytest

from aria2_sync.errors import Aria2ConnectionError
from tests.conftest import wait_for

KiB = 1 << 10


def test_hosts_are_separate_daemons_that_can_be_frozen_killed_and_restarted_with_their_session(
    aria2_hosts, fault_server
):
    """The fixture itself: a frozen host accepts connections and answers nothing; a killed one
    refuses connections; a restarted one is on its port again with its session restored."""
    first, second = aria2_hosts(2)
    assert first.port != second.port and first.pid != second.pid and first.secret != second.secret
    assert first.download_dir != second.download_dir and first.state_dir != second.state_dir
    gid = secrets.token_hex(8)
    url = fault_server.add_file("s.bin", size=4 * KiB)
    assert first.call("aria2.addUri", [[url], {"gid": gid, "pause": "true"}]) == gid

    first.freeze()
    assert first.accepts_connections()
    with pytest.raises(Aria2ConnectionError):
        first.call("aria2.getVersion", timeout=0.5)
    assert second.call("aria2.getVersion")["version"]
    first.thaw()
    assert first.call("aria2.getVersion")["version"]

    session = first.daemon.session_file
    wait_for(lambda: gid in open(session).read(), timeout=10, what="the session file to name the download")
    port = first.port
    first.kill()
    assert not first.accepts_connections()
    first.restart()
    assert first.port == port and first.running
    assert first.status() == {gid: "paused"}
    assert os.path.realpath(first.daemon.download_dir) == os.path.realpath(first.download_dir)

    second.freeze()  # left frozen: the fixture must thaw and stop it, by PID, within its bounds
