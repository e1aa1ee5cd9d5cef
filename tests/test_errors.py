"""Errors carry their parts (problem, file, fix), and each front end words them."""

from __future__ import annotations

import pytest

from perfrnn.errors import PATH, Fix, PerfRNNError
from perfrnn.music_io import read_music_file


def test_the_command_line_message_joins_the_parts():
    error = PerfRNNError("it is not a valid mid file (bad header)", path="/tmp/x/a.mid",
                         action="read", fix=Fix("kind", "drums", "for a drum style"))
    assert str(error) == ("cannot read /tmp/x/a.mid: it is not a valid mid file (bad header); "
                          "for a drum style, use --kind drums")
    assert error.problem == "it is not a valid mid file (bad header)"
    assert str(PerfRNNError("plain")) == "plain"


def test_a_front_end_names_the_file_and_the_fix_its_own_way():
    error = PerfRNNError(f"no music files found in {PATH}", path="/srv/instance/inputs",
                         fix=Fix("kind", "pitched"))
    assert str(error) == "no music files found in /srv/instance/inputs; use --kind pitched"
    words = error.describe("the uploaded files", lambda fix: f'choose "{fix.value}"')
    assert words == 'no music files found in the uploaded files; choose "pitched"'
    assert "/srv" not in words


def test_a_reader_error_names_its_file_apart_from_the_problem(tmp_path):
    path = tmp_path / "song.mid"
    path.write_bytes(b"not midi at all")
    with pytest.raises(PerfRNNError) as caught:
        read_music_file(path)
    error = caught.value
    assert error.path == str(path) and error.action == "read"
    assert str(tmp_path) not in error.problem and "not a valid mid file" in error.problem
    assert str(error).startswith(f"cannot read {path}: ")
    assert error.describe("my song.mid").startswith("cannot read my song.mid: ")
