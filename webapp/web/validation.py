"""Checking a request's parameters: one set of rules for the form and the API.

Each function takes the submitted values (form fields or JSON) and returns
clean job parameters, or raises ValidationError with a message per field
that says what to change.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from perfrnn.chords import MAX_PROGRESSION_BARS, key_transposition, parse_progression
from perfrnn.errors import PerfRNNError
from perfrnn.metre import parse_metre
from perfrnn.options import (
    MAX_SEED,
    GenerationOptions,
    length_plan,
    parse_blend,
    parse_form,
    pitch_histogram_for_key,
)
from perfrnn.registry import StyleRegistry, check_style_name
from training.pipeline import CORPUS_KINDS
from webapp.web.schema import (
    BARS_UNIT,
    GENERATION,
    LENGTH_UNITS,
    MAX_LENGTH_SECONDS,
    MIN_LENGTH_SECONDS,
    STREAM,
    STREAM_CHANGE,
    TRAINING,
    TRAINING_STARTS,
    Field,
)


class ValidationError(Exception):
    """Bad parameters: `errors` maps each field to what is wrong with it;
    `status` is 422, or 413 for an upload over its field's size limit."""

    def __init__(self, errors: dict[str, str], status: int = 422):
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors
        self.status = status


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value, field: str, errors: dict, low: float, high: float, what: str,
            whole: bool = False):
    if isinstance(value, bool):
        errors[field] = f"{what} must be a number"
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        errors[field] = f"{what} must be a number, got {value!r}"
        return None
    except OverflowError:  # a JSON integer with hundreds of digits
        number = math.inf
    if not math.isfinite(number) or not low <= number <= high:
        errors[field] = f"{what} must be between {low:g} and {high:g}"
        return None
    if whole:
        if number != int(number):
            errors[field] = f"{what} must be a whole number"
            return None
        return int(number)
    return number


def _field_number(value, field: Field, errors: dict, name: str | None = None):
    """`value` as `field`'s number within its range, or None with an error
    under `name` (default the field's own)."""
    return _number(value, name or field.name, errors, field.minimum, field.maximum,
                   field.label, whole=field.type == "integer")


def _numbers(values, request, names: tuple[str, ...], params: dict, errors: dict) -> None:
    """Sets params[name] for each of `names` given (or with a default) in
    `values`, checked against its field in `request`; errors name the others."""
    for name in names:
        field, value = request[name], values.get(name)
        if _blank(value) and field.default is None:
            continue
        number = _field_number(field.default if _blank(value) else value, field, errors)
        if number is not None:
            params[name] = number


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "on", "yes", "y")
    return bool(value)


def style_types(bundle) -> list[dict]:
    """The "type" choices of a style: its bundle's list, each with its part."""
    return [dict(entry) for entry in bundle.metadata.types
            if isinstance(entry, dict) and isinstance(entry.get("program"), int)]


def generation_params(values, registry: StyleRegistry) -> dict:
    """Clean parameters of a generation job.

    Fields (`webapp.web.schema.GENERATION`): style, type (a GM program number
    or a type's name), length with unit ("seconds", "minutes" or "bars") or
    seconds or bars, bpm, temperature, variations, seed (blank: a random one,
    chosen now so it can be shown), quality (candidates per variation), key
    (a conditioned style's key control, or the key of the progressions of a
    style that follows chords: params "key" or "song_key"), density
    (conditioned styles only), chords (styles that follow chords), form
    ("song" or "loop"), quantize, loop (needs a length in bars), feel, blend
    ("rock:70,electronic:30", styles made from a base model only).
    """
    errors: dict[str, str] = {}
    params: dict = {}
    bundle = _style(values.get("style"), registry, params, errors)
    _length(values, params, errors)
    if not _blank(values.get("bpm")):
        bpm = _field_number(values.get("bpm"), GENERATION["bpm"], errors)
        if bpm is not None:
            params["bpm"] = bpm
    elif bundle is not None:
        params["bpm"] = bundle.metadata.default_bpm
    if bundle is not None and "bpm" in params and "length" not in errors:
        _check_length(bundle, params, errors)

    params["loop"] = _flag(values.get("loop", False))
    if params["loop"] and "bars" not in params and "length" not in errors:
        errors["loop"] = "a loop is a whole number of bars: give the length in bars"
    for name in ("feel", "quality"):
        field = GENERATION[name]
        choice = str(values.get(name) or field.default).strip().lower()
        if choice not in field.choices:
            errors[name] = f"{name} must be one of: {', '.join(field.choices)}"
        else:
            params[name] = choice
    _numbers(values, GENERATION, ("temperature", "variations"), params, errors)
    if _blank(values.get("seed")):
        params["seed"] = random.SystemRandom().randrange(MAX_SEED)
    else:
        seed = _field_number(values.get("seed"), GENERATION["seed"], errors)
        if seed is not None:
            params["seed"] = seed
    params["quantize"] = _flag(values.get("quantize", False))
    if not _blank(values.get("form")):
        try:
            params["form"] = parse_form(values.get("form"))
        except PerfRNNError as error:
            errors["form"] = str(error)
    if bundle is not None:
        _check_type(values.get("type"), bundle, params, errors)
        _check_controls(values, bundle, params, errors)
        _check_key(values.get("key"), bundle, params, errors, songs=True)
        _check_chords(values.get("chords"), bundle, params, errors)
    if errors:
        raise ValidationError(errors)
    return params


