"""The website's HTML pages, through Flask's test client."""

from __future__ import annotations

import io
import json
import time
from html.parser import HTMLParser

import pytest
from conftest import FIXTURES, wait_for_job

from webapp.jobs.store import CANCELLED, DONE, EXPIRED, FAILED, QUEUED, RUNNING

ALL_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, EXPIRED)
VALID_ROCK = {"style": "rock", "type": "30", "length": "5", "unit": "seconds",
              "temperature": "1.0", "variations": "1", "seed": "1234"}


# ----- a small HTML reader ----------------------------------------------------------

class Page(HTMLParser):
    """The elements of a page, each with its attributes and the text inside it."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.html = html
        self.elements: list[dict] = []
        self._open: list[dict] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": {name: value or "" for name, value in attrs},
                   "parts": [], "start": len(self.elements)}
        self.elements.append(element)
        if tag in self.VOID:
            element["end"] = len(self.elements)
        else:
            self._open.append(element)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in self.VOID:
            self._close(1)

    def _close(self, count: int) -> None:
        for _ in range(count):
            self._open.pop()["end"] = len(self.elements)

    def handle_endtag(self, tag):
        for index in range(len(self._open) - 1, -1, -1):
            if self._open[index]["tag"] == tag:
                self._close(len(self._open) - index)
                break

    def close(self):
        super().close()
        self._close(len(self._open))

    def handle_data(self, data):
        for element in self._open:
            element["parts"].append(data)

    @staticmethod
    def text(element) -> str:
        return " ".join("".join(element["parts"]).split())

    def by_id(self, element_id: str) -> dict | None:
        found = [e for e in self.elements if e["attrs"].get("id") == element_id]
        assert len(found) <= 1, f"id {element_id!r} is used {len(found)} times"
        return found[0] if found else None

    def select(self, tag: str | None = None, cls: str | None = None, **attrs) -> list[dict]:
        found = []
        for element in self.elements:
            if tag and element["tag"] != tag:
                continue
            if cls and cls not in element["attrs"].get("class", "").split():
                continue
            if any(element["attrs"].get(name.replace("_", "-")) != value
                   for name, value in attrs.items()):
                continue
            found.append(element)
        return found

    def inside(self, container_id: str, tag: str | None = None, cls: str | None = None) -> list:
        """Elements inside the element with id `container_id`."""
        container = self.by_id(container_id)
        assert container is not None, f"no element with id {container_id!r}"
        return [element for element in self.elements[container["start"] + 1:container["end"]]
                if (tag is None or element["tag"] == tag)
                and (cls is None or cls in element["attrs"].get("class", "").split())]


def page(response) -> Page:
    return Page(response.get_data(as_text=True))


def hidden_fields(parsed: Page, form_id: str) -> dict:
    """The name -> value of a form's inputs."""
    return {element["attrs"].get("name"): element["attrs"].get("value", "")
            for element in parsed.inside(form_id, tag="input")}


def job_count(app) -> int:
    return app.extensions["perfrnn"].store.count(ALL_STATES)


def store_of(app):
    return app.extensions["perfrnn"].store


def stop_workers(app) -> None:
    """Jobs stay queued from now on (stop waits for the worker threads to end)."""
    app.extensions["perfrnn_queue"].stop()


def assert_no_traceback(response) -> None:
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and 'File "' not in text


# ----- the generate page --------------------------------------------------------------

