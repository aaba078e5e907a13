"""State files are replaced whole, and logs are created owner-only whatever the umask."""

from __future__ import annotations

import os

from loopline.runtime.files import open_private_log, write_atomically


def test_a_log_is_created_owner_only_under_a_permissive_umask(tmp_path) -> None:
    previous = os.umask(0o022)  # what a shell usually has: new files 0644
    try:
        with open_private_log(tmp_path / "migrate.log") as log:
            log.write(b"first\n")
        with open_private_log(tmp_path / "migrate.log") as log:
            log.write(b"second\n")
    finally:
        os.umask(previous)
    assert (tmp_path / "migrate.log").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "migrate.log").read_bytes() == b"first\nsecond\n"  # appended


def test_a_state_file_is_replaced_whole(tmp_path) -> None:
    path = tmp_path / "deep" / "beat.json"
    write_atomically(path, b'{"v": 1}')
    write_atomically(path, b'{"v": 2}')
    assert path.read_bytes() == b'{"v": 2}'
    assert [p.name for p in path.parent.iterdir()] == ["beat.json"]  # no staging file left