def stream_params(values, registry: StyleRegistry) -> dict:
    """Clean parameters of a radio stream (`webapp.web.schema.STREAM`): style,
    type, bpm, temperature, seed (blank: a random one), key and density
    (conditioned styles only)."""
    errors: dict[str, str] = {}
    params: dict = {}
    bundle = _style(values.get("style"), registry, params, errors)
    _numbers(values, STREAM, ("bpm", "temperature", "seed"), params, errors)
    if "seed" not in params and "seed" not in errors:
        params["seed"] = random.SystemRandom().randrange(MAX_SEED)
    if bundle is not None:
        params.setdefault("bpm", bundle.metadata.default_bpm)
        _check_type(values.get("type"), bundle, params, errors)
        _check_controls(values, bundle, params, errors)
        _check_key(values.get("key"), bundle, params, errors, songs=False)
    if errors:
        raise ValidationError(errors)
    return params


def stream_change(values, conditioned: bool) -> dict:
    """Clean new settings of a playing stream (`webapp.web.schema.STREAM_CHANGE`)."""
    errors: dict[str, str] = {}
    params: dict = {}
    _numbers(values, STREAM_CHANGE, ("bpm", "temperature", "density"), params, errors)
    if not _blank(values.get("key")):
        try:
            pitch_histogram_for_key(str(values.get("key")))
            params["key"] = str(values.get("key")).strip()
        except PerfRNNError as error:
            errors["key"] = str(error)
    for name in ("key", "density"):
        if name in params and not conditioned:
            errors[name] = "this style takes no key or density"
    if not params and not errors:
        errors["bpm"] = "give a setting to change: bpm, temperature, key or density"
    if errors:
        raise ValidationError(errors)
    return params


def _style(name, registry: StyleRegistry, params: dict, errors: dict):
    """The chosen style's bundle (None with an error if there is none)."""
    if _blank(name):
        errors["style"] = "choose a style"
        return None
    try:
        bundle = registry.get(str(name)).bundle
    except PerfRNNError as error:
        errors["style"] = str(error)
        return None
    params["style"] = str(name)
    return bundle


def _length(values, params: dict, errors: dict) -> None:
    """Sets params "seconds" or "bars" from "length" in "unit", or "bars", or "seconds"."""
    unit = str(values.get("unit") or GENERATION["unit"].default).strip().lower()
    if unit not in GENERATION["unit"].choices:
        errors["unit"] = "the length's unit must be seconds, minutes or bars"
    if not _blank(values.get("bars")) and not (_blank(values.get("seconds"))
                                               and _blank(values.get("length"))):
        errors["bars"] = "give the length once: in bars, or in seconds, not both"
    elif not _blank(values.get("length")) and unit == BARS_UNIT or not _blank(values.get("bars")):
        field = "length" if _blank(values.get("bars")) else "bars"
        bars = _field_number(values.get(field), GENERATION["bars"], errors, field)
        if bars is not None:
            params["bars"] = bars
    elif not _blank(values.get("length")):
        if unit in LENGTH_UNITS:
            length = _number(values.get("length"), "length", errors, 0, math.inf, "length")
            if length is not None:
                seconds = length * LENGTH_UNITS[unit]
                if not MIN_LENGTH_SECONDS <= seconds <= MAX_LENGTH_SECONDS:
                    errors["length"] = (f"length must be from {MIN_LENGTH_SECONDS} seconds to "
                                        f"{MAX_LENGTH_SECONDS // 60} minutes")
                else:
                    params["seconds"] = seconds
    else:
        field = GENERATION["seconds"]
        number = _field_number(values.get("seconds", field.default), field, errors)
        if number is not None:
            params["seconds"] = number


