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
