"""Option values and URLs that would smuggle something past aria2 (issue 10, item 8).

A header value with a line break becomes two headers, ``out='../x'`` writes outside ``dir``, a
misspelt option is ignored by aria2 without a word, and white space or NUL in a URL took the
fast path of the URL check. Each is refused with an :class:`Aria2InputError` before anything is
sent; a real aria2c and a real server show what does still get through unchanged.
"""

from __future__ import annotations

import http.server
import re
import subprocess
import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest

from aria2_sync import Aria2InputError
from aria2_sync.aria2_options import ALL_OPTIONS, DOWNLOAD_OPTIONS, GLOBAL_ONLY_OPTIONS
from aria2_sync.daemon.binary import find_aria2c
from aria2_sync.errors import Aria2RPCError
from aria2_sync.validation import check_daemon_options, check_uris, download_options
from tests.conftest import wait_for_status

INJECTED = "X-A: 1\r\nX-Injected: yes"


# -- the option list against the real binary -----------------------------------------------------


def _help_option_names() -> set:
    text = subprocess.run(
        [find_aria2c(), "--help=#all"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    return set(re.findall(r"^ (?:-[A-Za-z0-9], )?--([a-z0-9][a-z0-9-]*)", text, re.MULTILINE))


def test_the_option_list_is_the_binarys_own():
    names = _help_option_names()
    assert len(names) > 150  # the help really was parsed
    assert ALL_OPTIONS == names, (
        f"aria2c knows options aria2_options.py lacks: {sorted(names - ALL_OPTIONS)}; "
        f"and no longer knows: {sorted(ALL_OPTIONS - names)}. Regenerate aria2_options.py."
    )
    assert not DOWNLOAD_OPTIONS & GLOBAL_ONLY_OPTIONS


def test_the_per_download_options_are_those_aria2_applies_per_download(client):
    """The measurement the module's comment describes, repeated against the running binary."""
    applied = set()
    plain = client.rpc.add_uri(["http://127.0.0.1:9/x"], {"pause": "true"})
    defaults = set(client.rpc.get_option(plain))
    client.rpc.force_remove(plain)
    for name in sorted(ALL_OPTIONS):
        if name in defaults:
            applied.add(name)
            continue
        for value in ("1", "true", "x"):
            try:
                gid = client.rpc.add_uri(["http://127.0.0.1:9/x"], {"pause": "true", name: value})
            except Aria2RPCError:
                applied.add(name)  # aria2 parsed the value, so it applies the option per download
                break
            seen = name in client.rpc.get_option(gid)
            client.rpc.force_remove(gid)
            if seen:
                applied.add(name)
                break
    assert applied == DOWNLOAD_OPTIONS


# -- option names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, words",
    [
        ({"max-trys": 1}, "did you mean 'max-tries'"),
        ({"max_tries": 1}, "did you mean 'max-tries'"),
        ({"--split": 2}, "did you mean 'split'"),
        ({"no-such-option": "x"}, "unknown aria2 option 'no-such-option'"),
        ({"max-concurrent-downloads": 2}, "daemon-wide"),
        ({"rpc-secret": "x"}, "daemon-wide"),
    ],
)
def test_unknown_option_names_are_refused_everywhere_options_enter(
    client, fault_server, tmp_path, options, words
):
    url = fault_server.add_file("n.bin", size=100)
    calls = [
        lambda: client.add_download(url, str(tmp_path / "n.bin"), options),
        lambda: client.submit(url, str(tmp_path / "n.bin"), options),
        lambda: client.add_batch_downloads([(url, str(tmp_path / "n.bin"))], options=options),
    ]
    for call in calls:
        with pytest.raises(Aria2InputError, match=re.escape(words)):
            call()
    assert client.rpc.tell_active() == [] and client.rpc.tell_waiting(0, 10) == []
    assert fault_server.requests("n.bin") == []


def test_every_per_download_option_name_is_accepted():
    # (the options whose values are checked too get a valid value: see tests/test_integrity.py)
    valid = {"checksum": "md5=" + "0" * 32, "follow-torrent": "mem", "follow-metalink": "false"}
    for name in sorted(DOWNLOAD_OPTIONS - {"gid", "out", "index-out"}):
        assert name in download_options(None, {name: valid.get(name, "1")})


# -- option values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"header": INJECTED},
        {"header": ["X-A: 1", "X-B: 2\nX-Injected: yes"]},
        {"user-agent": "ua\r\nX-Injected: yes"},
        {"referer": "http://h/\x00"},
        {"http-passwd": "pw\nX-Injected: yes"},
    ],
)
def test_line_breaks_and_nul_in_option_values_are_refused(client, fault_server, tmp_path, options):
    url = fault_server.add_file("h.bin", size=100)
    with pytest.raises(Aria2InputError, match="line break or NUL") as caught:
        client.add_download(url, str(tmp_path / "h.bin"), options)
    assert "pw" not in str(caught.value)  # a password is never quoted
    assert fault_server.requests("h.bin") == []