def _check_key(value, bundle, params: dict, errors: dict, songs: bool) -> None:
    """Sets params "key", a conditioned style's key control; or, with `songs`
    (a generation), "song_key" for a style that follows chords without a key
    control: the key its own progressions are played in. Refuses a key for
    other styles."""
    if _blank(value):
        return
    text = str(value).strip()
    encoding = bundle.encoding
    try:
        if encoding.control_signals:
            pitch_histogram_for_key(text)
            params["key"] = text
        elif songs and encoding.reads_song:
            key_transposition(text)
            params["song_key"] = text
        else:
            errors["key"] = f"style {params['style']!r} takes no key; leave it blank"
    except PerfRNNError as error:
        errors["key"] = str(error)


def _check_chords(value, bundle, params: dict, errors: dict) -> None:
    """Sets params "chords", a chord symbol per bar (`parse_progression`), for
    a style that follows chords."""
    if _blank(value):
        return
    longest = GENERATION["chords"].max_length
    if not isinstance(value, str):
        errors["chords"] = "write the chords as text, such as \"C G Am F\""
    elif len(value) > longest:
        errors["chords"] = (f"the chords are {len(value)} characters long; give at most "
                            f"{longest} ({MAX_PROGRESSION_BARS} bars, which repeat through "
                            "the piece)")
    else:
        try:
            chords = parse_progression(value)
        except PerfRNNError as error:
            errors["chords"] = str(error)
            return
        if bundle.encoding.reads_song:
            params["chords"] = list(chords)
        else:
            errors["chords"] = (f"style {params['style']!r} does not follow chords; leave "
                                "them blank")


def _check_controls(values, bundle, params: dict, errors: dict) -> None:
    """Sets params "density" (conditioned styles) and "blend" (styles of a base
    model), refusing them for styles that cannot take them."""
    conditioned = bool(bundle.encoding.control_signals)
    if not _blank(values.get("density")) and not conditioned:
        errors["density"] = f"style {params['style']!r} takes no density; leave it blank"
    if conditioned and not _blank(values.get("density")):
        density = _field_number(values.get("density"), GENERATION["density"], errors)
        if density is not None:
            params["density"] = density
    if not _blank(values.get("blend")) and not bundle.config.has_style_input:
        errors["blend"] = (f"style {params['style']!r} is not made from a base model, so "
                           "it cannot blend styles; leave the blend out")
    elif not _blank(values.get("blend")):
        try:
            blend = parse_blend(str(values.get("blend")))
            bundle.encoding.style_vector(dict(blend))  # styles the model knows
            params["blend"] = [[name, weight] for name, weight in blend]
        except PerfRNNError as error:
            errors["blend"] = str(error)


def _check_length(bundle, params: dict, errors: dict) -> None:
    """Refuses lengths the sampler would (perfrnn's one length rule): over ten
    minutes of file, or, for a style stretched to the tempo, over ten minutes
    of its own music."""
    options = GenerationOptions(seconds=params.get("seconds", 30), bars=params.get("bars"),
                                bpm=params["bpm"])
    try:
        metre = parse_metre(bundle.metadata.time_signature)
        length_plan(options, params["bpm"], bundle.metadata.default_bpm, metre, bundle.encoding)
    except PerfRNNError as error:
        errors["length"] = str(error)


