"""A real notation program reads our drum and band files on their own beat.

MuseScore 3 guesses a file's metre and tempo from its notes when they do not
sit on the file's own beat grid (it takes them for a human performance). So a
file it imports with the time signature and tempo written in it is a file
whose bars line up in a DAW too. Runs headless under xvfb-run where Debian's
`musescore3` is installed (`bash tests/install_musescore.sh`; CI does).
"""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from perfrnn.bundle import read_bundle
from perfrnn.generate import generate_midi
from perfrnn.options import GenerationOptions
from perfrnn.sampler import Sampler

BUNDLES = Path(__file__).resolve().parent.parent / "bundles"
MSCORE = shutil.which("mscore3") or shutil.which("musescore3")
XVFB_RUN = shutil.which("xvfb-run")

pytestmark = [
    pytest.mark.slow,  # MuseScore under Xvfb, started once per style
    pytest.mark.skipif(
        not (MSCORE and XVFB_RUN),
        reason="musescore3 or xvfb-run is not installed (bash tests/install_musescore.sh)"),
]


def musescore_metre_and_tempo(midi_path: Path, out_dir: Path) -> tuple[str, float]:
    """The first time signature and tempo of MuseScore's import of a MIDI file."""
    xml_path = out_dir / (midi_path.stem + ".musicxml")
    completed = subprocess.run(
        [XVFB_RUN, "-a", MSCORE, "-o", str(xml_path), str(midi_path)],
        capture_output=True, text=True, timeout=180)
    assert xml_path.is_file(), f"MuseScore failed: {completed.stdout[-500:]}"
    root = ElementTree.parse(xml_path).getroot()
    time = root.find(".//time")
    sound = next(element for element in root.iter("sound") if element.get("tempo"))
    return f"{time.findtext('beats')}/{time.findtext('beat-type')}", float(sound.get("tempo"))


@pytest.mark.parametrize("style", ["drums", "rock", "electronic"])
def test_musescore_imports_default_files_with_their_own_metre_and_tempo(tmp_path, style):
    bundle = read_bundle(BUNDLES / f"{style}.mag")
    assert bundle.config.is_metric
    generation = generate_midi(Sampler(bundle), GenerationOptions(seconds=30, seed=1))
    files = generation.files
    name, data = files[0]
    path = tmp_path / name
    path.write_bytes(data)
    metre, tempo = musescore_metre_and_tempo(path, tmp_path)
    assert metre == bundle.metadata.time_signature
    assert tempo == pytest.approx(generation.bpm, abs=0.5)
