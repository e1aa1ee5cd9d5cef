"""Base models and the styles made from them.

A **base model** is trained on several prepared corpora at once (`python -m
training train --data data/rock data/jazz ...`). Each corpus is a style, named
by its manifest, and the network's input says which style each training
window comes from (`ModelConfig.style_names`, the style input of
`perfrnn.metric_encoding`). It so learns what the styles share (a beat, a
bass under chords, fills before a bar line) from all of them, and each
style's particulars from its own corpus.

A **fine-tuned style** starts from a parent, a base run folder or any `.mag`
bundle (`--init-from`), and trains on one corpus. It keeps the parent's shape
and style names. With a style input, its style input is fixed: the corpus's own
style when the parent knows it, otherwise the parent style under which the
parent already finds the corpus most likely (lowest NLL on a few windows of
it), so fine-tuning starts from the nearest music the parent knows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from perfrnn.configs import ModelConfig, get_config
from perfrnn.errors import PerfRNNError
from training.runs import inherited_provenance, load_run, provenance_from_manifest


@dataclass
class Parent:
    """The model a style is fine-tuned from.

    Attributes:
      source: The run folder or bundle it was read from, as given.
      config: Its configuration (layer sizes and style names included).
      weights: Its weights by Magenta name.
      provenance: The data its weights learned from (`BundleMetadata.provenance`
        entries); a fine-tuned style's card lists them, since their licences
        apply to its weights too.
    """

    source: str
    config: ModelConfig
    weights: dict
    provenance: list = field(default_factory=list)


def read_parent(path: str | Path) -> Parent:
    """A base run folder (its best weights) or a `.mag` bundle to fine-tune from.
    A parent without a style input (the piano) is fine-tuned as it is.

    Raises:
      PerfRNNError: it is neither, or it does not load.
    """
    path = Path(path)
    if path.is_dir():
        run = load_run(path)
        provenance = [{**item, "learned_in": f"{path.name}"}
                      for item in provenance_from_manifest(run.manifest)]
        parent = Parent(str(path), run.config, run.model.get_weights(),
                        provenance + inherited_provenance(run, run.style_name))
    elif path.suffix == ".mag":
        from perfrnn.bundle import read_bundle

        bundle = read_bundle(path)
        parent = Parent(str(path), bundle.config, bundle.model.get_weights(),
                        [item for item in bundle.metadata.provenance if isinstance(item, dict)])
    else:
        raise PerfRNNError(f"cannot fine-tune from {path}: give a base run folder "
                           "(runs/base) or a .mag bundle")
    return parent


def style_names_of(corpus_names: list[str], config: ModelConfig) -> tuple[str, ...]:
    """The style input of a base trained on corpora with these manifest names.

    Raises:
      PerfRNNError: the configuration cannot take a style input, or two
        corpora share a name.
    """
    if not config.is_metric:
        raise PerfRNNError(
            f"a base model (several corpora) needs a metric configuration such as "
            f"metric_band, not {config.id!r}")
    duplicates = sorted({name for name in corpus_names if corpus_names.count(name) > 1})
    if duplicates:
        raise PerfRNNError(f"two corpora are both called {duplicates[0]!r}; each corpus is "
                           "a style, so prepare them with different --name")
    return tuple(corpus_names)


def parent_config(parent: Parent, config_id: str) -> ModelConfig:
    """The configuration a fine-tuned style trains with: the parent's.

    Raises:
      PerfRNNError: `config_id` names another encoding than the parent's.
    """
    if config_id != parent.config.id:
        raise PerfRNNError(f"{parent.source} is a {parent.config.id!r} model; fine-tune it "
                           f"with --config {parent.config.id}, not {config_id!r}")
    return get_config(config_id).replace(rnn_layer_sizes=parent.config.rnn_layer_sizes,
                                         style_names=parent.config.style_names)


def describe(parent: Parent) -> str:
    """One line naming a parent, for logs and model cards."""
    layers = "x".join(str(size) for size in parent.config.rnn_layer_sizes)
    styles = (f", styles {', '.join(parent.config.style_names)}"
              if parent.config.has_style_input else "")
    return f"{parent.source} ({parent.config.id}, {layers}{styles})"


def input_groups(config: ModelConfig) -> list[tuple[str, int]]:
    """The column groups of a metric model's input row, in order, by name."""
    from perfrnn.encodings import encoding_for

    encoding = encoding_for(config)
    return [("position", encoding.step_input_size), ("bar", encoding.bar_input_size),
            ("style", len(config.style_names)),
            ("history", encoding.control_size - encoding.step_input_size
             - encoding.row_input_size),
            ("event", encoding.num_classes)]


def grown_weights(old: Parent, config: ModelConfig) -> dict:
    """`old`'s weights for a model of `config`: the same, but layer 0's kernel
    gets a zero row for each input `old` lacks (a song plan, a lookback), so
    the grown model starts by playing as `old` does.

    Raises:
      PerfRNNError: the two are not metric models of one vocabulary, layer
        sizes and styles, or `old` has an input `config` lacks.
    """
    import numpy as np

    if not (old.config.is_metric and config.is_metric
            and old.config.rnn_layer_sizes == config.rnn_layer_sizes
            and [t.is_drum for t in old.config.tracks] == [t.is_drum for t in config.tracks]
            and old.config.style_names == config.style_names):
        raise PerfRNNError(f"cannot grow {config.id!r} from {describe(old)}: both must be "
                           "metric models with the same kinds of parts, layer sizes and "
                           "styles")
    old_groups, new_groups = dict(input_groups(old.config)), input_groups(config)
    name = "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/kernel"
    kernel = np.asarray(old.weights[name])
    grown = np.zeros((sum(width for _, width in new_groups) + config.rnn_layer_sizes[0],
                      kernel.shape[1]), kernel.dtype)
    old_start, old_at = 0, {}
    for group, width in input_groups(old.config):
        old_at[group] = old_start
        old_start += width
    new_start = 0
    for group, width in new_groups:
        if old_groups.get(group):
            if old_groups[group] != width:
                raise PerfRNNError(f"cannot grow: the {group} input is {old_groups[group]} "
                                   f"wide in {old.source} and {width} in {config.id!r}")
            grown[new_start:new_start + width] = kernel[old_at[group]:old_at[group] + width]
        new_start += width
    missing = [group for group, width in old_groups.items()
               if width and not dict(new_groups).get(group)]
    if missing:
        raise PerfRNNError(f"cannot grow: {config.id!r} has no {missing[0]} input")
    grown[new_start:] = kernel[old_start:]  # the recurrent rows
    return {**old.weights, name: grown}
