"""Edits through the API: POST /generations/{id}/edits and /versions.

Real workers on the small test styles (conftest.py): an edit is a job that
makes a new version; notes outside the selection stay as they were; bad
selections, other owners and expired results are refused; the same seed
and edit give the same bytes.
"""

from __future__ import annotations

import io
import time

import mido
import pretty_midi
import pytest

from tests.conftest import GENEROUS_LIMITS, wait_for_job
from tests.test_api import API, assert_error, assert_invalid, generate

ROCK = dict(style="rock", seconds=8, seed=3, bpm=120)  # 4 bars of 2 s


def edit(client, job_id: str, **body):
    return client.post(f"{API}/generations/{job_id}/edits", json=body)


def run_edit(app, client, job_id: str, **body) -> dict:
    response = edit(client, job_id, **body)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = response.get_json()["job"]
    finished = wait_for_job(app, job["id"], 120)
    assert finished.state == "done", finished.error
    return client.get(f"{API}/jobs/{job['id']}").get_json()


def midi_notes(client, job: dict) -> list[tuple]:
    data = client.get(job["downloads"][0]["midi"]).get_data()
    midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    return sorted((instrument.name, instrument.is_drum, note.pitch, round(note.start, 3),
                   round(note.end, 3), note.velocity)
                  for instrument in midi.instruments for note in instrument.notes)


@pytest.fixture(scope="module")
def api_app(tmp_path_factory, web_bundles_dir):
    """One app for the edits of one piece (its styles compile once)."""
    from webapp import create_app
    from webapp.services import shutdown

    app = create_app({"TESTING": True,
                      "INSTANCE_PATH": str(tmp_path_factory.mktemp("edits") / "instance"),
                      "BUNDLES_DIR": str(web_bundles_dir), "PRELOAD_STYLES": False,
                      **GENEROUS_LIMITS})
    yield app
    shutdown(app)


@pytest.fixture(scope="module")
def rock_job(api_app):
    client = api_app.test_client()
    return generate(api_app, client, **ROCK)


def test_regenerating_bars_makes_a_new_version_with_every_other_note_kept(api_app, rock_job):
    client = api_app.test_client()
    job = run_edit(api_app, client, rock_job["id"], kind="regenerate", first_bar=2, last_bar=3,
                   seed=5)
    assert job["version"] == 2 and job["edit"]["of"] == rock_job["id"]
    assert job["edit"]["first_bar"] == 2 and job["edit"]["last_bar"] == 3
    begin, end = job["result"]["window"]
    assert (begin, end) == pytest.approx((2.0, 6.0))

    def outside(note):
        return not begin - 1e-3 <= note[3] < end - 1e-3

    before, after = midi_notes(client, rock_job), midi_notes(client, job)
    assert [note for note in after if outside(note)] == [note for note in before if outside(note)]
    assert [note for note in after if not outside(note)] != \
        [note for note in before if not outside(note)]
    # the new version has its own notes JSON, matching its file
    notes = client.get(job["downloads"][0]["notes"]).get_json()
    assert sum(len(part["notes"]) for part in notes["parts"]) == len(after)
    versions = client.get(job["links"]["versions"]).get_json()["versions"]
    assert [version["id"] for version in versions] == [rock_job["id"], job["id"]]
    assert [version["kind"] for version in versions] == ["generate", "regenerate"]
    assert versions[0]["links"]["page"] == f"/jobs/{rock_job['id']}"


def test_the_same_seed_and_edit_give_the_same_bytes(api_app, rock_job):
    client = api_app.test_client()
    body = dict(kind="regenerate", first_bar=3, last_bar=3, seed=11, temperature=0.9)
    first = run_edit(api_app, client, rock_job["id"], **body)
    again = run_edit(api_app, client, rock_job["id"], **body)
    other = run_edit(api_app, client, rock_job["id"], **dict(body, seed=12))
    files = [client.get(job["downloads"][0]["midi"]).get_data() for job in (first, again, other)]
    assert files[0] == files[1] and files[0] != files[2]


