"""Magenta's own softmax for given inputs, computed by the released `magenta`
package. Run by tests/test_magenta_itself.py with the Python of `.venv-magenta`
(tests/install_magenta.sh) and TF_USE_LEGACY_KERAS=1; it imports nothing of
this project, so what it prints is Magenta's answer, not ours.

    python tests/magenta_softmax.py BUNDLE.mag INPUTS.npz OUT.npz [BUNDLE INPUTS OUT ...]

(several triples share one start of TensorFlow). INPUTS.npz holds `inputs`
(steps x input size, one sequence). OUT.npz gets `layer_sizes` and two
(steps x classes) arrays, each Magenta's softmax at temperature 1.0 from a
zero state, where row t is the distribution of event t+1:

- `metagraph`: the way Magenta's generator runs a bundle
  (`PerformanceRnnSequenceGenerator.initialize()`: the bundle's own graph
  and checkpoint);
- `rebuilt`: the graph that Magenta's Python code builds today from its
  `default_configs` entry, with the checkpoint's layer sizes, restored from
  the bundle's checkpoint (what `performance_rnn_generate --checkpoint_file
  --hparams=rnn_layer_sizes=[...]` does).
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile


def layer_sizes(checkpoint: str) -> list[int]:
    """The LSTM sizes in a Magenta checkpoint: cell_N's bias has 4 x size entries."""
    import tensorflow.compat.v1 as tf

    shapes = dict(tf.train.list_variables(checkpoint))
    sizes = []
    while f"rnn/multi_rnn_cell/cell_{len(sizes)}/basic_lstm_cell/bias" in shapes:
        sizes.append(shapes[f"rnn/multi_rnn_cell/cell_{len(sizes)}/basic_lstm_cell/bias"][0] // 4)
    if not sizes:
        raise SystemExit(f"no Magenta LSTM variables in {checkpoint}: {sorted(shapes)}")
    return sizes


def session_softmax(session, inputs):
    """Runs the generation graph's `softmax` collection on one sequence,
    repeated over the graph's batch, from the zero state."""
    import numpy as np

    graph = session.graph
    graph_inputs = graph.get_collection("inputs")[0]
    batch = graph_inputs.shape[0] or 1
    feed = {graph_inputs: np.repeat(inputs[None], batch, axis=0)}
    temperature = graph.get_collection("temperature")
    if temperature:
        feed[temperature[0]] = 1.0
    softmax = session.run(graph.get_collection("softmax")[0], feed)
    return softmax[0]


def main(bundle_path: str, inputs_path: str, out_path: str) -> None:
    import numpy as np
    import tensorflow.compat.v1 as tf
    from magenta.models.performance_rnn import performance_model, performance_sequence_generator
    from magenta.models.shared import sequence_generator_bundle

    tf.disable_v2_behavior()
    inputs = np.load(inputs_path)["inputs"].astype(np.float32)
    bundle = sequence_generator_bundle.read_bundle_file(bundle_path)
    generator_id = bundle.generator_details.id

    generator = performance_sequence_generator.get_generator_map()[generator_id](
        checkpoint=None, bundle=bundle)
    generator.initialize()
    from_metagraph = session_softmax(generator._model._session, inputs)
    generator.close()

    with tempfile.TemporaryDirectory() as folder:
        checkpoint = os.path.join(folder, "model.ckpt")
        with open(checkpoint, "wb") as file:
            file.write(bundle.checkpoint_file[0])
        config = copy.deepcopy(performance_model.default_configs[generator_id])
        config.hparams.rnn_layer_sizes = layer_sizes(checkpoint)
        config.hparams.batch_size = 1
        model = performance_model.PerformanceRnnModel(config)
        model.initialize_with_checkpoint(checkpoint)
        rebuilt = session_softmax(model._session, inputs)
        model.close()

    np.savez(out_path, metagraph=from_metagraph, rebuilt=rebuilt,
             layer_sizes=np.array(config.hparams.rnn_layer_sizes))


if __name__ == "__main__":
    arguments = sys.argv[1:]
    if not arguments or len(arguments) % 3:
        raise SystemExit(__doc__)
    for start in range(0, len(arguments), 3):
        main(*arguments[start:start + 3])
