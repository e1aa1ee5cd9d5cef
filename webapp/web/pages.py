"""The website's HTML pages: generate, job progress and results, train, styles.

Every form posts back to its own page; errors are shown next to their
fields. The pages' JavaScript (static/app.js) follows a job through the
JSON API (/api/v1/jobs/<id> and its /events stream).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import re
from datetime import UTC, datetime
from pathlib import Path

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from markdown_it import MarkdownIt
from markupsafe import Markup

from perfrnn import audio
from perfrnn.errors import PerfRNNError
from training.kinds import KIND_DESCRIPTIONS
from webapp.jobs.downloads import server_audio
from webapp.jobs.queues import QueueFull
from webapp.jobs.store import CANCELLED
from webapp.services import get_queue, get_services
from webapp.web.owner import may_see, owner_id
from webapp.web.schema import BUNDLE_IMPORT, GENERATION, STREAM, TRAINING
from webapp.web.security import training_token_is_right
from webapp.web.validation import (
    ValidationError,
    style_types,
)

bp = Blueprint("pages", __name__)

API = "/api/v1"
HISTORY_LIMIT = 10
KIND_CHOICES = tuple((kind, KIND_DESCRIPTIONS[kind].label, KIND_DESCRIPTIONS[kind].page_note)
                     for kind in TRAINING["kind"].choices)
"""The train page's kind menu: (value, label, note) for auto and each corpus kind."""
FORM_LABELS = {"song": "Song: intro, sections, ending", "loop": "Loop: main section only"}
"""The generate form's form menu, by `perfrnn.options.REQUEST_FORMS`."""
CHORD_EXAMPLES = ("C G Am F", "Am F C G", "Dm7 G7 Cmaj7 Cmaj7", "C | % | F | G")
KEYS = ("C", "G", "D", "A", "E", "B", "F#", "Db", "Ab", "Eb", "Bb", "F",
        "Am", "Em", "Bm", "F#m", "C#m", "G#m", "Ebm", "Bbm", "Fm", "Cm", "Gm", "Dm")


# ----- helpers for templates ----------------------------------------------------

def api_url(job_id: str, what: str, variation: int | None = None) -> str:
    """Address of a job's file in the JSON API (midi, wav, pianoroll)."""
    url = f"{API}/generations/{job_id}/{what}"
    return url if variation is None else f"{url}?variation={int(variation)}"


@bp.app_template_global("api_url")
def _api_url(job_id, what, variation=None):
    return api_url(job_id, what, variation)


@bp.app_template_filter("num")
def format_number(value) -> str:
    """30.0 -> "30", 1.05 -> "1.05"; blank for None."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6g}"


@bp.app_template_filter("duration")
def format_duration(seconds) -> str:
    """A length of music: "30 s", "2 min", "1 min 30 s"."""
    if seconds is None:
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return f"{format_number(round(seconds, 1))} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


@bp.app_template_filter("hours")
def format_hours(hours) -> str:
    """A retention time: "7 days", "1 day", "36 hours"."""
    hours = float(hours or 0)
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day" + ("s" if days != 1 else "")
    return f"{format_number(hours)} hour" + ("s" if hours != 1 else "")


@bp.app_template_filter("eta")
def format_eta(seconds) -> str:
    """Time left, loosely: "about 40 s left", "about 3 min left", "about 1 h 5 min left"."""
    if seconds is None or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return "estimating the time left..."
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"about {max(5, int(round(seconds / 5) * 5))} s left"
    if seconds < 3600:
        return f"about {max(1, round(seconds / 60))} min left"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"about {hours} h" + (f" {minutes} min" if minutes else "") + " left"


@bp.app_template_filter("megabytes")
def format_megabytes(size_bytes) -> str:
    megabytes = (size_bytes or 0) / 1e6
    return f"{megabytes:.1f} MB" if megabytes >= 1 else f"{megabytes:.2f} MB"


@bp.app_template_filter("timestamp")
def format_timestamp(value) -> str:
    if not value:
        return ""
    return datetime.fromtimestamp(float(value), UTC).strftime("%Y-%m-%d %H:%M UTC")


CARD_LINK_SCHEMES = ("http", "https", "mailto")
"""The schemes a model card's links and images may use (others are left as text)."""


@functools.cache
def _card_markdown() -> MarkdownIt:
    """CommonMark with tables, raw HTML off (it is shown as text), and links
    only to CARD_LINK_SCHEMES or within the site."""
    markdown = MarkdownIt("commonmark", {"html": False}).enable("table")
    refuses_by_default = markdown.validateLink

    def safe_link(url: str) -> bool:
        scheme = re.match(r"([a-z][a-z0-9+.-]*):", url.strip().lower())
        return refuses_by_default(url) and (scheme is None
                                            or scheme.group(1) in CARD_LINK_SCHEMES)

    markdown.validateLink = safe_link
    return markdown


