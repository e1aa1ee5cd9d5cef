"""Magenta itself, beside our model: the released `magenta==2.1.4` package runs
in its own environment, `.venv-magenta` (`bash tests/install_magenta.sh`; its
pins cannot install beside ours), in a subprocess with TF_USE_LEGACY_KERAS=1.

- Magenta's own generator command plays the shipped piano bundle.
- Magenta's softmax for the reference inputs equals our model's, for Magenta's
  reference bundles and for the shipped piano bundle, both from the graph the
  bundle carries and from the graph Magenta's code builds today.

test_magenta_compat.py checks our model against the softmax Magenta wrote
into the fixtures once; this checks it against Magenta running now.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import magenta_bundle_path, magenta_reference_path

ROOT = Path(__file__).resolve().parent.parent
MAGENTA_VENV = ROOT / ".venv-magenta"
MAGENTA_PYTHON = MAGENTA_VENV / "bin" / "python"
PIANO = ROOT / "bundles" / "piano.mag"

pytestmark = [
    pytest.mark.slow,  # each Magenta run starts TensorFlow 1 graphs in a new process
    pytest.mark.skipif(
        not (MAGENTA_VENV / ".requirements.sha256").exists(),
        reason="needs Magenta's own environment .venv-magenta: bash tests/install_magenta.sh"),
]

CONDITIONED = "multiconditioned_performance_with_dynamics"
SOFTMAX_CASES = {
    # name: (bundle, the reference whose `inputs` are fed to it)
    "performance_with_dynamics": (magenta_bundle_path("performance_with_dynamics"),
                                  magenta_reference_path("performance_with_dynamics")),
    CONDITIONED: (magenta_bundle_path(CONDITIONED), magenta_reference_path(CONDITIONED)),
    # ours, exported for Magenta: 3 x 512, conditioned, so it takes the same inputs
    "shipped piano": (PIANO, magenta_reference_path(CONDITIONED)),
}


def run_magenta(arguments: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Runs .venv-magenta's Python with `arguments` from the repository root;
    fails the test with Magenta's error output if it does not succeed."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([str(MAGENTA_PYTHON), *arguments], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        pytest.fail(f"Magenta exited with {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def test_magentas_own_generator_plays_the_shipped_piano_bundle(tmp_path):
    """`performance_rnn_generate --bundle_file bundles/piano.mag`, exactly as a
    Magenta user runs it, writes a MIDI file of the length asked for, with
    notes, that our own reader opens."""
    from perfrnn.music_io import read_music_file

    seconds = 5
    out = tmp_path / "magenta"
    run_magenta(["-m", "magenta.models.performance_rnn.performance_rnn_generate",
                 f"--bundle_file={PIANO}", f"--output_dir={out}", "--num_outputs=1",
                 f"--num_steps={seconds * 100}",  # Magenta's 10 ms steps
                 "--notes_per_second=6",
                 "--pitch_class_histogram=[2, 0, 1, 0, 1, 0, 1, 2, 0, 1, 0, 1]"],
                timeout=300)
    written = sorted(out.glob("*.mid"))
    assert len(written) == 1, written

    sequence = read_music_file(written[0])
    assert len(sequence.notes) > 0
    assert sequence.total_time == pytest.approx(seconds, abs=0.02)
    for note in sequence.notes:
        assert 0 <= note.start_time < note.end_time <= seconds + 1e-6
        assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127
    assert not any(note.is_drum for note in sequence.notes)


@pytest.fixture(scope="module")
def magenta_softmax(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """Magenta's softmax for each case, computed in one run of
    tests/magenta_softmax.py (one start of TensorFlow)."""
    folder = tmp_path_factory.mktemp("magenta-softmax")
    arguments = [str(ROOT / "tests" / "magenta_softmax.py")]
    for name, (bundle, reference) in SOFTMAX_CASES.items():
        arguments += [str(bundle), str(reference), str(folder / f"{name}.npz")]
    run_magenta(arguments, timeout=400)
    return {name: dict(np.load(folder / f"{name}.npz")) for name in SOFTMAX_CASES}


@pytest.mark.parametrize("case", list(SOFTMAX_CASES))
def test_magentas_softmax_equals_ours(magenta_softmax, case):
    from perfrnn.bundle import read_bundle

    bundle_path, reference_path = SOFTMAX_CASES[case]
    bundle = read_bundle(bundle_path)
    ours = bundle.model.probabilities(np.load(reference_path)["inputs"])
    theirs = magenta_softmax[case]

    assert list(theirs["layer_sizes"]) == list(bundle.config.rnn_layer_sizes)
    for graph in ("metagraph", "rebuilt"):
        assert theirs[graph].shape == ours.shape == (300, 388), graph
        np.testing.assert_allclose(ours, theirs[graph], rtol=0, atol=1e-5,
                                   err_msg=f"Magenta's {graph} graph")


@pytest.mark.parametrize("case", ["performance_with_dynamics", CONDITIONED])
def test_magenta_here_is_the_magenta_that_made_the_fixtures(magenta_softmax, case):
    """The Magenta in .venv-magenta gives the softmax stored in the fixtures,
    so the comparison above is with the Magenta that made them."""
    stored = np.load(SOFTMAX_CASES[case][1])["softmax"]
    for graph in ("metagraph", "rebuilt"):
        np.testing.assert_allclose(magenta_softmax[case][graph], stored, rtol=0, atol=1e-5,
                                   err_msg=f"Magenta's {graph} graph")