def test_extend_then_edit_the_extended_version(api_app, rock_job):
    client = api_app.test_client()
    longer = run_edit(api_app, client, rock_job["id"], kind="extend", bars=2, seed=1)
    assert longer["result"]["variations"][0]["seconds"] == pytest.approx(12.0)
    midi = mido.MidiFile(file=io.BytesIO(client.get(longer["downloads"][0]["midi"]).get_data()))
    assert midi.length == pytest.approx(12.0, abs=0.05)
    kept = [note for note in midi_notes(client, longer) if note[3] < 8.0 - 1e-3]
    assert kept == [note for note in midi_notes(client, rock_job)]
    # an edit of the extended version may select its new bars
    third = run_edit(api_app, client, longer["id"], kind="regenerate", first_bar=5,
                     last_bar=6, parts=["bass"], seed=2)
    assert third["version"] == 3
    versions = client.get(third["links"]["versions"]).get_json()["versions"]
    assert [version["version"] for version in versions] == [1, 2, 3]
    assert versions[-1]["parts"] == ["bass"]


@pytest.mark.parametrize("body, field, words", [
    (dict(kind="regenerate", first_bar=3, last_bar=2), "last_bar", "the selection is empty"),
    (dict(kind="regenerate", first_bar=2, last_bar=9), "last_bar", "outside the piece"),
    (dict(kind="regenerate", first_bar=0, last_bar=1), "first_bar", "between 1 and"),
    (dict(kind="regenerate"), "first_bar", "must be a number"),
    (dict(kind="regenerate", first_bar=1, last_bar=1, parts=["kazoo"]), "parts", "no part"),
    (dict(kind="extend", bars=0), "bars", "between 1 and 64"),
    (dict(kind="shuffle"), "kind", "regenerate, extend"),
    (dict(kind="extend", bars=2, parts=["bass"]), "parts", "an extend adds every part"),
    (dict(kind="extend", bars=2, variation=3), "variation", "between 0 and 0"),
    (dict(kind="extend", bars=2, colour="red"), "colour", "unknown field"),
])
def test_a_bad_edit_gets_a_422_that_says_why(api_app, rock_job, body, field, words):
    body = assert_invalid(edit(api_app.test_client(), rock_job["id"], **body), field)
    assert words in str(body)


def test_edits_of_foreign_unknown_or_expired_results_are_404(make_app):
    app = make_app()
    mine = app.test_client()
    job = generate(app, mine, **ROCK)
    other = app.test_client()
    elsewhere = {"REMOTE_ADDR": "10.0.0.12"}
    response = other.post(f"{API}/generations/{job['id']}/edits", environ_base=elsewhere,
                          json=dict(kind="extend", bars=1), headers={"X-Client-Id": "stranger"})
    assert_error(response, 404, "not_found")
    assert_error(other.get(f"{API}/generations/{job['id']}/versions", environ_base=elsewhere,
                           headers={"X-Client-Id": "stranger"}), 404, "not_found")
    assert_error(edit(mine, "0" * 32, kind="extend", bars=1), 404)
    store = app.extensions["perfrnn"].store
    store.expire(time.time() + 1)
    assert_error(edit(mine, job["id"], kind="extend", bars=1), 404, "expired")
    assert_error(mine.get(f"{API}/generations/{job['id']}/versions"), 404, "expired")


def test_an_edit_whose_source_expired_while_it_waited_fails_with_a_message(make_app):
    app = make_app()
    client = app.test_client()
    job = generate(app, client, **ROCK)
    services = app.extensions["perfrnn"]
    services.storage.delete_prefix(f"jobs/{job['id']}")
    response = edit(client, job["id"], kind="extend", bars=1, seed=1)
    assert response.status_code == 202
    finished = wait_for_job(app, response.get_json()["job"]["id"], 60)
    assert finished.state == "failed" and "expired" in finished.error
    assert "Traceback" not in finished.error


def test_edits_are_in_the_openapi_document(api_app):
    document = api_app.test_client().get(f"{API}/openapi.json").get_json()
    post = document["paths"]["/api/v1/generations/{job_id}/edits"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/EditRequest"}
    properties = document["components"]["schemas"]["EditRequest"]["properties"]
    assert {"kind", "first_bar", "last_bar", "bars", "parts", "seed", "temperature",
            "variation"} <= set(properties)
    assert {"202", "404", "422"} <= set(post["responses"])
    assert "get" in document["paths"]["/api/v1/generations/{job_id}/versions"]