def test_home_lists_styles_with_their_types(make_app):
    app = make_app()
    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 200
    parsed = page(response)
    options = {o["attrs"]["value"]: o for o in parsed.select("option")
               if o["attrs"].get("data-types") is not None}
    assert set(options) == {"piano", "rock"}
    rock_types = json.loads(options["rock"]["attrs"]["data-types"])
    assert [entry["label"] for entry in rock_types] == ["Overdriven Guitar (GM 29)",
                                                        "Distortion Guitar (GM 30)"]
    assert options["rock"]["attrs"]["data-conditioned"] == "false"
    assert options["piano"]["attrs"]["data-conditioned"] == "true"
    assert options["rock"]["attrs"]["data-follows-chords"] == "false"
    assert options["piano"]["attrs"]["data-follows-chords"] == "true"  # by its key control
    assert options["rock"]["attrs"]["data-default-bpm"] == "120"
    for element_id in ("generate-form", "style", "type", "length", "unit", "bpm", "temperature",
                       "variations", "seed", "key", "density", "controls-group", "chords",
                       "form", "song-group", "quantize", "primer", "generate-button",
                       "history"):
        assert parsed.by_id(element_id) is not None, element_id
    form = parsed.by_id("generate-form")
    assert form["attrs"]["method"] == "post"
    assert form["attrs"]["enctype"] == "multipart/form-data"
    assert parsed.select("input", name="csrf_token")
    # Every control has a label.
    labelled = {label["attrs"].get("for") for label in parsed.select("label")}
    for control in ("style", "type", "length", "unit", "bpm", "temperature", "variations", "seed",
                    "key", "density", "chords", "form", "quantize", "primer"):
        assert control in labelled, control
    temperature = parsed.by_id("temperature")["attrs"]
    assert (temperature["min"], temperature["max"], temperature["step"], temperature["value"]) == (
        "0.1", "2.0", "0.05", "1.0")
    assert "safer" in page(response).html
    assert parsed.by_id("length")["attrs"]["value"] == "30"

    # The type select is filled on the server for the selected style.
    parsed = page(client.get("/?style=rock"))
    assert parsed.by_id("style") is not None
    selected = [o for o in parsed.select("option") if "selected" in o["attrs"]
                and o["attrs"].get("data-types") is not None]
    assert [o["attrs"]["value"] for o in selected] == ["rock"]
    type_options = [(o["attrs"]["value"], Page.text(o)) for o in parsed.select("option")
                    if o["attrs"].get("value") in ("29", "30")]
    assert type_options == [("29", "Overdriven Guitar (GM 29)"),
                            ("30", "Distortion Guitar (GM 30)")]
    for group_id in ("controls-group", "song-group"):
        group = parsed.by_id(group_id)
        assert "d-none" in group["attrs"]["class"].split() and "disabled" in group["attrs"]


def test_style_query_preselects_a_conditioned_style(make_app):
    client = make_app().test_client()
    parsed = page(client.get("/?style=piano"))
    selected = [o["attrs"]["value"] for o in parsed.select("option")
                if "selected" in o["attrs"] and o["attrs"].get("data-types") is not None]
    assert selected == ["piano"]
    group = parsed.by_id("controls-group")
    assert "d-none" not in group["attrs"]["class"].split()
    assert "disabled" not in group["attrs"]
    assert parsed.by_id("key")["attrs"]["name"] == "key"
    assert parsed.by_id("density")["attrs"]["name"] == "density"
    # A style that follows chords: chords (with examples), the form and the key.
    group = parsed.by_id("song-group")
    assert "d-none" not in group["attrs"]["class"].split() and "disabled" not in group["attrs"]
    song_fields = {element["attrs"].get("id") for element in parsed.inside("song-group")}
    assert {"chords", "form", "key"} <= song_fields
    chords = parsed.by_id("chords")["attrs"]
    assert chords["name"] == "chords" and chords["maxlength"] == "400"
    assert "C G Am F" in chords["placeholder"]
    assert "Dm7 G7 Cmaj7 Cmaj7" in [o["attrs"]["value"]
                                    for o in parsed.inside("chord-examples", tag="option")]
    assert "style's own progression" in Page.text(parsed.by_id("chords-help"))
    forms = parsed.inside("form", tag="option")
    assert [o["attrs"]["value"] for o in forms] == ["song", "loop"]
    assert [o["attrs"]["value"] for o in forms if "selected" in o["attrs"]] == ["song"]
    assert "intro" in Page.text(forms[0]) and "main section" in Page.text(forms[1])
    # An unknown style is said so, and the form still works.
    response = client.get("/?style=nosuch")
    assert response.status_code == 200
    assert "nosuch" in Page.text(page(response).by_id("notice"))


