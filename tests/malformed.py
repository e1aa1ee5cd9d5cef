"""A corpus of malformed and hostile uploads, made in memory (never committed).

`malformed_files()` returns (file name, bytes, what is wrong) for each: broken
and lying MIDI files, XML attacks, bad MusicXML, ABC and zips (slip, bomb,
nesting), broken bundles and hostile file names. tests/test_security.py sends
each one to every upload path.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile

import mido


def _midi(*messages, ticks_per_beat: int = 480, file_type: int = 1, tracks: int = 1) -> bytes:
    song = mido.MidiFile(type=file_type, ticks_per_beat=ticks_per_beat)
    for _ in range(tracks):
        track = mido.MidiTrack()
        track.extend(messages)
        song.tracks.append(track)
    data = io.BytesIO()
    song.save(file=data)
    return data.getvalue()


def _good_midi() -> bytes:
    return _midi(*[message for pitch in range(60, 72)
                   for message in (mido.Message("note_on", note=pitch, velocity=80, time=120),
                                   mido.Message("note_off", note=pitch, velocity=0, time=120))])


def _chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    return kind + struct.pack(">I", len(body) if length is None else length) + body


def _header(file_type: int = 0, tracks: int = 1, division: int = 480,
            length: int = 6) -> bytes:
    return _chunk(b"MThd", struct.pack(">HHH", file_type, tracks, division), length)


def _zip(entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", compression) as archive:
        for name, body in entries.items():
            archive.writestr(name, body)
    return data.getvalue()


MUSICXML_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                 '<score-partwise version="3.1"><part-list><score-part id="P1">'
                 '<part-name>x</part-name></score-part></part-list><part id="P1">')
CONTAINER = (b'<?xml version="1.0"?><container><rootfiles><rootfile full-path="score.xml"/>'
             b'</rootfiles></container>')


def malformed_files() -> list[tuple[str, bytes, str]]:
    """(file name, bytes, what is wrong) for each malformed upload."""
    rng = random.Random(7)
    good = _good_midi()
    note = ('<measure number="1"><attributes><divisions>{divisions}</divisions></attributes>'
            '<note><pitch><step>C</step><octave>4</octave></pitch>'
            '<duration>{duration}</duration></note></measure>')
    files = [
        ("empty.mid", b"", "an empty file"),
        ("header-only.mid", b"MThd", "a header tag and nothing else"),
        ("short-header.mid", _header(length=0), "a header chunk of length 0"),
        ("many-tracks.mid", _header(1, 65535), "a header that promises 65,535 tracks"),
        ("truncated.mid", good[: len(good) // 2], "a real file cut in half"),
        ("huge-delta.mid", _header() + _chunk(b"MTrk", b"\xff\xff\xff\xff\x7f\x90\x3c\x40"),
         "a delta time past what a MIDI file can hold"),
        ("tempo-zero.mid", _header() + _chunk(b"MTrk", b"\x00\xff\x51\x03\x00\x00\x00"
                                              b"\x00\x90\x3c\x40\x60\x80\x3c\x00\x00\xff\x2f\x00"),
         "a tempo of 0 microseconds a beat"),
        ("smpte.mid", _header(division=0xE728) + _chunk(b"MTrk", b"\x00\xff\x2f\x00"),
         "SMPTE time division"),
        ("type-two.mid", _midi(mido.Message("note_on", note=60, velocity=80), file_type=2,
                               tracks=3), "a type 2 file"),
        ("running-status.mid", _header() + _chunk(b"MTrk", b"\x00\x3c\x40\x00\x3c\x00"),
         "running status with no status byte before it"),
        ("random.mid", bytes(rng.randrange(256) for _ in range(2048)), "random bytes"),
        ("png.mid", b"\x89PNG\r\n\x1a\n" + bytes(100), "a PNG image named .mid"),
        ("text.mid", b"hello, this is not music\n" * 10, "text named .mid"),
        ("long-chunk.mid", _header() + _chunk(b"MTrk", b"\x00\x90\x3c", 0xFFFFFFFF),
         "a track chunk that says it is 4 GiB"),
        ("bad-data.mid", _header() + _chunk(b"MTrk", b"\x00\x90\xff\xff\x00\xff\x2f\x00"),
         "note data bytes above 127"),
        ("empty-tracks.mid", _midi(tracks=1000), "a thousand empty tracks"),
        ("open-sysex.mid", _header() + _chunk(b"MTrk", b"\x00\xf0\x7f\x7f\x7f"),
         "a system exclusive message that never ends"),
        ("meta-overrun.mid", _header() + _chunk(b"MTrk", b"\x00\xff\x01\x7f\x41"),
         "a meta event longer than its file"),
        ("malformed.xml", b"<score-partwise><part>", "XML that never closes"),
        ("xxe.xml", b'<?xml version="1.0"?><!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                    b"<score-partwise>&x;</score-partwise>", "an external entity (XXE)"),
        ("laughs.xml", b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
                       b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                       b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
                       b'<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]><l>&d;&d;&d;</l>',
         "nested entities (billion laughs)"),
        ("html.xml", b"<html><body>not a score</body></html>", "XML that is not MusicXML"),
        ("no-notes.musicxml", (MUSICXML_HEAD + "</part></score-partwise>").encode(),
         "MusicXML with no notes"),
        ("negative.musicxml", (MUSICXML_HEAD + note.format(divisions=1, duration=-4)
                               + "</part></score-partwise>").encode(),
         "MusicXML with a negative duration"),
        ("zero-divisions.musicxml", (MUSICXML_HEAD + note.format(divisions=0, duration=4)
                                     + "</part></score-partwise>").encode(),
         "MusicXML with 0 divisions a quarter note"),
        ("deep.xml", b"<a>" * 20000 + b"</a>" * 20000, "XML nested 20,000 deep"),
        ("not-a-zip.mxl", b"PK\x03\x04 but not really", "an .mxl that is not a zip"),
        ("no-container.mxl", _zip({"score.xml": b"<score-partwise/>"}),
         "an .mxl without its container"),
        ("slip.mxl", _zip({"META-INF/container.xml": CONTAINER, "../../evil.xml": b"x"}),
         "an .mxl with an entry outside its folder (zip slip)"),
        ("bomb.mxl", _zip({"META-INF/container.xml": CONTAINER,
                           "score.xml": b"\0" * (40 << 20)}), "an .mxl that unpacks 40 MiB"),
        ("missing-root.mxl", _zip({"META-INF/container.xml": CONTAINER}),
         "an .mxl whose container names a missing file"),
        ("empty.abc", b"", "an empty ABC file"),
        ("garbage.abc", b"%%%%\x00\x01\x02 not abc at all", "bytes that are not ABC"),
        ("repeats.abc", b"X:1\nK:C\n" + b"|:C" * 3000 + b"\n", "thousands of open repeats"),
        ("zero-length.abc", b"X:1\nL:1/0\nK:C\nCDEF|\n", "a unit note length of 1/0"),
        ("slip.zip", _zip({"../../evil.mid": good}), "a zip slip"),
        ("bomb.zip", _zip({"big.mid": b"\0" * (200 << 20)}), "a zip bomb (200 MiB of zeros)"),
        ("nested.zip", _zip({"inner.zip": _zip({"song.mid": good})}), "a zip inside a zip"),
        ("broken-directory.zip", _zip({"song.mid": good})[:-10],
         "a zip whose central directory is cut off"),
        ("many-entries.zip", _zip({f"empty{index}.txt": b"" for index in range(3000)},
                                  zipfile.ZIP_STORED), "3,000 empty entries"),
        ("random.mag", bytes(rng.randrange(256) for _ in range(4096)), "random bytes named .mag"),
        ("empty.mag", b"", "an empty bundle"),
        ("midi.mag", good, "a MIDI file named .mag"),
        ("../../../etc/passwd.mid", good, "a name that climbs out of its folder"),
        ("nul\x00byte.mid", good, "a name with a NUL byte"),
        ("x" * 500 + ".mid", good, "a 500-character name"),
        ("no-suffix", good, "a name without a suffix"),
        (".mid", good, "a name that is only a suffix"),
    ]
    return files
