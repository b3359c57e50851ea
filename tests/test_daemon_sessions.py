"""A private aria2c's session, made ready for its restart after a crash (``aria2_sync.daemon.sessions``).

Files on disk and a session file as aria2c writes it; the end-to-end case (a download finished in
the second before aria2c was killed) is the chaos suite's daemon-kill test.
"""

from __future__ import annotations

import os
import stat

from aria2_sync.daemon.sessions import drop_finished


def _entry(url: str, gid: str, directory: str, out: str) -> str:
    return f"{url}\n gid={gid}\n dir={directory}\n out={out}\n"


def test_a_download_finished_since_the_last_save_is_taken_out_and_nothing_else(tmp_path):
    session = tmp_path / "aria2.session"
    older = tmp_path / "older.bin"
    older.write_bytes(b"another writer's")  # (there before the session was saved)
    entries = [
        _entry("http://h/done.bin", "00000000000000a1", str(tmp_path), "done.bin"),
        _entry("http://h/partial.bin", "00000000000000a2", str(tmp_path), "partial.bin"),
        _entry("http://h/older.bin", "00000000000000a3", str(tmp_path), "older.bin"),
        _entry("http://h/absent.bin", "00000000000000a4", str(tmp_path), "absent.bin"),
        "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567\n gid=00000000000000a5\n",
    ]
    session.write_text("".join(entries))
    os.chmod(session, 0o600)
    saved_at = session.stat().st_mtime
    os.utime(older, (saved_at - 10, saved_at - 10))
    (tmp_path / "done.bin").write_bytes(b"whole")  # finished after the save: no control file
    (tmp_path / "partial.bin").write_bytes(b"part")
    (tmp_path / "partial.bin.aria2").write_bytes(b"control")
    for name in ("done.bin", "partial.bin"):
        os.utime(tmp_path / name, (saved_at + 1, saved_at + 1))

    assert drop_finished(str(session)) == 1
    text = session.read_text()
    assert "done.bin" not in text
    assert all(gid in text for gid in ("a2", "a3", "a4", "a5"))
    assert stat.S_IMODE(session.stat().st_mode) == 0o600
    assert drop_finished(str(session)) == 0  # (nothing more to take out)


def test_a_session_file_that_is_a_symlink_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text(_entry("http://h/x.bin", "00000000000000b1", str(tmp_path), "x.bin"))
    (tmp_path / "x.bin").write_bytes(b"whole")
    os.utime(tmp_path / "x.bin", (target.stat().st_mtime + 1, target.stat().st_mtime + 1))
    link = tmp_path / "aria2.session"
    link.symlink_to(target)
    assert drop_finished(str(link)) == 0
    assert "x.bin" in target.read_text() and link.is_symlink()