def markdown_html(text: str | None) -> Markup:
    """A model card (markdown, from the bundle: anyone's text) as safe HTML,
    rendered by markdown-it-py: raw HTML is escaped, links go only to
    CARD_LINK_SCHEMES, headings are demoted (# becomes <h3>) to sit inside a
    card, and tables take Bootstrap's look."""
    markdown = _card_markdown()
    tokens = markdown.parse(text or "")
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(int(token.tag[1:]) + 2, 6)}"
        elif token.type == "table_open":
            token.attrSet("class", "table table-sm")
        elif token.type == "inline":
            for child in token.children or ():
                if child.type == "link_open":
                    child.attrSet("rel", "nofollow noopener noreferrer")
    return Markup(markdown.renderer.render(tokens, markdown.options, {}))


# ----- styles ---------------------------------------------------------------------

def type_label(entry: dict) -> str:
    name = entry.get("name") or "Program"
    return f"{name} (GM {entry['program']})"


def style_info(style) -> dict:
    """What the generate form needs to know about a loaded style."""
    bundle = style.bundle
    meta = bundle.metadata
    types = [dict(entry, label=type_label(entry)) for entry in style_types(bundle)]
    return {
        "name": style.name,
        "description": meta.description,
        "types": types,
        "default_bpm": meta.default_bpm,
        "conditioned": bool(bundle.encoding.control_signals),
        "follows_chords": bundle.encoding.reads_song,
        "metric": bundle.config.is_metric,
        "default_controls": dict(meta.default_controls or {}),
        "parts": [part_label(track) for track in meta.played_tracks],
        # Styles this one can blend with: the rest of its base model's styles.
        "blend_styles": [name for name in bundle.config.style_names
                         if name not in meta.style_mix],
        "style_mix": dict(meta.style_mix),
    }


def page_blend(values: dict, registry) -> str | None:
    """The page's "blend with" and "amount" (percent) as the API's blend text,
    the style's own mix making up the rest; None when nothing is blended in."""
    other = str(values.get("blend_with") or "").strip()
    amount = str(values.get("blend_amount") or "0").strip()
    if not other or amount in ("0", ""):
        return None
    try:
        own = registry.get(str(values.get("style"))).bundle.metadata.style_mix
        share = float(amount)
    except (PerfRNNError, ValueError):
        return f"{other}:{amount}"  # generation_params says what is wrong with it
    total = sum(own.values()) or 1.0
    rest = ",".join(f"{name}:{weight / total * (100 - share):g}" for name, weight in own.items())
    return f"{rest},{other}:{share:g}" if rest and share < 100 else f"{other}:{share:g}"


def part_label(track) -> str:
    if track.is_drum:
        return f"{track.name} (drum kit {track.program})"
    return f"{track.name} (GM {track.program})"


def loadable_styles() -> tuple[list[dict], list]:
    """(infos of the styles that load, the styles that do not)."""
    infos, broken = [], []
    for style in get_services().registry.styles():
        if style.bundle is None:
            broken.append(style)
        else:
            infos.append(style_info(style))
    return infos, broken


def style_card(style) -> dict:
    """Everything the styles page shows about one style."""
    card = {"name": style.name, "origin": "shipped" if style.origin == "shipped"
            else "your style", "size_bytes": style.size_bytes, "error": style.error}
    if style.bundle is None:
        return card
    bundle, meta = style.bundle, style.bundle.metadata
    metrics = meta.metrics or {}
    figures = []
    if metrics.get("validation_nll_per_event") is not None:
        figures.append(("Validation NLL per event", metrics["validation_nll_per_event"],
                        "lower is better"))
    if metrics.get("mean_overlapping_area") is not None:
        figures.append(("Mean overlapping area", metrics["mean_overlapping_area"],
                        "0 to 1; how closely generated music matches the training music's "
                        "statistics (higher is closer)"))
    beat = metrics.get("beat") if isinstance(metrics.get("beat"), dict) else {}
    on_grid = beat.get("on_grid") if isinstance(beat.get("on_grid"), dict) else {}
    if isinstance(on_grid.get("generated"), (int, float)):
        real = on_grid.get("real")
        real_text = f"{real:.2f}" if isinstance(real, (int, float)) else "not measured"
        figures.append(("Drum hits on the beat grid", on_grid["generated"],
                        "share on the 1/16 or triplet grid of the file's own tempo "
                        f"(real music: {real_text})"))
    fidelity = metrics.get("genre_fidelity")
    if fidelity is not None:
        figures.append(("Genre fidelity", fidelity,
                        "how often a classifier recognises generated music as this style"))
    card.update({
        "description": meta.description,
        "parts": [part_label(track) for track in meta.played_tracks],
        "types": [type_label(entry) for entry in style_types(bundle)],
        "default_bpm": meta.default_bpm,
        "metric": bundle.config.is_metric,
        "time_signature": meta.time_signature,
        "conditioned": bool(bundle.encoding.control_signals),
        "default_controls": dict(meta.default_controls or {}),
        "metrics": figures,
        "provenance": [entry for entry in meta.provenance if isinstance(entry, dict)],
        "training": {key: value for key, value in (meta.training or {}).items()
                     if isinstance(value, (str, int, float)) and not isinstance(value, bool)},
        "card_html": markdown_html(meta.card) if meta.card else None,
        "layers": "x".join(str(size) for size in bundle.config.rnn_layer_sizes),
    })
    return card