def _check_type(value, bundle, params: dict, errors: dict) -> None:
    """Sets params "program" and "part" from a type given by number or name."""
    if _blank(value):
        return
    types = style_types(bundle)
    text = str(value).strip()
    chosen = None
    digits = text.lstrip("-")
    if digits.isascii() and digits.isdigit():
        program = int(text) if len(digits) <= 3 else 128
        if not 0 <= program <= 127:
            errors["type"] = "a type is a General MIDI program from 0 to 127"
            return
        chosen = next((entry for entry in types if entry["program"] == program), None)
        if chosen is None and types:
            names = ", ".join(f"{entry['name']} ({entry['program']})" for entry in types)
            errors["type"] = f"this style offers these types: {names}"
            return
        chosen = chosen or {"program": program}
    else:
        chosen = next((entry for entry in types if entry.get("name", "").lower()
                       == text.lower()), None)
        if chosen is None:
            names = ", ".join(entry["name"] for entry in types) or "none (give a GM number)"
            errors["type"] = f"unknown type {text!r}; this style's types are: {names}"
            return
    params["program"] = chosen["program"]
    if chosen.get("track"):
        params["part"] = chosen["track"]


def upload_name(filename: str | None, suffixes: tuple[str, ...], field: str,
                errors: dict) -> str | None:
    """A safe file name for an upload with an allowed suffix, else None (error set)."""
    name = Path(str(filename or "").replace("\\", "/")).name
    suffix = Path(name).suffix.lower()
    if not name:
        errors[field] = "choose a file"
        return None
    if suffix not in suffixes:
        errors[field] = (f"{name}: unsupported kind of file; use "
                         f"{', '.join(suffixes)}")
        return None
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(name).stem)[:80]
    return f"{stem or 'file'}{suffix}"


def new_style_name(value, registry: StyleRegistry, errors: dict, field: str = "name") -> str | None:
    """A name for a new style: valid and not taken."""
    name = str(value or "").strip().lower()
    if not name:
        errors[field] = "give the style a name"
        return None
    try:
        check_style_name(name)
    except PerfRNNError as error:
        errors[field] = str(error)
        return None
    if name in registry.names():
        errors[field] = f"there is already a style called {name!r}; choose another name"
        return None
    return name


def training_params(values, registry: StyleRegistry, presets) -> dict:
    """Clean parameters of a training job (the uploads are checked by the caller)."""
    errors: dict[str, str] = {}
    params: dict = {}
    name = new_style_name(values.get("name"), registry, errors)
    if name:
        params["name"] = name
    preset = str(values.get("preset") or TRAINING["preset"].default).strip()
    if preset not in presets:
        errors["preset"] = f"choose a preset: {', '.join(presets)}"
    else:
        params["preset"] = preset
    kind = str(values.get("kind") or "").strip().lower()
    if kind in ("", "auto"):
        params["kind"] = None
    elif kind not in CORPUS_KINDS:
        errors["kind"] = f"kind must be auto, {', '.join(CORPUS_KINDS)}"
    else:
        params["kind"] = kind
    start = str(values.get("start") or TRAINING["start"].default).strip().lower()
    if start not in TRAINING_STARTS:
        errors["start"] = f"start must be {' or '.join(TRAINING_STARTS)}"
    else:
        params["start"] = start
    if errors:
        raise ValidationError(errors)
    return params


EDIT_FIELDS = ("kind", "variation", "first_bar", "last_bar", "bars", "parts", "seed",
               "temperature")
MAX_VERSIONS = 100
"""The longest chain of edits one piece may have (each a stored version)."""


