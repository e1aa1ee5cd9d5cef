"""Online fetchers against tiny archives served by a real HTTP server on loopback."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mido
import pretty_midi
import pytest

from datasets.cli import main
from datasets.download import download, unpack
from datasets.errors import DatasetError
from datasets.manifest import read_manifest
from datasets.online import FetchOptions, fetch


def tiny_midi(pitch: int, channel: int = 0, notes: int = 4) -> bytes:
    """A small valid MIDI file: ``notes`` quarter notes at 120 BPM."""
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=500000, time=0)])
    for index in range(notes):
        track.append(mido.Message("note_on", channel=channel, note=pitch + index, velocity=80,
                                  time=0))
        track.append(mido.Message("note_off", channel=channel, note=pitch + index, velocity=0,
                                  time=96))
    mid.tracks.append(track)
    buffer = io.BytesIO()
    mid.save(file=buffer)
    return buffer.getvalue()


def maestro_zip() -> bytes:
    """A MAESTRO-shaped zip: maestro-v3.0.0/maestro-v3.0.0.csv and year folders."""
    rows = [
        ("Bach", "Prelude", "train", "2004/a.midi"),
        ("Bach", "Prelude", "train", "2006/b.midi"),
        ("Chopin", "Etude", "validation", "2004/c.midi"),
        ("Liszt", "Sonata", "test", "2008/d.midi"),
    ]
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["canonical_composer", "canonical_title", "split", "year", "midi_filename",
                     "audio_filename", "duration"])
    for composer, title, split, name in rows:
        writer.writerow([composer, title, split, 2004, name, name.replace(".midi", ".wav"), 2.0])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("maestro-v3.0.0/maestro-v3.0.0.csv", table.getvalue())
        for index, (_, _, _, name) in enumerate(rows):
            zf.writestr(f"maestro-v3.0.0/{name}", tiny_midi(60 + index))
    return buffer.getvalue()


class Server:
    """ThreadingHTTPServer on 127.0.0.1 serving in-memory files, with Range support.

    ``cut_next`` makes the next full (non-Range) response stop after that many
    bytes and drop the connection, as a network failure would.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cut_next: int | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                range_header = self.headers.get("Range")
                owner.requests.append((self.path, range_header))
                body = owner.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                if range_header and range_header.startswith("bytes="):
                    start = int(range_header[6:].split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if owner.cut_next is not None and not range_header:
                    cut, owner.cut_next = owner.cut_next, None
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server():
    srv = Server()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()
    srv.thread.join(timeout=5)


def test_fetch_maestro_full_download(server, tmp_path):
    server.files["/maestro.zip"] = maestro_zip()
    out = tmp_path / "corpora" / "maestro"
    code = main(["fetch", "maestro", "--out", str(out), "--url", server.url("/maestro.zip"),
                 "--cache", str(tmp_path / "cache")])
    assert code == 0
    manifest = read_manifest(out)
    assert manifest["format"] == "perfrnn-corpus/1"
    assert manifest["name"] == "maestro"
    assert set(manifest["licences"]) == {"CC-BY-NC-SA-4.0"}
    files = {Path(f["file"]).name: f for f in manifest["files"]}
    assert set(files) == {"a.midi", "b.midi", "c.midi", "d.midi"}
    assert files["a.midi"]["split"] == "train"
    assert files["c.midi"]["split"] == "validation"
    assert files["d.midi"]["split"] == "validation"  # MAESTRO's test split is held out too
    assert files["d.midi"]["dataset_split"] == "test"
    assert files["a.midi"]["family"] == files["b.midi"]["family"]
    for entry in manifest["files"]:
        path = out / entry["file"]
        assert path.is_file()
        assert entry["kind"] == "pitched"
        assert mido.MidiFile(path).length > 0
        assert pretty_midi.PrettyMIDI(str(path)).instruments[0].notes
    assert (out / "LICENCES.md").is_file() and (out / ".gitignore").read_text().strip()
    assert (tmp_path / "cache" / "downloads" / "maestro.zip").is_file()
    assert not list(tmp_path.glob("corpora/.maestro.partial-*"))


def test_download_resumes_after_an_interrupted_transfer(server, tmp_path):
    body = maestro_zip()
    server.files["/maestro.zip"] = body
    server.cut_next = len(body) // 2
    dest = tmp_path / "cache" / "maestro.zip"
    with pytest.raises(DatasetError, match="resume"):
        download(server.url("/maestro.zip"), dest)
    part = dest.with_name("maestro.zip.part")
    assert part.is_file() and 0 < part.stat().st_size < len(body)
    assert not dest.exists()
    kept = part.stat().st_size
    sha = hashlib.sha256(body).hexdigest()
    assert download(server.url("/maestro.zip"), dest, sha256=sha) == dest
    assert dest.read_bytes() == body
    assert not part.exists()
    assert server.requests[-1] == ("/maestro.zip", f"bytes={kept}-")


def test_checksum_mismatch_deletes_the_download(server, tmp_path, capsys):
    server.files["/maestro.zip"] = maestro_zip()
    out = tmp_path / "maestro"
    code = main(["fetch", "maestro", "--out", str(out), "--url", server.url("/maestro.zip"),
                 "--sha256", "0" * 64, "--cache", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checksum mismatch") and "deleted" in err
    assert "Traceback" not in err
    assert not list((tmp_path / "cache" / "downloads").iterdir())
    assert not out.exists()


def test_network_failure_is_one_clear_line(tmp_path, capsys):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = main(["fetch", "groove", "--out", str(tmp_path / "g"), "--url",
                 f"http://127.0.0.1:{port}/groove.zip", "--cache", str(tmp_path / "cache")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: could not download") and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", ["../evil.mid", "/abs/evil.mid", "ok/../../evil.mid"])
def test_unsafe_zip_is_refused_whole(server, tmp_path, name):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("maestro-v3.0.0/good.midi", tiny_midi(60))
        zf.writestr(name, tiny_midi(62))
    server.files["/bad.zip"] = buffer.getvalue()
    with pytest.raises(DatasetError, match="refusing to unpack"):
        fetch("maestro", tmp_path / "sub" / "out", url=server.url("/bad.zip"),
              options=FetchOptions(cache=tmp_path / "cache"))
    assert not (tmp_path / "evil.mid").exists() and not (tmp_path / "sub" / "evil.mid").exists()
    assert not (tmp_path / "sub" / "out").exists()
    assert not list((tmp_path / "sub").glob(".out.partial-*"))


def test_tar_with_a_link_or_bomb_is_refused(tmp_path):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("clean_midi/a/link.mid")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(DatasetError, match="link"):
        unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out" / "clean_midi").exists()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.mid", b"\0" * 3_000_000)
    with pytest.raises(DatasetError, match="refusing"):
        unpack(bomb, tmp_path / "out2", max_bytes=1_000_000)


def test_corrupt_archive_is_deleted_with_a_clear_error(server, tmp_path):
    server.files["/broken.zip"] = maestro_zip()[:-40] + b"garbage" * 2  # bad central directory
    server.files["/broken.tar.gz"] = b"\x1f\x8b\x08\x00" + b"not really gzip" * 10
    for path in ("/broken.zip", "/broken.tar.gz"):
        with pytest.raises(DatasetError, match="corrupt"):
            fetch("maestro", tmp_path / "m", url=server.url(path),
                  options=FetchOptions(cache=tmp_path / "cache"))
        assert not (tmp_path / "cache" / "downloads" / path[1:]).exists()


def test_fetch_groove_uses_its_split_column(server, tmp_path):
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature",
                     "midi_filename", "audio_filename", "duration", "split"])
    names = []
    for index, split in enumerate(["train", "train", "validation", "test"]):
        name = f"drummer1/session1/{index}_rock_100_beat_4-4.mid"
        names.append(name)
        writer.writerow(["drummer1", "drummer1/session1", f"drummer1/session1/{index}",
                         "rock", 100 + index, "beat", "4-4", name, "", 2.0, split])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("groove/info.csv", table.getvalue())
        for name in names:
            zf.writestr(f"groove/{name}", tiny_midi(36, channel=9))
    server.files["/groove.zip"] = buffer.getvalue()
    out, files, _ = fetch("groove", tmp_path / "groove", url=server.url("/groove.zip"),
                          options=FetchOptions(cache=tmp_path / "cache"))
    assert [f.split for f in sorted(files, key=lambda f: f.file)] == [
        "train", "train", "validation", "validation"]
    assert {f.kind for f in files} == {"drums"}
    assert files[0].extra["tempo_bpm"] == 100.0
    for entry in read_manifest(out)["files"]:
        mid = mido.MidiFile(out / entry["file"])
        assert {m.channel for t in mid.tracks for m in t if m.type == "note_on"} == {9}


def test_fetch_lakh_with_genres_and_artist_split(server, tmp_path):
    songs = {f"clean_midi/Artist {a}/Song {s}.mid": tiny_midi(40 + a * 5 + s)
             for a in range(5) for s in range(2)}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in songs.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    server.files["/clean_midi.tar.gz"] = buffer.getvalue()
    md5s = {name: hashlib.md5(data).hexdigest() for name, data in songs.items()}
    scores = {f"TRACK{index:03d}": {md5: 0.9} for index, md5 in enumerate(md5s.values())}
    server.files["/match_scores.json"] = json.dumps(scores).encode()
    genres = "# tagtraum\n" + "".join(
        f"TRACK{index:03d}\t{'Rock' if index % 2 else 'Electronic'}\n" for index in range(10))
    cls = io.BytesIO()
    with zipfile.ZipFile(cls, "w") as zf:
        zf.writestr("msd_tagtraum_cd2c.cls", genres)
    server.files["/genres.cls.zip"] = cls.getvalue()
    out = tmp_path / "lakh"
    code = main(["fetch", "lakh", "--out", str(out), "--url", server.url("/clean_midi.tar.gz"),
                 "--match-url", server.url("/match_scores.json"),
                 "--genres-url", server.url("/genres.cls.zip"), "--genre", "rock",
                 "--validation-fraction", "0.4", "--cache", str(tmp_path / "cache")])
    assert code == 0
    manifest = read_manifest(out)
    assert len(manifest["files"]) == 5 and {f["genre"] for f in manifest["files"]} == {"Rock"}
    splits: dict[str, set[str]] = {}
    for entry in manifest["files"]:
        splits.setdefault(entry["family"], set()).add(entry["split"])
        assert (out / entry["file"]).is_file()
    assert all(len(s) == 1 for s in splits.values())
    assert {next(iter(s)) for s in splits.values()} == {"train", "validation"}