# ----- the training token ---------------------------------------------------------

def _token_digest(token: str) -> str:
    """What the session keeps to remember a right token: an HMAC keyed with the
    server's secret, so the (readable) cookie gives nothing to guess the token
    from offline, and changing the token forgets every browser."""
    key = str(current_app.config["SECRET_KEY"]).encode("utf-8")
    return hmac.new(key, b"training-token:" + token.encode("utf-8"), hashlib.sha256).hexdigest()


def token_needed() -> bool:
    """True when TRAINING_TOKEN is set and this browser has not given it yet."""
    expected = current_app.config.get("TRAINING_TOKEN")
    if not expected:
        return False
    remembered = session.get("training_token")
    return not (isinstance(remembered, str)
                and hmac.compare_digest(remembered, _token_digest(str(expected))))


def check_token(form) -> str | None:
    """None when training is allowed (no token set, remembered, or given right);
    else the message to show next to the token field."""
    if not token_needed():
        return None
    given = str(form.get("token") or "").strip()
    if not given:
        return "this server asks for its training token; enter it here"
    if not training_token_is_right(given):
        return "that is not this server's training token"
    session["training_token"] = _token_digest(given)
    return None


# ----- generate (home) ------------------------------------------------------------

def _generate_page(values: dict, errors: dict | None = None, status: int = 200,
                   busy: str | None = None, notice: str | None = None):
    infos, broken = loadable_styles()
    names = [info["name"] for info in infos]
    chosen = values.get("style") if values.get("style") in names else (names[0] if names
                                                                       else None)
    selected = next((info for info in infos if info["name"] == chosen), None)
    services = get_services()
    history = services.store.recent(owner_id(), "generation", HISTORY_LIMIT)
    errors = dict(errors or {})
    other_errors = {field: message for field, message in errors.items()
                    if field not in GENERATION.page_fields}
    if "seconds" in other_errors:  # the length given as seconds: show it at the length
        errors.setdefault("length", other_errors.pop("seconds"))
    return render_template(
        "generate.html", styles=infos, broken=broken, selected=selected, values=values,
        errors=errors, other_errors=other_errors, history=history, busy=busy, notice=notice,
        retention_hours=current_app.config.get("RESULT_RETENTION_HOURS"),
        fields=GENERATION, primer_accept=",".join(GENERATION["primer"].suffixes),
        keys=KEYS, forms=FORM_LABELS, chord_examples=CHORD_EXAMPLES), status


@bp.route("/", methods=["GET", "POST"])
def generate():
    if request.method == "GET":
        values = GENERATION.page_defaults()
        notice = None
        wanted = request.args.get("style", "").strip()
        if wanted:
            values["style"] = wanted
            if wanted not in get_services().registry.names():
                notice = f"There is no style called {wanted!r}; choose one below."
        return _generate_page(values, notice=notice)

    from webapp.web.submit import request_share, submit_generation
    from webapp.web.validation import generation_params

    services = get_services()
    values = request.form.to_dict()
    try:
        params = generation_params(dict(values, blend=page_blend(values, services.registry)),
                                   services.registry)
        job = submit_generation(services, get_queue(), params, owner_id(),
                                primer=request.files.get("primer"), **request_share())
    except ValidationError as error:
        return _generate_page(values, error.errors, 413 if error.status == 413 else 400)
    except QueueFull as error:
        response = _generate_page(values, status=503, busy=_busy_message(error))
        return response[0], 503, {"Retry-After": str(error.retry_after)}
    return redirect(url_for(".job", job_id=job.id), 303)


