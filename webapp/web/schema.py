"""What each request takes, declared once.

A `Request` lists its `Field`s: type, range, default, the words a message
uses for it and the sentence that documents it. Validation
(`webapp.web.validation`) reads its ranges and words from here, the pages
their defaults and input limits, the API its list of known fields and the
OpenAPI document its schemas (`Request.openapi`), so none of them can
disagree with another.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfrnn.chords import MAX_PROGRESSION_BARS
from perfrnn.options import (
    DEFAULT_QUALITY,
    FEELS,
    MAX_BARS,
    MAX_BPM,
    MAX_PRIMER_NOTES,
    MAX_PRIMER_SECONDS,
    MAX_SEED,
    MIN_BPM,
    QUALITIES,
    REQUEST_FORMS,
)
from training.pipeline import CORPUS_KINDS

MIN_LENGTH_SECONDS = 5
MAX_LENGTH_SECONDS = 600
MAX_VARIATIONS = 4
LENGTH_UNITS = {"seconds": 1, "s": 1, "minutes": 60, "min": 60, "m": 60}
BARS_UNIT = "bars"
MAX_PRIMER_BYTES = 512 << 10  # a 60 s primer is tens of KiB; parsing 512 KiB takes ~1 s
MAX_BUNDLE_BYTES = 128 << 20  # Magenta's 3x512 bundles are about 20 MB
PRIMER_SUFFIXES = (".mid", ".midi", ".xml", ".musicxml", ".mxl")
TRAINING_SUFFIXES = (".mid", ".midi", ".xml", ".musicxml", ".mxl", ".abc", ".zip")
TRAINING_STARTS = ("base", "scratch")  # fine-tune the shipped style of the kind, or not
STYLE_NAME_PATTERN = "^[a-z0-9][a-z0-9_-]{0,39}$"
MAX_CHORDS_CHARS = 400  # 64 bars of long symbols ("F#m7b5/C# | ") fit


@dataclass(frozen=True)
class Field:
    """One field of a request.

    Attributes:
      name: The form field and JSON key.
      type: "string", "number", "integer", "boolean", "file" or "files".
      label: How messages name it ("tempo (BPM)").
      description: What the API documentation says of it.
      default: The value when it is left out (None: none, or chosen later).
      minimum, maximum: The range of a number.
      choices: The values a string may take.
      example: An example for the documentation.
      pattern: A regular expression a string must match (documented).
      max_length: The most characters a string may have.
      suffixes: The file kinds an upload may be.
      max_bytes: The largest an upload may be (None: the request's own limit).
      api: Whether the API takes it (False: a page-only helper field).
      page: Whether the page has it (False: an API-only field).
      page_default: The page's starting value where it differs from `default`.
    """

    name: str
    type: str
    label: str
    description: str = ""
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    example: object = None
    pattern: str | None = None
    max_length: int | None = None
    suffixes: tuple[str, ...] = ()
    max_bytes: int | None = None
    api: bool = True
    page: bool = True
    page_default: object = None

    @property
    def is_upload(self) -> bool:
        return self.type in ("file", "files")

    def openapi(self) -> dict:
        """The field's OpenAPI 3.0 schema."""
        if self.type == "files":
            schema: dict = {"type": "array", "items": {"type": "string", "format": "binary"}}
        elif self.type == "file":
            schema = {"type": "string", "format": "binary"}
        else:
            schema = {"type": self.type}
        if self.choices:
            schema["enum"] = list(self.choices)
        for key, value in (("minimum", self.minimum), ("maximum", self.maximum),
                           ("default", self.default), ("example", self.example),
                           ("pattern", self.pattern), ("maxLength", self.max_length)):
            if value is not None:
                schema[key] = value
        description = self.description
        if self.suffixes:
            description = f"{description}: {', '.join(self.suffixes)}".lstrip(": ")
        if self.max_bytes:
            description = f"{description}; at most {self.max_bytes >> 10:,} KiB"
        if description:
            schema["description"] = description
        return schema


@dataclass(frozen=True)
class Request:
    """The fields of one kind of request, by name."""

    name: str  # the OpenAPI schema's name
    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    description: str = ""

    def __getitem__(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def api_fields(self) -> tuple[str, ...]:
        """The fields the API takes, uploads aside."""
        return tuple(field.name for field in self.fields if field.api and not field.is_upload)

    @property
    def api_uploads(self) -> tuple[str, ...]:
        """The API's upload fields (a list of files is also sent as NAME[])."""
        names = []
        for field in self.fields:
            if field.api and field.is_upload:
                names += [field.name, f"{field.name}[]"] if field.type == "files" \
                    else [field.name]
        return tuple(names)

    @property
    def page_fields(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields if field.page)

    def page_defaults(self) -> dict[str, str]:
        """The page's starting values, as form text ("" for none)."""
        defaults = {}
        for field in self.fields:
            if field.page and not field.is_upload and field.type != "boolean":
                value = field.page_default if field.page_default is not None else field.default
                defaults[field.name] = "" if value is None else str(value)
        return defaults

    def openapi(self, uploads: bool = False) -> dict:
        """The OpenAPI schema of the API's fields; with `uploads`, the files too
        (a multipart/form-data body)."""
        chosen = [field for field in self.fields
                  if field.api and (uploads or not field.is_upload)]
        schema: dict = {"type": "object",
                        "properties": {field.name: field.openapi() for field in chosen}}
        required = [name for name in self.required if any(f.name == name for f in chosen)]
        if required:
            schema["required"] = required
        if self.description:
            schema["description"] = self.description
        return schema


GENERATION = Request("GenerationRequest", required=("style",), description=(
    "Give the length as `seconds`, as `bars`, or as `length` with `unit`. Unknown "
    "fields are refused (422)."), fields=(
    Field("style", "string", "style", "a style's name (GET /styles)", example="piano"),
    Field("type", "string", "type", "one of the style's types, by name or GM program number",
          example="Distortion Guitar"),
    Field("length", "number", "length", f"with `unit`; from {MIN_LENGTH_SECONDS} s to "
          f"{MAX_LENGTH_SECONDS // 60} min, or 1 to {MAX_BARS} bars", page_default=30),
    Field("unit", "string", "the length's unit", choices=(*LENGTH_UNITS, BARS_UNIT),
          default="seconds"),
    Field("seconds", "number", "length in seconds", minimum=MIN_LENGTH_SECONDS,
          maximum=MAX_LENGTH_SECONDS, default=30, page=False),
    Field("bars", "integer", "length in bars", "length in bars instead of seconds: the music "
          "ends exactly on that bar line (at most 10 minutes)", minimum=1, maximum=MAX_BARS,
          page=False),
    Field("bpm", "number", "tempo (BPM)", "tempo; the style's default_bpm when left out",
          minimum=MIN_BPM, maximum=MAX_BPM),
    Field("temperature", "number", "creativity (temperature)", "creativity", minimum=0.1,
          maximum=2.0, default=1.0),
    Field("variations", "integer", "variations", minimum=1, maximum=MAX_VARIATIONS,
          default=1),
    Field("quality", "string", "quality", "how many candidates are sampled for each "
          "variation, the one that best fits the style kept: "
          + ", ".join(f"{name} {count}" for name, count in QUALITIES.items())
          + "; the variations come best first, each with its score",
          choices=tuple(QUALITIES), default=DEFAULT_QUALITY),
    Field("seed", "integer", "seed", "the same seed and settings give the same music; "
          "random when left out", minimum=0, maximum=MAX_SEED),
    Field("key", "string", "key", "for a key-conditioned style (`conditioned`), its key "
          "(C, F#, Bbm, A minor); for a style that follows chords (`follows_chords`), the "
          "key its own progressions are played in (G, Em; given `chords` are played as "
          "written); blank: the style's usual key, or one drawn from the seed",
          example="C major"),
    Field("density", "number", "density (notes per second)",
          "notes per second; conditioned styles only", minimum=0.5, maximum=40.0),
    Field("chords", "string", "chords", "styles that follow chords (`follows_chords`) "
          "only: one chord per bar, separated by spaces or |; % repeats the bar before; at "
          f"most {MAX_PROGRESSION_BARS} bars, which repeat through each section; blank: the "
          "style's own progressions. A chord is a root (C, F#, Bb), a quality (m, 7, maj7, "
          "m7, dim, sus4, ...) and optionally a bass (/E)", example="C G Am F",
          max_length=MAX_CHORDS_CHARS),
    Field("form", "string", "form", "song: intro, sections with fills and an ending; "
          "loop: the main section only; blank: song, or loop with `loop`",
          choices=REQUEST_FORMS),
    Field("quantize", "boolean", "quantize", "snap notes to the beat grid (metric styles "
          "are on it already)", default=False),
    Field("loop", "boolean", "loop", "the last bar leads back into the first, so the piece "
          "repeats seamlessly; needs a length in bars", default=False),
    Field("feel", "string", "feel", "straight keeps the beat grid exact; swing pushes "
          "off-beats towards the triplet; human nudges timing and velocity by a little",
          choices=FEELS, default="straight"),
    Field("blend", "string", "blend", "styles made from one base model (see a style's "
          "`blend_styles`): play this blend of them instead of the style alone; weights "
          "are scaled to sum to 1", example="rock:70,electronic:30"),
    Field("blend_with", "string", "style to blend with", api=False),
    Field("blend_amount", "integer", "blend amount", minimum=0, maximum=100, api=False,
          page_default=30),
    Field("primer", "file", "primer", f"music to continue, at most {MAX_PRIMER_SECONDS:g} "
          f"seconds and {MAX_PRIMER_NOTES:,} notes", suffixes=PRIMER_SUFFIXES,
          max_bytes=MAX_PRIMER_BYTES),
))

STREAM = Request("StreamRequest", required=("style",), description=(
    "An endless stream in a style. Unknown fields are refused (422)."), fields=(
    Field("style", "string", "style", "a style's name (GET /styles)", example="piano"),
    Field("type", "string", "type", "one of the style's types, by name or GM program number"),
    Field("bpm", "number", "tempo (BPM)", "tempo; the style's default_bpm when left out",
          minimum=MIN_BPM, maximum=MAX_BPM),
    Field("temperature", "number", "creativity (temperature)", "creativity", minimum=0.1,
          maximum=2.0, default=1.0),
    Field("seed", "integer", "seed", "random when left out", minimum=0, maximum=MAX_SEED),
    Field("key", "string", "key", "conditioned styles only", example="C major"),
    Field("density", "number", "density (notes per second)",
          "notes per second; conditioned styles only", minimum=0.5, maximum=40.0),
))

STREAM_CHANGE = Request("StreamChange", description=(
    "Settings heard from the next chunk on (a metric style's next bar line)."), fields=(
    Field("bpm", "number", "tempo (BPM)", minimum=MIN_BPM, maximum=MAX_BPM),
    Field("temperature", "number", "creativity (temperature)", minimum=0.1, maximum=2.0),
    Field("key", "string", "key", "conditioned styles only", example="A minor"),
    Field("density", "number", "density (notes per second)", "conditioned styles only",
          minimum=0.5, maximum=40.0),
))

TRAINING = Request("TrainingForm", required=("name", "files"), fields=(
    Field("token", "string", "training token", api=False),
    Field("name", "string", "name", "the new style's name (not taken yet)",
          pattern=STYLE_NAME_PATTERN),
    Field("preset", "string", "preset", "GET /trainings/presets", default="quick"),
    Field("kind", "string", "kind", choices=("auto", *CORPUS_KINDS), default="auto"),
    Field("start", "string", "start", "base: fine-tune the shipped style of the kind (piano, "
          "drums or rock), so a handful of files is enough; scratch: a new model of the "
          "preset's size", choices=TRAINING_STARTS, default="base"),
    Field("files", "files", "files", "the music (several files, or one zip)",
          suffixes=TRAINING_SUFFIXES),
))

BUNDLE_IMPORT = Request("BundleForm", required=("bundle",), fields=(
    Field("token", "string", "training token", api=False),
    Field("bundle", "file", "bundle", "a .mag bundle (ours or Magenta's)",
          max_bytes=MAX_BUNDLE_BYTES),
    Field("name", "string", "name", "the style's name; the file's name when left out",
          pattern=STYLE_NAME_PATTERN),
))
