"""`.mag` bundle I/O: note-seq's `GeneratorBundle`, as Magenta reads and writes it.

A bundle holds:

- `generator_details.id`: the model configuration (a key of DEFAULT_CONFIGS);
- `checkpoint_file[0]`: a TF1 V1 checkpoint with Magenta's variable names;
- `metagraph_file`: a TF1 generation graph with the collections Magenta's
  `EventSequenceRnnModel` looks up (`inputs`, `temperature`, `softmax`,
  `initial_state`, `final_state`), so Magenta itself can load our bundles;
- `bundle_details.description`: for bundles we write, a JSON document with the
  style's metadata (BundleMetadata). Magenta shows it as the description; for
  Magenta's own bundles it is plain text and the metadata takes defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from note_seq.protobuf import generator_pb2

from perfrnn.configs import DEFAULT_CONFIGS, ModelConfig, TrackRole, get_config, played_tracks
from perfrnn.encoding import Encoding
from perfrnn.encodings import encoding_for
from perfrnn.errors import PerfRNNError
from perfrnn.layout import OUTPUT_BIASES, OUTPUT_WEIGHTS, lstm_bias_name, lstm_kernel_name
from perfrnn.model import PerformanceRNN, lstm_cell

METADATA_FORMAT = "perfrnn-bundle/1"
DEFAULT_BPM = 120.0


@dataclass
class BundleMetadata:
    """What a user needs to know about a style, carried inside its bundle.

    Attributes:
      style: Name shown to users ("piano", "rock", ...).
      description: One line about the style.
      tracks: The parts the style writes, with their default GM programs.
      default_bpm: The tempo (beats per minute) the training music was played at.
      types: Instrument or kit choices offered for the style: dicts with
        "name" and "program" (GM program number) and optionally "track".
      provenance: Where the training data came from: dicts with at least
        "source" and "licence".
      metrics: Evaluation figures (e.g. "validation_nll_per_event").
      training: Training facts (steps, events seen, hardware, ...).
      card: Free text model card (markdown).
      default_controls: For conditioned styles, the controls used when a
        request gives none: "notes_per_second" and "key" (a key name), the
        training music's typical values. (Magenta's own defaults, no notes
        per second and an even pitch histogram, are values the music it
        learned from never had, and give atonal clusters.)
      time_signature: The metre the style plays in ("4/4", "3/4", "6/8");
        metric styles feed it to the network and write it to the file.
      style_names: For a model with a style input (a base model and the
        styles made from it): the styles it learned, in input order.
      style_mix: The style input this bundle plays ({style: weight}); a
        request may blend others of `style_names` instead.
      parts: The roles (track names) this style plays; empty: all of them.
        A drum style made from a band base plays only its kit.
      max_note_seconds: Per track, the longest a generated note may sound:
        about the longest notes of the training music (its 99.5th
        percentile). A model that misses a note-off would otherwise hold
        the note for Magenta's 5-second limit. Empty: only that limit.
      note_length_steps: Per track, how long the training music's notes last:
        `perfrnn.note_lengths.QUANTILES` percentiles (0th to 100th) in steps of
        the style's encoding. The sampler draws each note's length from them
        and ends the note there if the model has not (empty: it ends notes
        at `max_note_seconds`).
      references: What the style's real music does, measured at export
        (`perfrnn.scoring.StyleReferences.to_dict`): its silences, repetition,
        polyphony, key and beat, for scoring generated pieces. Empty: the
        `scoring.json` beside the bundle may hold them, else scores are neutral.
      progressions: The style's own chord progressions, a chord symbol per
        bar, in C major / A minor (found in its training music at export); a
        request without chords draws from them. Empty: a style without song
        inputs, or none found.
    """

    style: str
    description: str = ""
    tracks: tuple[TrackRole, ...] = (TrackRole("piano", 0),)
    default_bpm: float = DEFAULT_BPM
    types: list[dict] = field(default_factory=list)
    provenance: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    card: str = ""
    default_controls: dict = field(default_factory=dict)
    max_note_seconds: list[float] = field(default_factory=list)
    note_length_steps: list[list[float]] = field(default_factory=list)
    time_signature: str = "4/4"
    style_names: list[str] = field(default_factory=list)
    style_mix: dict = field(default_factory=dict)
    parts: list[str] = field(default_factory=list)
    references: dict = field(default_factory=dict)
    progressions: list[list[str]] = field(default_factory=list)

    @property
    def played_tracks(self) -> tuple[TrackRole, ...]:
        """The tracks the style plays: all, or those named in `parts`."""
        return played_tracks(self.tracks, self.parts)

    def to_json(self, encoding: dict | None = None) -> str:
        """The metadata as JSON; `encoding` (see `describe_encoding`) is recorded with it
        for people and other tools reading the bundle; perfrnn derives it from the
        generator id when reading."""
        data = dataclasses.asdict(self)
        data["tracks"] = [track.to_dict() for track in self.tracks]
        if encoding is not None:
            data["encoding"] = encoding
        return json.dumps({"format": METADATA_FORMAT, **data}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> BundleMetadata | None:
        """Parses our JSON metadata; None when the text is not ours (e.g. Magenta's)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.pop("format", None) != METADATA_FORMAT:
            return None
        data["tracks"] = tuple(TrackRole.from_dict(track) for track in data.get("tracks", []))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass
class Bundle:
    """A loaded style: configuration, weights and metadata."""

    config: ModelConfig
    model: PerformanceRNN
    metadata: BundleMetadata
    path: Path | None = None

    @property
    def encoding(self) -> Encoding:
        return encoding_for(self.config)

    @property
    def is_magenta_compatible(self) -> bool:
        """True when Magenta's own generator of this id can run the bundle."""
        return (self.config.id in DEFAULT_CONFIGS and len(self.metadata.tracks) == 1
                and not self.config.is_metric)


def describe_encoding(config: ModelConfig) -> dict:
    """The event encoding and model shape of a configuration, as plain data."""
    encoding = encoding_for(config)
    if config.is_metric:
        events = ("note-on/note-off per track role, time shifts in 1/"
                  f"{config.steps_per_quarter} quarter notes, position in beat, bar and "
                  "phrase as input (perfrnn.metric_encoding)")
    elif config.is_multitrack:
        events = ("note-seq performance events with note-on/note-off per track role "
                  "(perfrnn.multitrack)")
    else:
        events = "note-seq performance events"
    return {
        "generator_id": config.id,
        "events": events,
        "tracks": [track.to_dict() for track in config.tracks],
        "num_classes": encoding.num_classes,
        "input_size": encoding.input_size,
        "num_velocity_bins": config.num_velocity_bins,
        "max_shift_steps": config.max_shift_steps,
        "steps_per_second": config.steps_per_second,
        "steps_per_quarter": config.steps_per_quarter,
        "controls": [signal.name for signal in encoding.control_signals],
        "style_names": list(config.style_names),
        "rnn_layer_sizes": list(config.rnn_layer_sizes),
    }


# ----- reading -----------------------------------------------------------------


def _style_fields_problem(metadata: BundleMetadata) -> str | None:
    """What is wrong with the metadata's style names, style mix and parts (None: nothing)."""
    if not (isinstance(metadata.style_names, list)
            and all(isinstance(name, str) for name in metadata.style_names)
            and isinstance(metadata.style_mix, dict)
            and all(isinstance(name, str) and isinstance(weight, (int, float))
                    and not isinstance(weight, bool) for name, weight in metadata.style_mix.items())
            and isinstance(metadata.parts, list)
            and all(isinstance(part, str) for part in metadata.parts)):
        return ("its metadata's style_names, style_mix or parts are not a list of names, "
                "names with weights and a list of names")
    names = [track.name for track in metadata.tracks]
    unknown = [part for part in metadata.parts if part not in names]
    if unknown:
        return f"its metadata names part {unknown[0]!r}, but its tracks are {', '.join(names)}"
    return None


def read_bundle(path: str | os.PathLike) -> Bundle:
    """Loads a `.mag` file written by Magenta or by us.

    Raises:
      PerfRNNError: the file is missing, truncated or corrupt, names an unknown
        generator, or its weights do not fit its encoding. The message names
        the file and the reason.
    """
    path = Path(path)

    def fail(reason: str) -> PerfRNNError:
        return PerfRNNError(reason, path=path, action="load bundle")

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise fail("no such file; check the path") from None
    except OSError as error:
        raise fail(f"cannot read it ({error.strerror})") from None
    proto = generator_pb2.GeneratorBundle()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise fail("the file is truncated or is not a .mag bundle") from None
    generator_id = proto.generator_details.id
    if not generator_id:
        raise fail("it has no generator id; it is truncated or not a .mag bundle")
    if generator_id not in DEFAULT_CONFIGS:
        known = ", ".join(sorted(DEFAULT_CONFIGS))
        raise fail(f"unknown generator id {generator_id!r} (this version knows {known})")
    if not proto.checkpoint_file:
        raise fail("it holds no checkpoint; the file is truncated or incomplete")

    try:
        weights = _read_checkpoint(proto.checkpoint_file[0])
    except (tf.errors.OpError, ValueError, RuntimeError):
        raise fail("its checkpoint is corrupt or truncated") from None

    metadata = BundleMetadata.from_json(proto.bundle_details.description) or BundleMetadata(
        style=Path(path).stem,
        description=proto.bundle_details.description or proto.generator_details.description,
    )
    try:
        model = PerformanceRNN.from_weights(weights)
    except PerfRNNError as error:
        raise fail(str(error)) from None
    base = get_config(generator_id)
    metadata.tracks = tuple(metadata.tracks) or base.tracks
    if base.is_multitrack and len(metadata.tracks) != len(base.tracks):
        raise fail(f"generator {generator_id!r} writes {len(base.tracks)} parts, but the "
                   f"metadata lists {len(metadata.tracks)} tracks")
    problem = _style_fields_problem(metadata)
    if problem:
        raise fail(problem)
    config = base.replace(rnn_layer_sizes=model.layer_sizes, tracks=tuple(metadata.tracks),
                          style_names=tuple(metadata.style_names))
    if config.style_names and not config.is_metric:
        raise fail("it has a style input, which only metric configurations take")
    encoding = encoding_for(config)
    if (model.input_size, model.num_classes) != (encoding.input_size, encoding.num_classes):
        raise fail(
            f"shape mismatch: generator {generator_id!r} needs input size "
            f"{encoding.input_size} and {encoding.num_classes} classes, but the checkpoint "
            f"has input size {model.input_size} and {model.num_classes} classes")
    if config.style_names:
        try:
            encoding.style_vector(metadata.style_mix)
        except PerfRNNError as error:
            raise fail(f"its style input: {error}") from None
    return Bundle(config=config, model=model, metadata=metadata, path=path)


def _read_checkpoint(checkpoint: bytes) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="perfrnn-ckpt-") as tmp:
        ckpt_path = os.path.join(tmp, "model.ckpt")
        with open(ckpt_path, "wb") as f:
            f.write(checkpoint)
        reader = tf.train.load_checkpoint(ckpt_path)
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