class _HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """Serves 10 bytes and keeps every request's header lines."""

    seen: ClassVar[list[list[str]]] = []

    def do_GET(self) -> None:
        self.seen.append([f"{k}: {v}" for k, v in self.headers.items()])
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"0123456789")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def header_server() -> Iterator[str]:
    _HeaderRecorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)
    assert not thread.is_alive()


def test_several_headers_still_go_as_a_list(client, header_server, tmp_path):
    gid = client.add_download(f"{header_server}/f", str(tmp_path / "f.bin"), {"header": ["X-A: 1", "X-B: 2"]})
    wait_for_status(client, gid, "complete")
    lines = _HeaderRecorder.seen[-1]
    assert "X-A: 1" in lines and "X-B: 2" in lines
    assert not any(line.startswith("X-Injected") for line in lines)


# -- out stays inside dir -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "out, words",
    [
        ("../x.bin", "climbs out"),
        ("a/../../x.bin", "climbs out"),
        ("..\\x.bin", "climbs out"),
        ("/tmp/x.bin", "absolute path"),
        ("", "empty"),
        ("sub/", "directory"),
        (["a", "b"], "one file name"),
    ],
)
def test_out_cannot_leave_dir(client, fault_server, tmp_path, out, words):
    url = fault_server.add_file("o.bin", size=100)
    inner = tmp_path / "inner"
    with pytest.raises(Aria2InputError, match=words):
        client.add_download(url, None, {"dir": str(inner), "out": out})
    with pytest.raises(Aria2InputError, match=words):
        client.add_batch_downloads([(url, None)], options={"dir": str(inner), "out": out})
    assert fault_server.requests("o.bin") == []
    assert list(tmp_path.iterdir()) == []


def test_index_out_paths_cannot_leave_dir():
    with pytest.raises(Aria2InputError, match="climbs out"):
        download_options(None, {"dir": "/d", "index-out": ["1=a.bin", "2=../b.bin"]})
    with pytest.raises(Aria2InputError, match="INDEX=PATH"):
        download_options(None, {"index-out": "a.bin"})
    assert download_options(None, {"index-out": "1=sub/a.bin"})["index-out"] == "1=sub/a.bin"


def test_out_in_a_sub_folder_of_dir_still_works(client, fault_server, tmp_path):
    url = fault_server.add_file("s.bin", size=1000)
    gid = client.add_download(url, None, {"dir": str(tmp_path), "out": "sub/s.bin"})
    wait_for_status(client, gid, "complete")
    assert (tmp_path / "sub" / "s.bin").read_bytes() == fault_server.content("s.bin")


# -- URLs: both paths of the check refuse the same characters ---------------------------------


UNSAFE = [
    "\x00",
    "\x85",
    "\u2028",
    "\u2029",
    "\u00a0",
    "\u3000",
    "\x0b",
    "\x0c",
    "\x1f",
    "\x7f",
    "\x9f",
    " ",
    "\t",
]


@pytest.mark.parametrize("char", UNSAFE, ids=[f"U+{ord(c):04X}" for c in UNSAFE])
def test_urls_with_white_space_or_control_characters_are_refused(char):
    for url in (f"http://host/a{char}b", f"http://user:pw@host/a{char}b", f"http://host/x?q=a{char}b"):
        with pytest.raises(Aria2InputError, match="white space|control character") as caught:
            check_uris(url)
        assert "pw" not in str(caught.value)


def test_plain_and_non_ascii_urls_are_still_accepted():
    for url in (
        "http://host/a/b?c=d#e",
        "https://host:8443/~x/%20y",
        "http://host/ü",
        "ftp://h/f",
        "http://[::1]/f",
    ):
        assert check_uris(url) == [url]


def test_a_refused_url_in_a_batch_adds_nothing(client, fault_server, tmp_path):
    good = fault_server.add_file("g.bin", size=100)
    with pytest.raises(Aria2InputError, match="item 1 of the batch"):
        client.add_batch_downloads(
            [(good, str(tmp_path / "g.bin")), (good.replace("g.bin", "g\u2028.bin"), str(tmp_path / "h.bin"))]
        )
    assert fault_server.requests("g.bin") == []


# -- the daemon's options (Aria2Daemon calls check_daemon_options) -----------------------------


def test_daemon_options_are_checked_by_name_and_value():
    assert check_daemon_options({"max-concurrent-downloads": 4, "check-certificate": False}) == {
        "max-concurrent-downloads": "4",
        "check-certificate": "false",
    }
    with pytest.raises(Aria2InputError, match="line break"):
        check_daemon_options({"log-level": "warn\non-download-complete=/bin/true"})
    with pytest.raises(Aria2InputError, match="unknown aria2 option 'max-concurent-downloads'.*did you mean"):
        check_daemon_options({"max-concurent-downloads": 4})
    with pytest.raises(Aria2InputError, match="set by Aria2Daemon"):
        check_daemon_options({"rpc-secret": "x"}, frozenset({"rpc-secret"}))
    with pytest.raises(Aria2InputError, match="option names"):
        check_daemon_options({"--dir": "x"})
    with pytest.raises(Aria2InputError, match="takes a str"):
        check_daemon_options({"split": None})
    with pytest.raises(Aria2InputError, match="must be a dict"):
        check_daemon_options(["split=2"])  # type: ignore[arg-type]
