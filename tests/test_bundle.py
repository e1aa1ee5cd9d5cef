"""`.mag` bundles we write: round trip, metadata, Magenta loadability, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import magenta_bundle_path, magenta_reference_path
from note_seq.protobuf import generator_pb2

from perfrnn.bundle import Bundle, BundleMetadata, read_bundle, write_bundle
from perfrnn.configs import TrackRole, get_config
from perfrnn.errors import PerfRNNError
from perfrnn.layout import lstm_kernel_name
from perfrnn.model import PerformanceRNN
from perfrnn.performance_encoding import PerformanceEncoding

METADATA = BundleMetadata(
    style="test-style",
    description="a style for tests",
    tracks=(TrackRole("keys", 4),),
    default_bpm=96.0,
    types=[{"name": "Electric piano", "program": 4}, {"name": "Harpsichord", "program": 6}],
    provenance=[{"source": "made up", "licence": "CC0", "files": 3}],
    metrics={"validation_nll_per_event": 2.5},
    training={"steps": 10},
    card="# Test style\nNothing to see.",
)


def random_bundle(config_id: str, layer_sizes=(32, 48, 16), seed: int = 3) -> Bundle:
    config = get_config(config_id).replace(rnn_layer_sizes=layer_sizes)
    encoding = PerformanceEncoding(config)
    model = PerformanceRNN(encoding.input_size, encoding.num_classes, layer_sizes, seed=seed)
    # Non-zero biases, so a bias that went missing would show.
    for bias in model.biases:
        bias.assign(tf.random.stateless_normal(bias.shape, seed=[seed, 1]) * 0.1)
    return Bundle(config=config, model=model, metadata=METADATA)


def random_inputs(encoding: PerformanceEncoding, length: int = 40) -> np.ndarray:
    rng = np.random.default_rng(0)
    events = rng.integers(0, encoding.num_classes, length)
    inputs = np.zeros((length, encoding.input_size), np.float32)
    inputs[:, :encoding.control_size] = rng.random((length, encoding.control_size))
    inputs[np.arange(length), encoding.control_size + events] = 1.0
    return inputs


@pytest.mark.parametrize("config_id", ["performance_with_dynamics",
                                       "multiconditioned_performance_with_dynamics",
                                       "performance"])
def test_round_trip_gives_identical_probabilities_and_metadata(tmp_path, config_id):
    bundle = random_bundle(config_id)
    path = write_bundle(bundle, tmp_path / "style.mag")
    loaded = read_bundle(path)

    inputs = random_inputs(bundle.encoding)
    np.testing.assert_array_equal(loaded.model.probabilities(inputs),
                                  bundle.model.probabilities(inputs))
    assert loaded.config.id == config_id
    assert loaded.config.rnn_layer_sizes == (32, 48, 16)
    assert loaded.metadata == METADATA
    assert not list(tmp_path.glob("*.partial"))
    # the encoding is written out for readers of the file, not only implied by the id
    proto = generator_pb2.GeneratorBundle()
    proto.ParseFromString(path.read_bytes())
    recorded = json.loads(proto.bundle_details.description)["encoding"]
    assert recorded["generator_id"] == config_id
    assert recorded["num_classes"] == bundle.encoding.num_classes
    assert recorded["input_size"] == bundle.encoding.input_size
    assert recorded["rnn_layer_sizes"] == [32, 48, 16]


def test_round_trip_of_a_magenta_bundle_keeps_magentas_numbers(tmp_path):
    bundle = read_bundle(magenta_bundle_path("performance_with_dynamics"))
    bundle.metadata = METADATA
    loaded = read_bundle(write_bundle(bundle, tmp_path / "copy.mag"))
    reference = np.load(magenta_reference_path("performance_with_dynamics"))

    probabilities = loaded.model.probabilities(reference["inputs"])
    assert np.abs(probabilities - reference["softmax"]).max() < 1e-4


def run_metagraph_with_tensorflow_alone(path, inputs: np.ndarray, split: int):
    """Loads our bundle the way Magenta's EventSequenceRnnModel does.

    Runs inputs[:split] from the graph's initial state, then feeds the final
    state back as the initial state for inputs[split:], one step at a time.
    """
    proto = generator_pb2.GeneratorBundle()
    proto.ParseFromString(path.read_bytes())
    checkpoint = path.with_suffix(".ckpt")
    metagraph = path.with_suffix(".meta")
    checkpoint.write_bytes(proto.checkpoint_file[0])
    metagraph.write_bytes(proto.metagraph_file)
    v1 = tf.compat.v1
    with tf.Graph().as_default() as graph, v1.Session() as session:
        saver = v1.train.import_meta_graph(str(metagraph))
        saver.restore(session, str(checkpoint))
        graph_inputs = graph.get_collection("inputs")[0]
        initial_state = graph.get_collection("initial_state")
        final_state = graph.get_collection("final_state")
        softmax = graph.get_collection("softmax")[0]
        temperature = graph.get_collection("temperature")[0]
        assert graph_inputs.shape.as_list() == [1, None, inputs.shape[1]]

        state = session.run(initial_state)
        rows = []
        chunks = [inputs[:split]] + [inputs[t:t + 1] for t in range(split, len(inputs))]
        for chunk in chunks:
            probabilities, state = session.run(
                [softmax, final_state],
                {graph_inputs: chunk[None], tuple(initial_state): tuple(state), temperature: 1.0})
            rows.append(probabilities[0])
        reader = tf.train.load_checkpoint(str(checkpoint))
        names = set(reader.get_variable_to_shape_map())
    return np.concatenate(rows), names


@pytest.mark.parametrize("config_id", ["performance_with_dynamics",
                                       "multiconditioned_performance_with_dynamics"])
def test_written_bundle_loads_in_magentas_tf1_graph(tmp_path, config_id):
    bundle = random_bundle(config_id)
    path = write_bundle(bundle, tmp_path / "style.mag")
    inputs = random_inputs(bundle.encoding, 30)

    graph_probabilities, names = run_metagraph_with_tensorflow_alone(path, inputs, split=20)

    np.testing.assert_allclose(graph_probabilities, bundle.model.probabilities(inputs), atol=1e-5)
    assert names == {
        lstm_kernel_name(0), lstm_kernel_name(1), lstm_kernel_name(2),
        "rnn/multi_rnn_cell/cell_0/basic_lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_1/basic_lstm_cell/bias",
        "rnn/multi_rnn_cell/cell_2/basic_lstm_cell/bias",
        "fully_connected/weights", "fully_connected/biases",
    }


def test_magenta_reference_metagraph_and_ours_expose_the_same_collections(tmp_path):
    from tensorflow.core.protobuf import meta_graph_pb2

    def collections(path):
        proto = generator_pb2.GeneratorBundle()
        proto.ParseFromString(path.read_bytes())
        graph = meta_graph_pb2.MetaGraphDef()
        graph.ParseFromString(proto.metagraph_file)
        return {name: len(value.node_list.value) for name, value in graph.collection_def.items()
                if name in ("inputs", "temperature", "softmax", "initial_state", "final_state")}

    ours = write_bundle(random_bundle("performance_with_dynamics", (16, 16)), tmp_path / "a.mag")
    assert collections(ours) == collections(magenta_bundle_path("performance_with_dynamics"))


def test_bundle_is_not_bloated_by_the_metagraph(tmp_path):
    bundle = random_bundle("performance_with_dynamics", (64, 64))
    path = write_bundle(bundle, tmp_path / "style.mag")
    weight_bytes = sum(w.nbytes for w in bundle.model.get_weights().values())
    assert path.stat().st_size < 1.2 * weight_bytes + 200_000


# ----- bundles that do not load --------------------------------------------------


def assert_clear_error(path, *reason_words):
    with pytest.raises(PerfRNNError) as caught:
        read_bundle(path)
    message = str(caught.value)
    assert str(path) in message
    for word in reason_words:
        assert word in message
    return message


@pytest.mark.parametrize("keep", [0, 10, 1000, 50_000, 700_000])
def test_truncated_bundle_gives_one_clear_error(tmp_path, keep):
    data = magenta_bundle_path("performance_with_dynamics").read_bytes()
    path = tmp_path / "truncated.mag"
    path.write_bytes(data[:keep])
    assert_clear_error(path, "cannot load bundle")


def test_random_bytes_give_a_clear_error(tmp_path):
    path = tmp_path / "noise.mag"
    path.write_bytes(np.random.default_rng(1).bytes(5000))
    assert_clear_error(path, "cannot load bundle")


def test_missing_bundle_says_so(tmp_path):
    assert_clear_error(tmp_path / "nowhere.mag", "no such file")


def rewritten_bundle(tmp_path, change) -> object:
    proto = generator_pb2.GeneratorBundle()
    proto.ParseFromString(magenta_bundle_path("performance_with_dynamics").read_bytes())
    change(proto)
    path = tmp_path / "changed.mag"
    path.write_bytes(proto.SerializeToString())
    return path


def test_unknown_generator_id_is_named(tmp_path):
    path = rewritten_bundle(tmp_path, lambda p: setattr(p.generator_details, "id", "drums_rnn"))
    assert_clear_error(path, "unknown generator id", "drums_rnn")


def test_shape_mismatch_is_explained(tmp_path):
    # 'performance' has no velocity events: 356 classes, but the weights have 388.
    path = rewritten_bundle(tmp_path, lambda p: setattr(p.generator_details, "id", "performance"))
    assert_clear_error(path, "shape mismatch", "356", "388")


def test_corrupt_checkpoint_is_reported(tmp_path):
    def corrupt(proto):
        data = bytearray(proto.checkpoint_file[0])
        data[100:5000] = b"\0" * 4900
        proto.checkpoint_file[0] = bytes(data)

    assert_clear_error(rewritten_bundle(tmp_path, corrupt), "checkpoint")


def test_bundle_without_checkpoint_is_reported(tmp_path):
    path = rewritten_bundle(tmp_path, lambda p: p.ClearField("checkpoint_file"))
    assert_clear_error(path, "no checkpoint")