# ----- writing -----------------------------------------------------------------


def write_bundle(bundle: Bundle, path: str | os.PathLike) -> Path:
    """Writes a `.mag` file that both perfrnn and Magenta can load.

    The file is written to a temporary name and renamed, so an interrupted
    write never leaves a half-written bundle behind.
    """
    path = Path(path)
    checkpoint, metagraph = export_tf1_checkpoint(bundle.model)
    proto = generator_pb2.GeneratorBundle()
    proto.generator_details.id = bundle.config.id
    proto.generator_details.description = bundle.config.description
    proto.bundle_details.description = bundle.metadata.to_json(describe_encoding(bundle.config))
    proto.checkpoint_file.append(checkpoint)
    proto.metagraph_file = metagraph
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(proto.SerializeToString())
    partial.replace(path)
    bundle.path = path
    return path


def export_tf1_checkpoint(model: PerformanceRNN) -> tuple[bytes, bytes]:
    """The model as Magenta stores it: (V1 checkpoint bytes, MetaGraphDef bytes).

    The graph is Magenta's generation graph: `inputs` [1, time, input_size],
    a scalar `temperature`, the zero `initial_state` tensors (c, h per layer,
    which Magenta feeds), `final_state` and `softmax` [1, time, classes].
    """
    v1 = tf.compat.v1
    weights = model.get_weights()
    with tf.Graph().as_default() as graph:
        inputs = v1.placeholder(tf.float32, [1, None, model.input_size])
        temperature = v1.placeholder(tf.float32, [])
        variables = {
            name: v1.get_variable(name, shape=value.shape, dtype=tf.float32,
                                  initializer=v1.zeros_initializer(), use_resource=False)
            for name, value in weights.items()
        }
        initial_state = model.zero_state(1)
        read = {name: tf.identity(var) for name, var in variables.items()}
        layers = range(len(model.layer_sizes))
        kernels = [read[lstm_kernel_name(layer)] for layer in layers]
        biases = [read[lstm_bias_name(layer)] for layer in layers]

        def step(carry, x):
            state = []
            for (c, h), kernel, bias in zip(carry[1], kernels, biases):
                c, h = lstm_cell(x, c, h, kernel, bias)
                state.append((c, h))
                x = h
            return x, tuple(state)

        time_major = tf.transpose(inputs, [1, 0, 2])
        outputs, final_state = tf.scan(
            step, time_major, initializer=(initial_state[-1][1], initial_state))
        flat_outputs = tf.reshape(outputs, [-1, model.layer_sizes[-1]])
        logits = tf.matmul(flat_outputs, read[OUTPUT_WEIGHTS])
        logits = tf.nn.bias_add(logits, read[OUTPUT_BIASES])
        softmax = tf.reshape(tf.nn.softmax(logits / temperature), [1, -1, model.num_classes])
        # tf.scan stacks the state over time; Magenta wants the last one.
        final_state = [tensor[-1] for pair in final_state for tensor in pair]

        graph.add_to_collection("inputs", inputs)
        graph.add_to_collection("temperature", temperature)
        graph.add_to_collection("softmax", softmax)
        for tensor in (t for pair in initial_state for t in pair):
            graph.add_to_collection("initial_state", tensor)
        for tensor in final_state:
            graph.add_to_collection("final_state", tensor)

        # Magenta reads V1 checkpoints; TensorFlow's deprecation banner is noise here.
        logger = tf.get_logger()
        level = logger.level
        logger.setLevel("ERROR")
        try:
            saver = v1.train.Saver(
                var_list=variables, sharded=False, write_version=v1.train.SaverDef.V1)
            with v1.Session(graph=graph) as session, tempfile.TemporaryDirectory() as tmp:
                for name, var in variables.items():  # the values fed, not stored in the graph
                    session.run(var.initializer, {var.initial_value: weights[name]})
                ckpt_path = os.path.join(tmp, "model.ckpt")
                saver.save(session, ckpt_path, write_meta_graph=False, write_state=False)
                checkpoint = Path(ckpt_path).read_bytes()
        finally:
            logger.setLevel(level)
        # Attributes left at their defaults are dropped so older TensorFlow (Magenta
        # 2.1.4 runs on 2.9) can import ops that gained attributes since.
        metagraph = saver.export_meta_graph(clear_devices=True, strip_default_attrs=True)
    return checkpoint, metagraph.SerializeToString()

