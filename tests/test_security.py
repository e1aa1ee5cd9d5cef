"""Safe on the internet: bounded work per request, and clear refusals.

Each test here stands for a way the site was attacked: a request that cost
unbounded work or memory, or one that got a 500 instead of a clear 4xx.
"""

from __future__ import annotations

import io

import mido
import pytest

from perfrnn.errors import PerfRNNError
from perfrnn.options import MAX_PRIMER_NOTES, MAX_PRIMER_SECONDS, GenerationOptions
from webapp.web.schema import MAX_PRIMER_BYTES

API = "/api/v1"


def far_apart_notes() -> bytes:
    """50 bytes: two notes 3,000 beats apart at the slowest tempo MIDI can say
    (16.7 s a beat), a primer of about 50,000 seconds."""
    song = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=0xFFFFFF))
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=3000 * 96))
    track.append(mido.Message("note_on", note=62, velocity=80, time=0))
    track.append(mido.Message("note_off", note=62, velocity=0, time=96))
    data = io.BytesIO()
    song.save(file=data)
    return data.getvalue()


def dense_notes(count: int) -> bytes:
    """`count` short notes in a few seconds."""
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    for index in range(count):
        track.append(mido.Message("note_on", note=40 + index % 40, velocity=80, time=1))
        track.append(mido.Message("note_off", note=40 + index % 40, velocity=0, time=1))
    data = io.BytesIO()
    song.save(file=data)
    return data.getvalue()


def post_primer(client, data: bytes, name: str = "primer.mid"):
    return client.post(f"{API}/generations", content_type="multipart/form-data",
                       data={"style": "piano", "seconds": "5",
                             "primer": (io.BytesIO(data), name)})


@pytest.fixture
def app(make_app):
    return make_app()


def test_a_primer_past_its_limits_is_refused_naming_the_limit(app):
    client = app.test_client()
    store = app.extensions["perfrnn"].store
    storage_root = app.extensions["perfrnn"].storage.root
    long = post_primer(client, far_apart_notes())
    assert len(far_apart_notes()) < 100
    assert long.status_code == 422, long.get_data(as_text=True)
    assert f"at most {MAX_PRIMER_SECONDS:g} seconds" in long.get_json()["fields"]["primer"]
    crowded = post_primer(client, dense_notes(MAX_PRIMER_NOTES + 500))
    assert crowded.status_code == 422
    assert f"at most {MAX_PRIMER_NOTES:,}" in crowded.get_json()["fields"]["primer"]
    large = post_primer(client, b"MThd" + b"\0" * (MAX_PRIMER_BYTES + 10))
    assert large.status_code == 413
    body = large.get_json()
    assert body["error"] == "too_large" and f"{MAX_PRIMER_BYTES >> 10:,} KiB" in body["message"]
    # Nothing was queued or kept.
    assert store.count(("queued", "running", "done", "failed")) == 0
    assert not list(storage_root.rglob("*.mid"))
    # A primer within the limits is taken.
    assert post_primer(client, dense_notes(200)).status_code == 202


def test_the_sampler_itself_refuses_a_primer_past_the_limits(piano_sampler):
    import note_seq

    primer = note_seq.midi_to_note_sequence(far_apart_notes())
    with pytest.raises(PerfRNNError, match="a primer may last at most"):
        piano_sampler.generate(GenerationOptions(seconds=1, seed=1), primer=primer)


@pytest.mark.parametrize("url", [f"{API}/generations", f"{API}/trainings", f"{API}/bundles"])
def test_a_form_part_without_a_name_is_a_clear_400(app, url):
    body = (b'--XX\r\nContent-Disposition: form-data; name="style"\r\n\r\npiano\r\n'
            b'--XX\r\nContent-Disposition: form-data; name="colour"\r\n\r\nred\r\n'
            b'--XX\r\nContent-Disposition: form-data\r\n\r\nvalue\r\n--XX--\r\n')
    response = app.test_client().post(url, data=body,
                                      content_type="multipart/form-data; boundary=XX")
    assert response.status_code == 400
    assert "has no name" in response.get_json()["message"]


def test_a_training_piece_past_the_limits_is_skipped_naming_the_limit(tmp_path):
    from training.prepare import MAX_PIECE_SECONDS, SKIP_TOO_LARGE, prepare_corpus

    music = tmp_path / "music"
    music.mkdir()
    (music / "far.mid").write_bytes(far_apart_notes())
    for index in range(2):
        (music / f"fine{index}.mid").write_bytes(dense_notes(300 + index))
    result = prepare_corpus("limits", [music], tmp_path / "data")
    skipped = {record.source: record for record in result.skipped}
    assert list(skipped) == ["far.mid"]
    assert skipped["far.mid"].reason_code == SKIP_TOO_LARGE
    assert f"at most {MAX_PIECE_SECONDS:,.0f}" in skipped["far.mid"].reason
    assert len(result.used) == 2
