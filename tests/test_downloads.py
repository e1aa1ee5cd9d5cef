"""What a generation job stores (MIDI, notes JSON, NoteSequence, events) and
the files made when first downloaded (WAV, MP3, piano roll, stems), through
Flask's test client and real workers on the small test styles.

Audio is decoded by real decoders: WAV by the `wave` module, MP3 and the
stems' WAVs by libsndfile (`soundfile`, with mpg123), as the radio's tests do.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import wave
import zipfile

import mido
import numpy as np
import pretty_midi
import pytest
import soundfile

from tests.conftest import wait_for_job

API = "/api/v1"


@pytest.fixture
def counted(monkeypatch):
    """Makes `app`'s renderer count the files it is asked to make: returns a
    function that installs the counter on an app and gives its list of kinds."""

    def install(app) -> list[str]:
        renderer = app.extensions["perfrnn"].renderer
        kinds: list[str] = []
        submit = renderer.submit

        def counting(kind, *args):
            kinds.append(kind)
            return submit(kind, *args)

        monkeypatch.setattr(renderer, "submit", counting)
        return kinds

    return install


def generate(app, **fields) -> dict:
    """A finished generation as GET /jobs/<id> shows it."""
    client = app.test_client()
    response = client.post(f"{API}/generations", json=fields)
    assert response.status_code == 202, response.get_data(as_text=True)
    job_id = response.get_json()["job"]["id"]
    finished = wait_for_job(app, job_id, 90)
    assert finished.state == "done", finished.error
    return client.get(f"{API}/jobs/{job_id}").get_json()


def stored(app, key: str) -> bytes:
    return app.extensions["perfrnn"].storage.get(key)


def assert_same_notes(notes: dict, midi: bytes, tolerance: float = 1e-3) -> None:
    """The notes JSON holds the notes of the MIDI file as pretty_midi reads
    it: the same parts in order, and in each the same notes, times within
    `tolerance` seconds."""
    song = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    assert [(part["name"], part["program"], part["is_drum"]) for part in notes["parts"]] == \
        [(instrument.name, instrument.program, instrument.is_drum)
         for instrument in song.instruments]
    assert sum(len(part["notes"]) for part in notes["parts"]) > 0
    for part, instrument in zip(notes["parts"], song.instruments):
        ours = sorted((round(start, 6), pitch, velocity, end)
                      for start, end, pitch, velocity in part["notes"])
        theirs = sorted((note.start, note.pitch, note.velocity, note.end)
                        for note in instrument.notes)
        assert len(ours) == len(theirs), part["name"]
        for (start, pitch, velocity, end), (start2, pitch2, velocity2, end2) in \
                zip(ours, theirs):
            assert (pitch, velocity) == (pitch2, velocity2)
            assert abs(start - start2) <= tolerance and abs(end - end2) <= tolerance
    assert abs(notes["seconds"] - song.get_end_time()) <= 0.05 or \
        notes["seconds"] >= song.get_end_time()


# ----- what a job stores ---------------------------------------------------------------

def test_a_job_stores_midi_notes_sequence_and_events_and_renders_nothing(make_app, counted):
    from note_seq.protobuf import music_pb2

    app = make_app(RENDER_PROCESSES=0)
    made = counted(app)
    job = generate(app, style="rock", seconds=6, seed=3, variations=2, bpm=100)
    assert made == [], "the job made audio or a piano roll"
    storage = app.extensions["perfrnn"].storage
    keys = sorted(storage.keys(f"jobs/{job['id']}/"))
    stems = [entry["midi"][:-4] for entry in job["result"]["variations"]]
    assert keys == sorted(f"{stem}{suffix}" for stem in stems
                          for suffix in (".mid", ".notes.json", ".sequence.pb", ".events.npy"))
    vocabulary = app.extensions["perfrnn"].registry.get("rock").bundle.encoding.num_classes
    for entry in job["result"]["variations"]:
        for field in ("midi", "notes", "sequence", "events"):
            data = stored(app, entry[field])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"][field], field
        assert "wav" not in entry and "pianoroll" not in entry
        sequence = music_pb2.NoteSequence.FromString(stored(app, entry["sequence"]))
        assert len(sequence.notes) == entry["note_count"] > 0
        events = np.load(io.BytesIO(stored(app, entry["events"])), allow_pickle=False)
        assert events.dtype == np.int32 and events.ndim == 1 and len(events) > 10
        assert 0 <= events.min() and events.max() < vocabulary
    first, second = job["result"]["variations"]
    assert stored(app, first["events"]) != stored(app, second["events"])
    assert job["downloads"][0]["notes"] == f"{API}/generations/{job['id']}/notes?variation=0"


@pytest.mark.parametrize("fields", [
    {"style": "rock", "seconds": 6, "seed": 11, "bpm": 100, "feel": "swing"},
    {"style": "piano", "seconds": 5, "seed": 4, "quantize": True},
    {"style": "piano", "bars": 4, "seed": 5, "chords": "Am | F", "quality": "fast"},
])
def test_the_notes_json_is_the_midi_file_read_with_pretty_midi(make_app, fields):
    app = make_app(RENDER_PROCESSES=0)
    client = app.test_client()
    job = generate(app, **fields)
    response = client.get(job["downloads"][0]["notes"])
    assert response.status_code == 200 and response.mimetype == "application/json"
    notes = response.get_json()
    assert (notes["job"], notes["variation"]) == (job["id"], 0)
    midi = client.get(job["downloads"][0]["midi"]).data
    assert_same_notes(notes, midi)
    song = mido.MidiFile(file=io.BytesIO(midi))
    tempo = next(message.tempo for message in song.tracks[0] if message.type == "set_tempo")
    assert abs(notes["bpm"] - mido.tempo2bpm(tempo)) < 1e-3
    assert notes["tempos"] == [{"time": 0.0, "qpm": notes["bpm"]}]
    assert notes["time_signature"] == {"numerator": 4, "denominator": 4}
    bar = 4 * 60 / notes["bpm"]
    assert notes["bars"] == pytest.approx([n * bar for n in range(len(notes["bars"]))])
    assert notes["bars"][-1] < notes["seconds"] <= notes["bars"][-1] + bar + 1e-6
    assert abs(notes["seconds"] - song.length) < 1e-3
    # sections and chords: the conductor track's markers and text events
    marks, tick = [], 0
    for message in song.tracks[0]:
        tick += message.time
        if message.type in ("marker", "text"):
            marks.append((message.type, message.text,
                          round(mido.tick2second(tick, song.ticks_per_beat, tempo), 4)))
    assert [("marker", section["name"], round(section["time"], 4))
            for section in notes["sections"]] == [mark for mark in marks if mark[0] == "marker"]
    assert [("text", chord["symbol"], round(chord["time"], 4))
            for chord in notes["chords"]] == [mark for mark in marks if mark[0] == "text"]
    if "chords" in fields:
        assert [chord["symbol"] for chord in notes["chords"]] == ["Am", "F", "Am", "F"]


def test_notes_json_of_overlapping_and_quantized_notes_is_what_the_writer_writes():
    from note_seq.protobuf import music_pb2

    from perfrnn.configs import TrackRole
    from perfrnn.midi_writer import midi_bytes
    from perfrnn.notes_json import notes_json

    sequence = music_pb2.NoteSequence(total_time=4.0)
    tracks = (TrackRole("drums", 0, True), TrackRole("bass", 33), TrackRole("lead", 81))
    for start, end, pitch, part in [(0.0, 1.0, 40, 1), (0.5, 2.0, 40, 1), (0.51, 0.7, 36, 0),
                                    (0.52, 0.6, 36, 0), (1.03, 3.99, 72, 2), (3.9, 4.5, 74, 2)]:
        sequence.notes.add(start_time=start, end_time=end, pitch=pitch, velocity=90,
                           instrument=part)
    for quantize in (False, True):
        midi = midi_bytes(sequence, tracks, bpm=90, native_bpm=90, quantize=quantize,
                          time_signature=(3, 4))
        notes = notes_json(sequence, tracks, bpm=90, quantize=quantize, time_signature=(3, 4))
        assert_same_notes(notes, midi)
        assert [part["channel"] for part in notes["parts"]] == [9, 0, 1]
        assert notes["bars"] == pytest.approx([0.0, 2.0])  # 3/4 at 90 bpm: 2 s a bar


# ----- files made when first downloaded -------------------------------------------------

def test_wav_and_mp3_are_made_on_first_download_then_served_from_storage(make_app, counted):
    app = make_app(RENDER_PROCESSES=0)
    client = app.test_client()
    made = counted(app)
    job = generate(app, style="rock", seconds=5, seed=123)
    assert made == []
    links = job["downloads"][0]
    for kind in ("wav", "mp3"):
        assert links[kind] == f"{API}/generations/{job['id']}/{kind}?variation=0"

    wav = client.get(links["wav"])
    assert wav.status_code == 200 and wav.mimetype == "audio/wav", wav.get_data(as_text=True)
    assert "rock-5s-seed123.wav" in wav.headers["Content-Disposition"]
    with wave.open(io.BytesIO(wav.data)) as sound:
        seconds = sound.getnframes() / sound.getframerate()
        samples = np.frombuffer(sound.readframes(sound.getnframes()), "<i2")
    assert 5.0 <= seconds <= 7.0 and np.abs(samples).max() > 1000  # music, not silence
    mp3 = client.get(links["mp3"])
    assert mp3.status_code == 200 and mp3.mimetype == "audio/mpeg"
    assert "rock-5s-seed123.mp3" in mp3.headers["Content-Disposition"]
    decoded, rate = soundfile.read(io.BytesIO(mp3.data), dtype="float32")
    assert rate == 44100 and abs(len(decoded) / rate - seconds) < 0.2
    assert np.abs(decoded).max() > 0.03
    assert made == ["wav", "mp3"]

    entry = app.extensions["perfrnn"].store.get(job["id"]).result["variations"][0]
    for kind, response in (("wav", wav), ("mp3", mp3)):
        assert stored(app, entry[kind]) == response.data
        assert entry["sha256"][kind] == hashlib.sha256(response.data).hexdigest()
    for kind, response in (("wav", wav), ("mp3", mp3)):  # again: from storage
        again = client.get(links[kind])
        assert again.status_code == 200 and again.data == response.data
        assert kind in again.headers["Content-Disposition"]
    assert made == ["wav", "mp3"]

    picture = client.get(links["pianoroll"])
    assert picture.status_code == 200 and picture.data.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get(links["pianoroll"]).data == picture.data
    assert made == ["wav", "mp3", "pianoroll"]

    # a file changed on the server after it was made is refused, as the MIDI file is
    app.extensions["perfrnn"].storage.put(entry["mp3"], mp3.data[:-100])
    body = client.get(links["mp3"]).get_json()
    assert body["error"] == "damaged"


def test_two_first_downloads_at_once_get_the_same_whole_file(make_app, counted):
    app = make_app(RENDER_PROCESSES=1)
    made = counted(app)
    job = generate(app, style="piano", seconds=5, seed=9)
    answers: list = []

    def download() -> None:
        answers.append(app.test_client().get(job["downloads"][0]["mp3"]))

    threads = [threading.Thread(target=download) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.status_code for answer in answers] == [200] * 3
    assert len({answer.data for answer in answers}) == 1
    entry = app.extensions["perfrnn"].store.get(job["id"]).result["variations"][0]
    assert stored(app, entry["mp3"]) == answers[0].data
    assert 1 <= made.count("mp3") <= 3
    storage = app.extensions["perfrnn"].storage
    assert not [key for key in storage.keys(f"jobs/{job['id']}/") if ".part-" in key]


def test_the_stems_zip_holds_one_midi_and_one_wav_per_part(make_app):
    app = make_app(RENDER_PROCESSES=0)
    client = app.test_client()
    job = generate(app, style="rock", seconds=5, seed=21, bpm=110)
    midi = client.get(job["downloads"][0]["midi"]).data
    notes = client.get(job["downloads"][0]["notes"]).get_json()
    response = client.get(job["downloads"][0]["stems"])
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "rock-5s-seed21-stems.zip" in response.headers["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    names = archive.namelist()
    parts = [f"{number:02d}-{part['name']}" for number, part in
             enumerate(notes["parts"], start=1)]
    assert len(parts) >= 2
    assert sorted(names) == sorted([f"{part}.mid" for part in parts]
                                   + [f"{part}.wav" for part in parts] + ["all-parts.mid"])
    assert archive.read("all-parts.mid") == midi
    whole = mido.MidiFile(file=io.BytesIO(midi))
    lengths = set()
    for number, part in enumerate(parts, start=1):
        single = mido.MidiFile(file=io.BytesIO(archive.read(f"{part}.mid")))
        assert len(single.tracks) == 2 and single.ticks_per_beat == whole.ticks_per_beat
        assert list(single.tracks[0]) == list(whole.tracks[0])  # tempo, metre, markers, chords
        assert list(single.tracks[1]) == list(whole.tracks[number])  # that part alone
        assert abs(single.length - whole.length) < 1e-6
        audio, rate = soundfile.read(io.BytesIO(archive.read(f"{part}.wav")), dtype="float32")
        assert rate == 44100 and audio.shape[1] == 2
        lengths.add(len(audio))
        if notes["parts"][number - 1]["notes"]:
            assert np.abs(audio).max() > 0.01, part
    assert len(lengths) == 1  # every stem lines up with the others
    assert abs(lengths.pop() / 44100 - (whole.length + 1.0)) < 0.01
    assert client.get(job["downloads"][0]["stems"]).data == response.data


def test_without_audio_there_is_no_wav_or_mp3_and_the_stems_are_midi(make_app, counted):
    app = make_app(RENDER_AUDIO=False, RENDER_PROCESSES=0)
    client = app.test_client()
    made = counted(app)
    job = generate(app, style="rock", seconds=5, seed=2)
    links = job["downloads"][0]
    assert links["wav"] is None and links["mp3"] is None
    assert "RENDER_AUDIO" in job["result"]["audio_message"]
    for kind in ("wav", "mp3"):
        response = client.get(f"{API}/generations/{job['id']}/{kind}")
        assert response.status_code == 404 and response.get_json()["error"] == "no_audio"
    archive = zipfile.ZipFile(io.BytesIO(client.get(links["stems"]).data))
    assert not [name for name in archive.namelist() if name.endswith(".wav")]
    assert len([name for name in archive.namelist() if name.endswith(".mid")]) >= 3
    assert b"left out" in archive.read("README.txt")
    assert made == ["stems"]


def test_stems_of_too_many_parts_are_refused():
    from perfrnn.errors import PerfRNNError
    from perfrnn.stems import MAX_STEM_PARTS, part_files

    song = mido.MidiFile(type=1)
    song.tracks.extend(mido.MidiTrack() for _ in range(MAX_STEM_PARTS + 2))
    buffer = io.BytesIO()
    song.save(file=buffer)
    with pytest.raises(PerfRNNError, match="at most 16"):
        part_files(buffer.getvalue())
    with pytest.raises(PerfRNNError, match="cannot be read"):
        part_files(b"MThd not really")


def test_files_of_expired_and_unfinished_jobs(make_app):
    from webapp.jobs.expiry import remove_expired

    app = make_app(RENDER_PROCESSES=0)
    client = app.test_client()
    job = generate(app, style="piano", seconds=5, seed=1)
    assert client.get(job["downloads"][0]["notes"]).status_code == 200
    bad = client.get(f"{API}/generations/{job['id']}/stems?variation=3")
    assert bad.status_code == 404 and bad.get_json()["error"] == "not_found"
    assert remove_expired(app.extensions["perfrnn"], -1) >= 1
    for kind in ("notes", "mp3", "stems"):
        response = client.get(f"{API}/generations/{job['id']}/{kind}")
        assert response.status_code == 404 and response.get_json()["error"] == "expired"
    assert json.loads(client.get(f"{API}/jobs/{job['id']}").data)["state"] == "expired"


def test_a_result_stored_before_notes_existed_says_so(make_app):
    app = make_app(RENDER_PROCESSES=0)
    client = app.test_client()
    job = generate(app, style="piano", seconds=5, seed=6)
    store = app.extensions["perfrnn"].store
    result = store.get(job["id"]).result
    entry = result["variations"][0]
    entry["notes"] = entry.pop("note_count")  # as results were stored before
    store._execute("UPDATE jobs SET result = ? WHERE id = ?", (json.dumps(result), job["id"]))
    for kind in ("notes", "pianoroll"):
        response = client.get(f"{API}/generations/{job['id']}/{kind}")
        assert response.status_code == 404, kind
        assert "generate again" in response.get_json()["message"]
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert f"{entry['notes']} notes" in page
    assert client.get(f"{API}/generations/{job['id']}/midi").status_code == 200