def _busy_message(error: QueueFull) -> str:
    return (f"The server is busy with other jobs right now; try again in "
            f"{error.retry_after} s.")


# ----- jobs -----------------------------------------------------------------------

def _generation_summary(job) -> list[tuple[str, str]]:
    """(label, value) rows of a generation job's parameters."""
    params = job.params
    style_name = params.get("style", "")
    type_text = "the style's own instruments"
    if params.get("program") is not None:
        type_text = f"GM {params['program']}"
        try:
            bundle = get_services().registry.get(style_name).bundle
            entry = next((entry for entry in style_types(bundle)
                          if entry["program"] == params["program"]), None)
            if entry is not None:
                type_text = type_label(entry)
        except Exception:  # a style that is gone or broken: the number will do
            pass
        if params.get("part"):
            type_text += f" for the {params['part']} part"
    rows = [("Style", style_name), ("Type", type_text),
            ("Length", f"{params['bars']} bars" if params.get("bars")
             else format_duration(params.get("seconds"))),
            ("Tempo", f"{format_number(params.get('bpm'))} BPM" if params.get("bpm")
             else "the style's default"),
            ("Creativity", f"{float(params['temperature']):.2f}"
             if params.get("temperature") is not None else "1.00"),
            ("Variations", format_number(params.get("variations", 1))),
            ("Quality", params.get("quality", "fast")),
            ("Seed", str(params.get("seed", "")))]
    if params.get("key") or params.get("song_key"):
        rows.append(("Key", params.get("key") or params["song_key"]))
    if params.get("chords"):
        rows.append(("Chords", " ".join(params["chords"])))
    if params.get("form"):
        rows.append(("Form", FORM_LABELS.get(params["form"], params["form"])))
    if params.get("density") is not None:
        rows.append(("Density", f"{format_number(params['density'])} notes per second"))
    rows.append(("Quantised", "yes" if params.get("quantize") else "no"))
    if params.get("loop"):
        rows.append(("Loop", "yes: the last bar leads back into the first"))
    if params.get("feel", "straight") != "straight":
        rows.append(("Feel", params["feel"]))
    if params.get("primer"):
        rows.append(("Primer", Path(str(params["primer"])).name))
    return rows


def _more_like_this(job) -> dict:
    """The generate form's fields that repeat a job, with a blank seed."""
    params = job.params
    fields = {"style": params.get("style", ""),
              "type": "" if params.get("program") is None else str(params["program"]),
              "length": format_number(params.get("bars") or params.get("seconds")),
              "unit": "bars" if params.get("bars") else "seconds",
              "feel": params.get("feel", "straight"),
              "bpm": format_number(params.get("bpm")),
              "temperature": format_number(params.get("temperature")),
              "variations": format_number(params.get("variations", 1)), "seed": "",
              "quality": params.get("quality", "fast"),
              "key": params.get("key") or params.get("song_key") or "",
              "chords": " ".join(params.get("chords") or ()),
              "form": params.get("form") or "",
              "density": format_number(params.get("density"))}
    for flag in ("quantize", "loop"):
        if params.get(flag):
            fields[flag] = "on"
    return fields


def _get_job(job_id: str):
    job = get_services().store.get(job_id)
    if job is None or not may_see(job):  # another client's job is not there for you
        abort(404, description="there is no job with this id (it may have been removed)")
    return job


@bp.route("/jobs/<job_id>")
def job(job_id: str):
    job = _get_job(job_id)
    context = {"job": job, "job_data": job.to_dict(),
               "retention_hours": current_app.config.get("RESULT_RETENTION_HOURS")}
    if job.kind == "generation":
        if job.result:  # audio is made here, on download: this server's word counts
            audio, audio_message = server_audio(get_services())
            job.result = {**job.result, "audio": audio, "audio_message": audio_message}
        context["heading"] = f"Music in the style \"{job.params.get('style', '')}\""
        context["summary"] = _generation_summary(job)
        context["more_like_this"] = _more_like_this(job)
    else:
        context["heading"] = f"Training the style \"{job.params.get('name', '')}\""
        preset_name = job.params.get("preset")
        preset = get_services().training_presets.get(preset_name) if preset_name else None
        context["preset"] = preset
        context["uploads"] = [Path(str(key)).name for key in job.params.get("uploads", [])]
        context["loss_points"] = ((job.result or {}).get("loss_points")
                                  or job.detail.get("loss_points") or [])
    return render_template("job.html", **context)


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
def cancel_job(job_id: str):
    job = _get_job(job_id)
    if job.finished:
        flash(f"This job had already finished ({job.state}).", "info")
    else:
        job = get_services().store.request_cancel(job_id)
        if job.state == CANCELLED:
            flash("Cancelled.", "info")
        elif job.finished:  # it finished while the cancel was on its way
            flash(f"This job had already finished ({job.state}).", "info")
        else:
            flash("Asked the job to stop; it stops within a few seconds.", "info")
    return redirect(url_for(".job", job_id=job_id), 303)