@pytest.mark.parametrize("changes, field, words", [
    ({"length": "2"}, "length", "from 5 seconds"),
    ({"length": "lots"}, "length", "must be a number"),
    ({"unit": "hours"}, "unit", "seconds, minutes or bars"),
    ({"unit": "bars", "length": "300"}, "length", "between 1 and 256"),
    ({"unit": "bars", "length": "200", "bpm": "40"}, "length", "the longest is 100 bars"),
    ({"loop": "on"}, "loop", "length in bars"),
    ({"feel": "lazy"}, "feel", "straight, swing"),
    ({"bpm": "5"}, "bpm", "between 20 and 300"),
    ({"temperature": "3"}, "temperature", "between 0.1 and 2"),
    ({"variations": "9"}, "variations", "between 1 and 4"),
    ({"seed": "-1"}, "seed", "between 0"),
    ({"type": "99"}, "type", "Distortion Guitar"),
    ({"key": "C"}, "key", "takes no key"),
    ({"style": "nosuch"}, "style", "no style 'nosuch'"),
    ({"style": "piano", "type": "", "key": "H"}, "key", "unknown key"),
    ({"style": "piano", "type": "", "density": "100"}, "density", "between 0.5 and 40"),
    ({"style": "piano", "type": "", "chords": "C Hm7 F"}, "chords", "'Hm7'"),
    ({"style": "piano", "type": "", "chords": "C " * 201}, "chords", "at most 400"),
    ({"chords": "C G Am F"}, "chords", "does not follow chords"),
    ({"form": "endless"}, "form", "radio"),
])
def test_invalid_fields_are_shown_next_to_the_field(make_app, changes, field, words):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    response = client.post("/", data={**VALID_ROCK, **changes})
    assert response.status_code == 400
    parsed = page(response)
    feedback = parsed.by_id(f"error-{field}")
    assert feedback is not None, response.get_data(as_text=True)[:3000]
    assert words in Page.text(feedback)
    assert "invalid-feedback" in feedback["attrs"]["class"]
    assert "is-invalid" in parsed.by_id(field)["attrs"]["class"].split()
    if field in ("key", "density", "chords", "form"):  # shown even for a style without them
        group = parsed.by_id("controls-group" if field == "density" else "song-group")
        assert "d-none" not in group["attrs"]["class"].split() and "disabled" not in group["attrs"]
    # What was typed is kept.
    for name in ("length", "bpm", "seed", "key", "density", "chords"):
        if name in changes and name != field or name == "seed":
            value = {**VALID_ROCK, **changes}.get(name, "")
            assert parsed.by_id(name)["attrs"]["value"] == value, name
    assert job_count(app) == 0