def edit_params(values, parent, bundle) -> dict:
    """Clean parameters of an edit job of `parent` (a finished generation),
    whose style's bundle is `bundle` (see `perfrnn.edits.Edit`): the
    parent's parameters, its length after an extend, and "edit" and
    "source". Bars count from 1; a selection must lie in the piece."""
    from perfrnn.edits import KINDS

    errors: dict[str, str] = {}
    kind = str(values.get("kind") or "").strip().lower()
    if kind not in KINDS:
        errors["kind"] = f"kind must be one of {', '.join(KINDS)}"
    result = parent.result or {}
    variations = result.get("variations", [])
    variation = _number(values.get("variation", 0), "variation", errors, 0,
                        max(len(variations) - 1, 0), "variation", whole=True)
    params = {key: value for key, value in parent.params.items()
              if key not in ("edit", "source", "version", "root")}
    params.update(result.get("length") or {})
    version = int(parent.params.get("version", 1))
    if version >= MAX_VERSIONS:
        errors["kind"] = (f"this piece has had {MAX_VERSIONS - 1} edits, the most one piece "
                          "may; download it and start a new one from it as a primer")
    entry = variations[variation] if variation is not None and variations else {}
    edit = _edit_span(values, kind, _bars_of(entry, params, bundle), errors)
    _edit_parts(values, edit, [track.name for track in bundle.metadata.played_tracks], errors)
    seed = values.get("seed")
    edit["seed"] = (random.SystemRandom().randrange(MAX_SEED) if _blank(seed)
                    else _number(seed, "seed", errors, 0, MAX_SEED, "seed", whole=True))
    temperature = values.get("temperature")
    field = GENERATION["temperature"]
    edit["temperature"] = (params.get("temperature", field.default) if _blank(temperature)
                           else _field_number(temperature, field, errors))
    if not errors and not (entry.get("events") and entry.get("sequence")):
        errors["variation"] = ("this piece was made before edits were possible; generate it "
                               "again to edit it")
    if errors:
        raise ValidationError(errors)
    edit["variation"] = variation
    root = parent.params.get("root", parent.id)
    # what the worker reads: the source's files, so that it needs no job store
    source = {"job": parent.id, "variation": variation, "events": entry["events"],
              "sequence": entry["sequence"],
              "sha256": {field: entry.get("sha256", {}).get(field)
                         for field in ("events", "sequence")}}
    return dict(params, edit=edit, source=source, version=version + 1, root=root)


def _edit_span(values, kind: str, bars_in_piece: int, errors: dict) -> dict:
    """An edit's kind and bars: first..last of the piece's bars to regenerate,
    or the bars an extend adds."""
    from perfrnn.edits import MAX_EXTEND_BARS

    edit: dict = {"kind": kind}
    if kind == "regenerate":
        first = _number(values.get("first_bar"), "first_bar", errors, 1, math.inf,
                        "first_bar", whole=True)
        last = _number(values.get("last_bar", values.get("first_bar")), "last_bar", errors, 1,
                       math.inf, "last_bar", whole=True)
        if first is not None and last is not None:
            if first > last:
                errors["last_bar"] = (f"the selection is empty: bar {first} comes after "
                                      f"bar {last}")
            elif last > bars_in_piece:
                errors["last_bar"] = (f"bars {first}-{last} are outside the piece: it has "
                                      f"bars 1-{bars_in_piece}")
            edit.update(first_bar=first, last_bar=last)
    elif kind == "extend":
        bars = _number(values.get("bars"), "bars", errors, 1, MAX_EXTEND_BARS, "bars",
                       whole=True)
        if bars is not None:
            edit["bars"] = bars
    return edit


def _edit_parts(values, edit: dict, names: list[str], errors: dict) -> None:
    """Sets edit["parts"], the parts to regenerate (of `names`; none: all)."""
    from perfrnn.edits import MAX_PART_EDIT_BARS

    parts = values.get("parts") or []
    if isinstance(parts, str):
        parts = [part.strip() for part in parts.split(",") if part.strip()]
    if not isinstance(parts, list) or not all(isinstance(part, str) for part in parts):
        errors["parts"] = "parts must be a list of part names"
        return
    unknown = [part for part in parts if part not in names]
    if unknown:
        errors["parts"] = (f"there is no part {unknown[0][:40]!r} in this piece; its parts "
                           "are: " + ", ".join(names))
        return
    edit["parts"] = sorted(set(parts), key=names.index)
    if edit["kind"] == "extend" and edit["parts"]:
        errors["parts"] = "an extend adds every part; leave parts out"
    span = edit.get("last_bar", 0) - edit.get("first_bar", 0) + 1
    if edit["kind"] == "regenerate" and 0 < len(edit["parts"]) < len(names) \
            and span > MAX_PART_EDIT_BARS:
        errors["parts"] = (f"regenerate at most {MAX_PART_EDIT_BARS} bars of chosen parts at "
                           "once (every part: any number)")


def _bars_of(entry: dict, params: dict, bundle) -> int:
    """Bars of a stored piece (the last may be part of one)."""
    metre = parse_metre(bundle.metadata.time_signature or "4/4")
    bpm = float(params.get("bpm") or bundle.metadata.default_bpm)
    seconds_per_bar = metre.quarters_per_bar * 60.0 / bpm
    return max(1, math.ceil(float(entry.get("seconds", 0.0)) / seconds_per_bar - 1e-6))