# ----- train ----------------------------------------------------------------------

def _train_page(values: dict, errors: dict | None = None, status: int = 200,
                busy: str | None = None):
    presets = get_services().training_presets
    history = get_services().store.recent(owner_id(), "training", HISTORY_LIMIT)
    errors = dict(errors or {})
    other_errors = {field: message for field, message in errors.items()
                    if field not in TRAINING.page_fields}
    return render_template(
        "train.html", presets=presets, kinds=KIND_CHOICES, values=values, errors=errors,
        other_errors=other_errors, busy=busy, history=history,
        token_required=bool(current_app.config.get("TRAINING_TOKEN")),
        token_needed=token_needed(), files_accept=",".join(TRAINING["files"].suffixes)), status


@bp.route("/train", methods=["GET", "POST"])
def train():
    if request.method == "GET":
        return _train_page({"preset": "quick" if "quick" in get_services().training_presets else "",
                            "kind": "auto", "start": "base"})

    from webapp.web.submit import request_share, submit_training
    from webapp.web.validation import training_params

    values = request.form.to_dict()
    values.pop("token", None)
    token_error = check_token(request.form)
    if token_error:
        return _train_page(values, {"token": token_error}, 403)
    services = get_services()
    uploads = [upload for upload in request.files.getlist("files") if upload and upload.filename]
    errors: dict[str, str] = {}
    try:
        params = training_params(request.form, services.registry, services.training_presets)
    except ValidationError as error:
        errors.update(error.errors)
    if not uploads:
        errors.setdefault("files", "choose some MIDI, MusicXML or ABC files, or a zip")
    if errors:
        return _train_page(values, errors, 400)
    try:
        job = submit_training(services, get_queue(), params, uploads, owner_id(),
                              **request_share())
    except ValidationError as error:
        return _train_page(values, error.errors, 400)
    except QueueFull as error:
        response = _train_page(values, status=503, busy=_busy_message(error))
        return response[0], 503, {"Retry-After": str(error.retry_after)}
    return redirect(url_for(".job", job_id=job.id), 303)


# ----- styles ---------------------------------------------------------------------

def _styles_page(values: dict | None = None, errors: dict | None = None, status: int = 200):
    styles = [style_card(style) for style in get_services().registry.styles()]
    errors = dict(errors or {})
    other_errors = {field: message for field, message in errors.items()
                    if field not in BUNDLE_IMPORT.page_fields}
    return render_template(
        "styles.html", styles=styles, values=values or {}, errors=errors,
        other_errors=other_errors, token_required=bool(current_app.config.get(
            "TRAINING_TOKEN")), token_needed=token_needed()), status


@bp.route("/radio")
def radio():
    """Endless radio in a style: the page plays /api/v1/streams."""
    infos, _ = loadable_styles()
    return render_template("radio.html", styles=infos, fields=STREAM)


SOUNDFONT_MAX_AGE = 24 * 3600  # a day; its ETag (file time and size) says when it changed


@bp.route("/soundfont.sf2")
def soundfont():
    """The General MIDI soundfont the server renders audio with (one rule:
    perfrnn.audio.soundfont_path), so the page's player sounds the same."""
    path = audio.soundfont_path()
    if path is None:
        abort(404, description="this server has no soundfont: install pretty_midi, or set "
              f"{audio.SOUNDFONT_ENV} to the path of an .sf2 file")
    response = send_file(path, mimetype="audio/x-soundfont", conditional=True, etag=True,
                         max_age=SOUNDFONT_MAX_AGE, download_name="soundfont.sf2")
    response.cache_control.public = True
    return response


@bp.route("/styles")
def styles():
    return _styles_page()


@bp.route("/styles/import", methods=["POST"])
def import_style():
    from webapp.web.submit import import_bundle

    values = {"name": request.form.get("name", "")}
    token_error = check_token(request.form)
    if token_error:
        return _styles_page(values, {"token": token_error}, 403)
    name = (request.form.get("name") or "").strip() or None
    try:
        style = import_bundle(get_services(), request.files.get("bundle"), name)
    except ValidationError as error:
        return _styles_page(values, error.errors, 413 if error.status == 413 else 400)
    flash(f"Imported {style}", "success")
    return redirect(url_for(".styles") + f"#style-{style}", 303)