def test_a_bad_primer_is_refused(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    response = app.test_client().post(
        "/", data={**VALID_ROCK, "primer": (io.BytesIO(b"not music"), "notes.txt")},
        content_type="multipart/form-data")
    assert response.status_code == 400
    assert "unsupported kind of file" in Page.text(page(response).by_id("error-primer"))
    assert job_count(app) == 0


def midi_bytes() -> bytes:
    """A short MIDI file: a C major arpeggio."""
    import mido

    song = mido.MidiFile()
    track = mido.MidiTrack()
    song.tracks.append(track)
    for pitch in (60, 64, 67, 72):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0))
        track.append(mido.Message("note_off", note=pitch, velocity=0, time=240))
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def test_a_primer_is_kept_with_the_job(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    stop_workers(app)
    client = app.test_client()
    response = client.post("/", data={**VALID_ROCK, "primer": (io.BytesIO(midi_bytes()),
                                                               "my tune.mid")},
                           content_type="multipart/form-data")
    assert response.status_code == 303
    job = store_of(app).get(response.headers["Location"].rsplit("/", 1)[1])
    assert job.params["primer"].endswith("my_tune.mid")
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert Page.text(parsed.by_id("param-primer")) == "my_tune.mid"


def test_chords_and_form_are_kept_with_the_job(make_app):
    from perfrnn.options import REQUEST_FORMS
    from webapp.web.pages import FORM_LABELS

    assert tuple(FORM_LABELS) == REQUEST_FORMS  # the menu offers each form a person may ask for
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    response = client.post("/", data={**VALID_ROCK, "style": "piano", "type": "",
                                      "chords": "Dm7 | G7 | Cmaj7 | %", "form": "loop",
                                      "key": "C"})
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    job = store_of(app).get(response.headers["Location"].rsplit("/", 1)[1])
    assert job.params["chords"] == ["Dm7", "G7", "Cmaj7", "Cmaj7"]
    assert job.params["form"] == "loop" and job.params["key"] == "C"
    assert wait_for_job(app, job.id, timeout=120).state == DONE
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert Page.text(parsed.by_id("param-chords")) == "Dm7 G7 Cmaj7 Cmaj7"
    assert Page.text(parsed.by_id("param-form")).startswith("Loop")
    fields = hidden_fields(parsed, "more-like-this-form")
    assert (fields["chords"], fields["form"], fields["key"]) == ("Dm7 G7 Cmaj7 Cmaj7", "loop",
                                                                 "C")
    # A loop asked for plays the loop form unless another is chosen.
    again = page(client.post("/", data={**VALID_ROCK, "loop": "on", "bpm": "500"}))
    assert [o["attrs"]["value"] for o in again.inside("form", tag="option")
            if "selected" in o["attrs"]] == ["loop"]


def test_generate_shows_results_history_and_more_like_this(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client, other = app.test_client(), app.test_client()
    response = client.post("/", data={**VALID_ROCK, "variations": "2"})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/jobs/")
    job_id = location.rsplit("/", 1)[1]

    # While it runs (or once it is done) the page has the progress parts.
    parsed = page(client.get(location))
    bar = parsed.inside("progress", cls="progress-bar")
    assert bar and "aria-valuenow" in bar[0]["attrs"]
    assert parsed.by_id("stage") is not None
    assert json.loads(Page.text(parsed.by_id("job-data")))["id"] == job_id

    job = wait_for_job(app, job_id, timeout=120)
    assert job.state == DONE, job.error
    assert job.result["audio"], job.result["audio_message"]
    response = client.get(location)
    assert response.status_code == 200
    parsed = page(response)
    assert Page.text(parsed.by_id("param-seed")) == "1234"
    assert "Distortion Guitar (GM 30)" in Page.text(parsed.by_id("param-type"))
    assert Page.text(parsed.by_id("param-length")) == "5 s"
    api = f"/api/v1/generations/{job_id}"
    audio = parsed.select("audio", cls="result-audio")
    assert [a["attrs"]["src"] for a in audio] == [f"{api}/wav?variation=0",
                                                  f"{api}/wav?variation=1"]
    assert all("controls" in a["attrs"] for a in audio)
    # the WAV is made when played, not when the page is shown
    assert all(a["attrs"].get("preload") == "none" for a in audio)
    rolls = parsed.select("img", cls="pianoroll")
    assert [r["attrs"]["src"] for r in rolls] == [f"{api}/pianoroll?variation=0",
                                                  f"{api}/pianoroll?variation=1"]
    assert all("Piano roll" in r["attrs"]["alt"] for r in rolls)
    midi = parsed.select("a", cls="download-midi")
    assert [m["attrs"]["href"] for m in midi] == [f"{api}/midi?variation=0",
                                                  f"{api}/midi?variation=1"]
    assert [m["attrs"]["download"] for m in midi] == [
        v["midi_name"] for v in job.result["variations"]]
    assert midi[0]["attrs"]["download"].startswith("rock-5s-seed1234")
    wav = parsed.select("a", cls="download-wav")
    assert [w["attrs"]["href"] for w in wav] == [f"{api}/wav?variation=0", f"{api}/wav?variation=1"]
    assert parsed.by_id("cancel-button") is None
    assert parsed.by_id("job-error") is None

    # "More like this": the same settings with a blank seed.
    form = parsed.by_id("more-like-this-form")
    assert form["attrs"]["action"] == "/" and form["attrs"]["method"] == "post"
    assert parsed.by_id("more-like-this")["tag"] == "button"
    fields = hidden_fields(parsed, "more-like-this-form")
    assert fields["seed"] == ""
    assert {name: fields[name] for name in ("style", "type", "length", "unit", "bpm",
                                            "variations")} == {
        "style": "rock", "type": "30", "length": "5", "unit": "seconds", "bpm": "120",
        "variations": "2"}
    assert float(fields["temperature"]) == 1.0

    # The history is this browser's only.
    history = page(client.get("/"))
    items = [e["attrs"]["data-job"] for e in history.inside("history", cls="history-item")]
    assert items == [job_id]
    assert history.select("a", cls="history-midi", href=f"{api}/midi?variation=0")
    assert "1234" in Page.text(history.by_id("history"))
    assert "7 days" in Page.text(history.by_id("retention"))
    assert not page(other.get("/")).inside("history", cls="history-item")

    # Sending the "more like this" form makes a new job with a new seed.
    fields.pop("csrf_token", None)
    fields["variations"] = "1"
    response = client.post("/", data=fields)
    assert response.status_code == 303
    again = store_of(app).get(response.headers["Location"].rsplit("/", 1)[1])
    assert again.params["style"] == "rock" and again.params["program"] == 30
    assert again.params["seed"] != 1234
    assert wait_for_job(app, again.id, timeout=120).state == DONE


def test_without_audio_the_page_says_why_and_offers_midi(make_app):
    app = make_app(WTF_CSRF_ENABLED=False, RENDER_AUDIO=False)
    client = app.test_client()
    response = client.post("/", data={**VALID_ROCK, "type": ""})
    job = wait_for_job(app, response.headers["Location"].rsplit("/", 1)[1], timeout=120)
    assert job.state == DONE, job.error
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert not parsed.select("audio")
    assert "RENDER_AUDIO" in Page.text(parsed.by_id("audio-unavailable"))
    assert parsed.select("a", cls="download-midi")
    assert not parsed.select("a", cls="download-wav")
    assert Page.text(parsed.by_id("param-type")) == "the style's own instruments"


def test_history_leaves_out_expired_jobs(make_app):
    app = make_app()
    client = app.test_client()
    client.get("/")
    with client.session_transaction() as session:
        owner = session["owner"]
    store = store_of(app)
    params = {"style": "rock", "seconds": 30.0, "seed": 42, "temperature": 1.0}
    old = store.create("generation", params, owner)
    store.start(old.id)
    store.finish(old.id, {"variations": []})
    store.expire(time.time() + 1)
    kept = store.create("generation", dict(params, seed=43), owner)
    parsed = page(client.get("/"))
    items = [e["attrs"]["data-job"] for e in parsed.inside("history", cls="history-item")]
    assert items == [kept.id]
    assert "30 s" in Page.text(parsed.by_id("history"))
    # An expired job's page says its results are gone.
    parsed = page(client.get(f"/jobs/{old.id}"))
    assert "7 days" in Page.text(parsed.by_id("job-expired"))


def test_queue_full_says_busy(make_app):
    app = make_app(WTF_CSRF_ENABLED=False, QUEUE_LIMIT=0)
    response = app.test_client().post("/", data=VALID_ROCK)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "10"
    assert "try again in 10 s" in Page.text(page(response).by_id("busy"))
    assert page(response).by_id("seed")["attrs"]["value"] == "1234"
    assert job_count(app) == 0


def test_csrf_is_enforced(make_app):
    app = make_app()
    client = app.test_client()
    response = client.post("/", data=VALID_ROCK)
    assert response.status_code == 400
    assert "reload" in Page.text(page(response).by_id("error-message"))
    assert_no_traceback(response)
    assert job_count(app) == 0
    for url in ("/train", "/styles/import"):
        assert client.post(url, data={"name": "x"}).status_code == 400
    # With the form's token the post gets through to the checks.
    token = page(client.get("/")).select("input", name="csrf_token")[0]["attrs"]["value"]
    response = client.post("/", data={**VALID_ROCK, "length": "1", "csrf_token": token})
    assert response.status_code == 400
    assert page(response).by_id("error-length") is not None
    assert job_count(app) == 0


# ----- job pages -------------------------------------------------------------------

def test_cancel_a_waiting_job(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    job = store_of(app).create("generation", {"style": "rock", "seconds": 5.0, "seed": 9,
                                              "temperature": 1.0, "variations": 1})
    parsed = page(client.get(f"/jobs/{job.id}"))
    form = parsed.by_id("cancel-form")
    assert form["attrs"]["action"] == f"/jobs/{job.id}/cancel"
    assert form["attrs"]["method"] == "post"
    assert parsed.by_id("cancel-button") is not None
    assert "waiting" in Page.text(parsed.by_id("stage"))
    response = client.post(f"/jobs/{job.id}/cancel")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/jobs/{job.id}"
    assert store_of(app).get(job.id).state == CANCELLED
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert Page.text(parsed.by_id("state")) == "cancelled"
    assert "Cancelled." in Page.text(parsed.by_id("flashes"))
    assert parsed.by_id("cancel-button") is None
    assert parsed.by_id("job-cancelled") is not None
    # Cancelling again only says it had finished.
    client.post(f"/jobs/{job.id}/cancel")
    assert "already finished" in Page.text(page(client.get(f"/jobs/{job.id}")).by_id("flashes"))


def test_unknown_job_is_a_404_page(make_app):
    client = make_app(WTF_CSRF_ENABLED=False).test_client()
    for response in (client.get("/jobs/0123456789abcdef"), client.post("/jobs/nope/cancel"),
                     client.get("/no/such/page")):
        assert response.status_code == 404
        assert response.mimetype == "text/html"
        parsed = page(response)
        assert Page.text(parsed.by_id("error-status")) == "404"
        assert Page.text(parsed.by_id("error-message"))
        assert parsed.by_id("error-home")["attrs"]["href"] == "/"
        assert_no_traceback(response)


def test_failed_job_shows_its_error(make_app):
    app = make_app()
    store = store_of(app)
    job = store.create("generation", {"style": "rock", "seconds": 5.0, "seed": 3,
                                      "temperature": 1.0, "variations": 1})
    store.start(job.id)
    store.fail(job.id, "style 'rock' cannot be loaded: the file is damaged")
    response = app.test_client().get(f"/jobs/{job.id}")
    assert response.status_code == 200
    parsed = page(response)
    alert = parsed.by_id("job-error")
    assert "alert-danger" in alert["attrs"]["class"].split()
    assert "the file is damaged" in Page.text(alert)
    assert parsed.by_id("cancel-button") is None
    assert not parsed.select("a", cls="download-midi")
    assert_no_traceback(response)


def test_a_generation_that_fails_on_the_worker(make_app, tmp_path):
    import shutil

    from conftest import magenta_bundle_path

    bundles = tmp_path / "own-bundles"
    bundles.mkdir()
    shutil.copy(magenta_bundle_path("performance_with_dynamics"), bundles / "solo.mag")
    app = make_app(WTF_CSRF_ENABLED=False, BUNDLES_DIR=str(bundles))
    stop_workers(app)
    client = app.test_client()
    response = client.post("/", data={"style": "solo", "length": "5", "seed": "1"})
    assert response.status_code == 303
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    (bundles / "solo.mag").write_bytes(b"damaged")
    from webapp.jobs.runner import run_job

    run_job(app.extensions["perfrnn"], job_id)
    assert store_of(app).get(job_id).state == FAILED
    parsed = page(client.get(f"/jobs/{job_id}"))
    assert "solo" in Page.text(parsed.by_id("job-error"))


# ----- training ----------------------------------------------------------------------

def test_train_page_lists_presets_and_kinds(make_app):
    from training.pipeline import PRESETS

    app = make_app()
    parsed = page(app.test_client().get("/train"))
    form = parsed.by_id("train-form")
    assert form["attrs"]["enctype"] == "multipart/form-data"
    presets = {o["attrs"]["value"]: Page.text(o) for o in parsed.inside("preset", tag="option")}
    assert list(presets) == list(PRESETS)
    for name, preset in PRESETS.items():
        assert preset.description in presets[name]
    kinds = [o["attrs"]["value"] for o in parsed.inside("kind", tag="option")]
    assert kinds == ["auto", "pitched", "drums", "band"]
    files = parsed.by_id("files")["attrs"]
    assert "multiple" in files and ".zip" in files["accept"] and ".mid" in files["accept"]
    for element_id in ("name", "files", "preset", "kind", "train-button", "training-history"):
        assert parsed.by_id(element_id) is not None, element_id
    assert parsed.by_id("token") is None


@pytest.mark.parametrize("data, field, words", [
    ({"name": "newstyle"}, "files", "choose some"),
    ({"name": "newstyle", "files": (io.BytesIO(b"x"), "song.txt")}, "files", "unsupported"),
    ({"name": "newstyle", "files": (io.BytesIO(b""), "song.mid")}, "files", "is empty"),
    ({"name": "Bad Name!", "files": (io.BytesIO(b"x"), "song.mid")}, "name", "lower-case"),
    ({"name": "rock", "files": (io.BytesIO(b"x"), "song.mid")}, "name", "already"),
    ({"name": "newstyle", "preset": "huge", "files": (io.BytesIO(b"x"), "a.mid")}, "preset",
     "choose a preset"),
    ({"name": "newstyle", "kind": "choir", "files": (io.BytesIO(b"x"), "a.mid")}, "kind",
     "kind must be"),
])
def test_train_form_errors(make_app, data, field, words):
    app = make_app(WTF_CSRF_ENABLED=False)
    response = app.test_client().post("/train", data=data, content_type="multipart/form-data")
    assert response.status_code == 400
    parsed = page(response)
    assert words in Page.text(parsed.by_id(f"error-{field}"))
    assert "is-invalid" in parsed.by_id(field)["attrs"]["class"].split()
    if field != "name":
        assert parsed.by_id("name")["attrs"]["value"] == data["name"]
    assert job_count(app) == 0


def test_training_token(make_app):
    app = make_app(WTF_CSRF_ENABLED=False, TRAINING_TOKEN="s3cret")
    client = app.test_client()
    assert page(client.get("/train")).by_id("token") is not None
    bad = {"name": "Bad Name!"}
    for data in (bad, {**bad, "token": "wrong"}):
        response = client.post("/train", data=data)
        assert response.status_code == 403
        parsed = page(response)
        assert parsed.by_id("error-token") is not None
        assert parsed.by_id("error-name") is None
    response = client.post("/train", data={**bad, "token": "s3cret"})
    assert response.status_code == 400
    assert page(response).by_id("error-name") is not None
    assert page(response).by_id("error-token") is None
    # Remembered for this browser, and only this one.
    parsed = page(client.get("/train"))
    assert parsed.by_id("token") is None and parsed.by_id("token-remembered") is not None
    assert client.post("/train", data=bad).status_code == 400
    assert page(client.get("/styles")).by_id("import-token") is None
    other = app.test_client()
    assert page(other.get("/train")).by_id("token") is not None
    # Importing a bundle asks for it too.
    parsed = page(other.get("/styles"))
    assert parsed.by_id("import-token") is not None
    response = other.post("/styles/import", content_type="multipart/form-data", data={
        "bundle": (io.BytesIO((FIXTURES / "performance_with_dynamics_tiny.mag").read_bytes()),
                   "tiny.mag")})
    assert response.status_code == 403
    assert page(response).by_id("error-token") is not None
    styles_dir = app.extensions["perfrnn"].styles_dir
    assert not styles_dir.exists() or not list(styles_dir.iterdir())
    assert job_count(app) == 0


def test_training_post_makes_a_job_with_a_loss_chart(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    stop_workers(app)
    client = app.test_client()
    response = client.post("/train", content_type="multipart/form-data", data={
        "name": "newstyle", "preset": "quick", "kind": "auto",
        "files": [(io.BytesIO(b"MThd fake"), "one.mid"), (io.BytesIO(b"MThd fake"), "two.mid")]})
    assert response.status_code == 303
    location = response.headers["Location"]
    job_id = location.rsplit("/", 1)[1]
    job = store_of(app).get(job_id)
    assert job.kind == "training" and job.params["name"] == "newstyle"
    parsed = page(client.get(location))
    assert parsed.by_id("loss-chart")["tag"] == "canvas"
    assert Page.text(parsed.by_id("param-files")).startswith("2")
    assert parsed.by_id("cancel-button") is not None
    history = page(client.get("/train"))
    assert [e["attrs"]["data-job"] for e in history.inside("training-history",
                                                          cls="history-item")] == [job_id]
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 303
    assert wait_for_job(app, job_id, timeout=5).state == CANCELLED


def test_training_job_page_shows_progress_and_evaluation(make_app):
    app = make_app()
    store = store_of(app)
    client = app.test_client()
    job = store.create("training", {"name": "jazz", "preset": "quick", "kind": None,
                                    "uploads": ["uploads/abc/tune.mid"]})
    store.start(job.id)
    points = [[10, 4.0], [120, 2.5]]
    store.progress(job.id, 0.4, "train", {
        "stage": "train", "step": 120, "steps": 300, "loss": 2.5, "loss_points": points,
        "eta_seconds": 190, "events_per_second": 1234.4, "elapsed_seconds": 100})
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert Page.text(parsed.by_id("train-step")) == "120 / 300"
    assert Page.text(parsed.by_id("train-loss")) == "2.5000"
    assert Page.text(parsed.by_id("train-speed")) == "1234 events/s"
    assert Page.text(parsed.by_id("train-eta")) == "about 3 min left"
    assert json.loads(Page.text(parsed.by_id("loss-data"))) == points
    assert parsed.by_id("progress") is not None
    assert parsed.inside("progress", cls="progress-bar")[0]["attrs"]["aria-valuenow"] == "40"
    assert parsed.by_id("loss-chart") is not None
    assert parsed.by_id("more-like-this") is None

    store.finish(job.id, {"style": "jazz", "steps": 300, "validation_nll": 2.345,
                          "mean_overlapping_area": 0.5, "loss_points": points})
    parsed = page(client.get(f"/jobs/{job.id}"))
    assert "2.345" in Page.text(parsed.by_id("eval-nll"))
    assert "0.500" in Page.text(parsed.by_id("eval-overlap"))
    assert Page.text(parsed.by_id("eval-steps")) == "300"
    link = parsed.by_id("generate-with")
    assert link["attrs"]["href"] == "/?style=jazz"
    assert Page.text(link) == "Generate with jazz"
    assert parsed.by_id("cancel-button") is None
    assert json.loads(Page.text(parsed.by_id("loss-data"))) == points


def test_eta_and_markdown_helpers():
    from webapp.web.pages import format_eta, markdown_html

    assert format_eta(190) == "about 3 min left"
    assert format_eta(40) == "about 40 s left"
    assert format_eta(3900) == "about 1 h 5 min left"
    assert format_eta(None).startswith("estimating")
    html = str(markdown_html("# Title\n\nSome <script>alert(1)</script> text\n\n"
                             "- **bold** and `code`\n- two"))
    assert "<h3>Title</h3>" in html
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<ul>\n<li><strong>bold</strong> and <code>code</code></li>\n<li>two</li>\n</ul>" in html
    table = str(markdown_html("| source | licence |\n|---|---|\n| <b>x</b> | CC0 |"))
    assert '<table class="table table-sm">' in table
    assert "<th>source</th>\n<th>licence</th>" in table
    assert "<td>&lt;b&gt;x&lt;/b&gt;</td>\n<td>CC0</td>" in table


def test_a_model_card_cannot_run_script_or_link_to_it():
    """An imported bundle's card is anyone's text: its HTML shows as text, and
    links go only to web and mail addresses."""
    from webapp.web.pages import markdown_html

    html = str(markdown_html(
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        "A [click](javascript:alert(1)), a [shout](JavaScript:alert(2)), "
        "a [file](file:///etc/passwd), an ![image](javascript:alert(3)), "
        "<javascript:alert(4)> and [the data](https://example.org/data)."))
    assert "<script" not in html and "<img" not in html and "&lt;script&gt;" in html
    assert "href" not in html.replace('href="https://example.org/data"', "")
    assert '<a href="https://example.org/data" rel="nofollow noopener noreferrer">the data</a>' \
        in html


# ----- styles --------------------------------------------------------------------------

def test_styles_page_shows_a_card_per_style(make_app):
    parsed = page(make_app().test_client().get("/styles"))
    assert parsed.by_id("styles") is not None
    cards = {c["attrs"]["data-style"]: c for c in parsed.select(cls="style-card")}
    assert set(cards) == {"piano", "rock"}
    rock = Page.text(cards["rock"])
    assert "shipped" in rock and "MB" in rock
    assert "harmony (GM 29)" in rock and "drums (drum kit 0)" in rock
    assert "Distortion Guitar (GM 30)" in rock
    assert "CC0" in rock and "random weights" in rock
    assert "a small test band" in rock
    assert "rock (test)" in rock  # the model card
    assert "<h3>rock (test)</h3>" in parsed.html
    assert parsed.select("a", cls="download-bundle", href="/api/v1/styles/rock/bundle")
    assert parsed.select("a", cls="download-bundle", href="/api/v1/styles/piano/bundle")
    assert "key and density" in Page.text(cards["piano"])
    for element_id in ("import-form", "bundle", "import-name", "import-button"):
        assert parsed.by_id(element_id) is not None, element_id
    assert parsed.by_id("import-form")["attrs"]["action"] == "/styles/import"


def test_import_a_bundle(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    client = app.test_client()
    data = (FIXTURES / "performance_with_dynamics_tiny.mag").read_bytes()
    response = client.post("/styles/import", content_type="multipart/form-data",
                           data={"bundle": (io.BytesIO(data), "performance_with_dynamics_tiny.mag"),
                                 "name": ""})
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/styles")
    parsed = page(client.get("/styles"))
    assert "Imported performance_with_dynamics_tiny" in Page.text(parsed.by_id("flashes"))
    card = parsed.select(cls="style-card", data_style="performance_with_dynamics_tiny")
    assert card and "your style" in Page.text(card[0])
    # The imported style can be chosen on the generate page.
    assert page(client.get("/")).select("option", value="performance_with_dynamics_tiny")
    # The same name again is refused.
    response = client.post("/styles/import", content_type="multipart/form-data",
                           data={"bundle": (io.BytesIO(data), "again.mag"),
                                 "name": "performance_with_dynamics_tiny"})
    assert response.status_code == 400
    assert "already" in Page.text(page(response).by_id("error-name"))


@pytest.mark.parametrize("data, field, words", [
    ({"bundle": (io.BytesIO(b"garbage bytes"), "x.mag")}, "bundle", "not a bundle that loads"),
    ({"bundle": (io.BytesIO(b"garbage"), "x.zip")}, "bundle", "unsupported"),
    ({}, "bundle", "choose a file"),
    ({"bundle": (io.BytesIO(b"garbage"), "x.mag"), "name": "No Good"}, "name", "lower-case"),
])
def test_import_errors(make_app, data, field, words):
    app = make_app(WTF_CSRF_ENABLED=False)
    response = app.test_client().post("/styles/import", data=data,
                                      content_type="multipart/form-data")
    assert response.status_code == 400
    parsed = page(response)
    assert words in Page.text(parsed.by_id(f"error-{field}"))
    assert "is-invalid" in parsed.by_id(field if field == "bundle" else "import-name")[
        "attrs"]["class"].split()
    styles_dir = app.extensions["perfrnn"].styles_dir
    assert not styles_dir.exists() or not list(styles_dir.iterdir())
    assert {c["attrs"]["data-style"] for c in parsed.select(cls="style-card")} == {"piano", "rock"}


# ----- the frame --------------------------------------------------------------------------

def test_static_files_and_the_frame(make_app):
    client = make_app().test_client()
    script = client.get("/static/app.js")
    assert script.status_code == 200
    assert "EventSource" in script.get_data(as_text=True)
    script.close()
    style = client.get("/static/app.css")
    assert style.status_code == 200
    style.close()
    parsed = page(client.get("/styles"))
    links = {a["attrs"].get("href") for a in parsed.select("a")}
    assert {"/", "/train", "/styles", "/api/v1/docs"} <= links
    sources = [s["attrs"]["src"] for s in parsed.select("script") if s["attrs"].get("src")]
    sheets = [s["attrs"]["href"] for s in parsed.select("link", rel="stylesheet")]
    assert "/static/app.js" in sources
    for url in sources + sheets:
        assert url.startswith("/"), url  # nothing from other servers
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()
    assert parsed.select("footer")
