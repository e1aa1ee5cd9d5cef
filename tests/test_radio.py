"""Endless radio: the engine (perfrnn.radio) and the streams API (webapp.radio)."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from perfrnn.options import GenerationOptions
from tests.conftest import GENEROUS_LIMITS, poll_until

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"


@pytest.fixture(scope="module")
def rock_sampler():
    from perfrnn.bundle import read_bundle
    from perfrnn.sampler import Sampler

    return Sampler(read_bundle(ROOT / "bundles" / "rock.mag"), block_events=128)


def decode(mp3: bytes) -> tuple[np.ndarray, int]:
    """The MP3 decoded by libsndfile (mpg123): mono float samples and the rate."""
    audio, rate = soundfile.read(io.BytesIO(mp3), dtype="float32")
    return audio.mean(axis=1), rate


def test_a_stream_has_no_gap_or_click_at_its_joins(rock_sampler):
    from perfrnn.audio import StreamSynth
    from perfrnn.radio import Radio, longest_quiet, longest_rest

    radio = Radio(rock_sampler, GenerationOptions(seed=2))
    played, rendered = [], []
    render = radio.synth.render

    def recording(messages, until):  # what the stream's synthesizer is given, chunk by chunk
        played.extend(messages)
        rendered.append(render(messages, until))
        return rendered[-1]

    radio.synth.render = recording
    data = b""
    while radio.seconds < 24.0:
        data += radio.next_chunk()
    data += radio.close()
    assert len(rendered) >= 10  # one chunk a bar
    # the joins add nothing: the chunks are the audio of all the notes rendered in one go
    whole = StreamSynth(radio.programs).render(played, radio.seconds)
    chunks = np.concatenate(rendered)
    assert chunks.shape == whole.shape
    assert np.abs(chunks - whole).max() < 0.01  # -40 dBFS: the synthesizer's block updates
    # decoded by a real decoder: as long as the music, with no near-silence longer
    # than the music's own longest rest, plus 50 ms
    samples, rate = decode(data)
    assert abs(len(samples) / rate - radio.seconds) < 0.2  # MP3 frames: a few ms either way
    assert longest_quiet(samples, rate, start=0.5) <= longest_rest(radio.heard, 0.5) + 0.05


def test_a_tempo_change_lands_on_a_bar_line_within_a_bar(rock_sampler):
    from perfrnn.radio import Radio

    radio = Radio(rock_sampler, GenerationOptions(seed=3, bpm=100.0))
    while radio.seconds < 12.0:
        radio.next_chunk()
    asked = radio.seconds
    radio.change(bpm=150.0)
    while radio.seconds < asked + 12.0:
        radio.next_chunk()
    assert radio.bpm == 150.0
    # each note's time after the change: the bar line it started from plus beats at 150 BPM
    change_beat = None
    for note in sorted(radio.heard, key=lambda note: note.start):
        if note.start > asked + 2.5:  # past the next bar line (2.4 s a bar at 100 BPM)
            seconds_per_beat = (note.start - asked) / (note.start_beat - asked * 100 / 60)
            change_beat = note.start_beat - (note.start - asked) * 150 / 60
            break
    assert change_beat is not None
    assert seconds_per_beat < 0.6  # faster than 100 BPM's 0.6 s a beat
    # the MIDI file plays as it was heard: its tempo changes on that bar line
    midi = mido.MidiFile(file=io.BytesIO(radio.midi()))
    tempos, tick = [], 0
    for message in midi.tracks[0]:
        tick += message.time
        if message.type == "set_tempo":
            tempos.append((tick / midi.ticks_per_beat, round(mido.tempo2bpm(message.tempo))))
    assert [bpm for _, bpm in tempos] == [100, 150]
    assert tempos[1][0] % 4 == 0 and tempos[1][0] == pytest.approx(change_beat, abs=1e-6)
    assert abs(midi.length - radio.seconds) < 0.05  # as long as what was made
    onsets = [note.start_beat for note in radio.heard if note.track == 0]  # drums
    assert onsets and all(abs(beat * 12 - round(beat * 12)) < 1e-6 for beat in onsets)


def test_live_settings_are_checked(rock_sampler):
    from perfrnn.errors import PerfRNNError
    from perfrnn.radio import Radio

    radio = Radio(rock_sampler, GenerationOptions(seed=1))
    with pytest.raises(PerfRNNError, match="tempo"):
        radio.change(bpm=1000)
    with pytest.raises(PerfRNNError, match="creativity"):
        radio.change(temperature=0.0)
    with pytest.raises(PerfRNNError, match="not conditioned"):
        radio.change(notes_per_second=4.0)


@pytest.fixture
def radio_app(make_app):
    app = make_app(BUNDLES_DIR=str(ROOT / "bundles"), MAX_RADIO_STREAMS=2, **GENEROUS_LIMITS)
    yield app
    app.extensions["perfrnn_radio"].stop_all()


def listen(client, url: str, size: int) -> tuple[bytes, object]:
    response = client.get(url, buffered=False)
    assert response.status_code == 200 and response.mimetype == "audio/mpeg"
    chunks, data = iter(response.response), b""
    while len(data) < size:
        data += next(chunks)
    return data, response


def test_the_streams_api(radio_app):
    client = radio_app.test_client()
    created = client.post(f"{API}/streams", json={"style": "rock", "bpm": 120, "seed": 5,
                                                   "type": "Overdriven Guitar"})
    assert created.status_code == 201, created.get_json()
    stream = created.get_json()
    assert stream["state"] == "playing" and stream["seed"] == 5 and stream["bpm"] == 120
    for _ in range(3):  # a HEAD takes no listener's slot
        assert client.head(stream["audio_url"]).status_code == 200
    assert radio_app.extensions["perfrnn_radio"].get(stream["id"]).listeners == 0
    unread = radio_app.extensions["perfrnn_radio"].get(stream["id"]).listen()
    del unread  # a listener dropped before it read anything gives its slot back
    assert radio_app.extensions["perfrnn_radio"].get(stream["id"]).listeners == 0
    data, response = listen(client, stream["audio_url"], 64_000)  # 4 s at 128 kbit/s
    samples, rate = decode(data)
    assert rate == 44100 and len(samples) / rate > 3.5 and np.abs(samples).max() > 0.01
    changed = client.patch(f"{API}/streams/{stream['id']}", json={"bpm": 90, "temperature": 0.8})
    assert changed.status_code == 200 and changed.get_json()["bpm"] == 90
    poll_until(lambda: radio_app.extensions["perfrnn_radio"].get(stream["id"]).radio.bpm == 90,
               30, "the new tempo to be played")
    midi = client.get(stream["midi_url"] + "?minutes=5")
    assert midi.status_code == 200 and midi.mimetype == "audio/midi"
    song = mido.MidiFile(file=io.BytesIO(midi.data))
    programs = [m.program for track in song.tracks for m in track if m.type == "program_change"]
    assert 29 in programs  # the type chosen: GM 30, Overdriven Guitar
    response.close()
    assert client.delete(f"{API}/streams/{stream['id']}").status_code == 204
    assert client.get(f"{API}/streams/{stream['id']}").status_code == 404
    assert radio_app.extensions["perfrnn_radio"].playing() == 0


def test_bad_stream_requests_are_refused(radio_app):
    client = radio_app.test_client()
    for body, field in (({"style": "nope"}, "style"), ({"style": "rock", "key": "C"}, "key"),
                        ({"style": "rock", "bpm": 5}, "bpm"),
                        ({"style": "rock", "loud": 1}, "loud")):
        response = client.post(f"{API}/streams", json=body)
        assert response.status_code == 422 and field in response.get_json()["fields"], body
    stream = client.post(f"{API}/streams", json={"style": "rock"}).get_json()
    response = client.patch(f"{API}/streams/{stream['id']}", json={"temperature": 5})
    assert response.status_code == 422 and "temperature" in response.get_json()["fields"]
    assert client.get(f"{API}/streams/0123456789abcdef/audio").status_code == 404
    assert client.get(f"{API}/streams/{stream['id']}/midi?minutes=99").status_code == 422


def test_the_limit_answers_503_and_a_listener_who_leaves_frees_the_stream(radio_app,
                                                                          monkeypatch):
    import webapp.radio

    monkeypatch.setattr(webapp.radio, "IDLE_SECONDS", 1.0)
    client = radio_app.test_client()
    hub = radio_app.extensions["perfrnn_radio"]
    first = client.post(f"{API}/streams", json={"style": "drums"}).get_json()
    client.post(f"{API}/streams", json={"style": "piano"})
    full = client.post(f"{API}/streams", json={"style": "rock"})
    assert full.status_code == 503 and int(full.headers["Retry-After"]) > 0
    _, response = listen(client, first["audio_url"], 16_000)
    stream = hub.get(first["id"])
    assert stream.listeners == 1
    response.close()  # the listener leaves
    poll_until(lambda: hub.playing() == 0, 15, "the streams nobody listens to to stop")
    assert stream.stopped and stream.listeners == 0
    stream.join(5)
    assert not stream._thread.is_alive()
    assert not hasattr(stream.radio, "synth")  # the synthesizer and the row are let go
    assert client.post(f"{API}/streams", json={"style": "rock"}).status_code == 201


def test_a_stalled_listener_never_holds_the_music_back(rock_sampler, monkeypatch):
    import webapp.radio
    from perfrnn.radio import Radio
    from webapp.radio import StreamHub

    monkeypatch.setattr(webapp.radio, "LEAD_SECONDS", 0.5)
    monkeypatch.setattr(webapp.radio, "RING_CHUNKS", 2)  # so that the ring has to drop some
    hub = StreamHub(2)
    stream = hub.open(Radio(rock_sampler, GenerationOptions(seed=8)), "rock", {})
    stalled = stream.listen()
    next(stalled)  # reads once, then never again
    made = stream.radio.seconds
    # the music goes on in real time (3 s of it take about 3 s), past what the ring keeps
    poll_until(lambda: stream.radio.seconds >= made + 3.0 and stream._next > 2, 30,
               "3 s and 3 chunks more music while a listener is stalled")
    assert len(stream._ring) <= 2  # and what is kept stays bounded
    fresh = stream.listen()
    assert len(next(fresh)) > 0  # another listener gets the live edge at once
    stalled.close()
    fresh.close()
    hub.stop_all()
    assert stream.stopped


def test_the_radio_page(radio_app):
    page = radio_app.test_client().get("/radio")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for marker in ('id="radio-play"', 'id="radio-bpm"', 'id="radio-pace"', "radio.js",
                   'value="rock"'):
        assert marker in text
