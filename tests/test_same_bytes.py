"""Same seed, same bytes, across changes to the sampler.

Every shipped bundle, at two lengths, continuing a primer, as a seamless
loop and as a radio stream, must give the MIDI bytes whose SHA-256 digests
were recorded here before the sampler was refactored (issue 24). A change
that moves any random stream, any table or any rule of the note grammar
changes a digest and fails this test; a change that must do so on purpose
re-records them and says why in its note:

    .venv/bin/python tests/test_same_bytes.py --record
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from note_seq.protobuf import music_pb2  # noqa: E402

from perfrnn.generate import generate_midi  # noqa: E402
from perfrnn.options import GenerationOptions  # noqa: E402
from perfrnn.registry import load_bundle  # noqa: E402
from perfrnn.sampler import Sampler  # noqa: E402

BUNDLES = ("blues", "drums", "electronic", "jazz", "latin", "piano", "rock")
# name -> options; "primer" continues `primer()`
CASES = {
    "short": dict(seconds=4.0, seed=11, variations=2),
    "long": dict(seconds=20.0, seed=5, candidates=2),
    "primer": dict(seconds=6.0, seed=3),
    "loop": dict(bars=2, loop=True, bpm=100.0, seed=9),
}
STREAM_STEPS = (96, 240)  # steps asked of a radio stream, call by call

# Recorded with `--record` at ade0c37 (before the sampler was split); piano's
# loop, added later, at ade0c37 too.
DIGESTS = {
    'blues/short/0': 'eba69708c61ad05b39c8f44f09cfbdba6fee6d2fdc2ce73e8094479f1ca49321',
    'blues/short/1': '48d5e7d9936c81c5c53bd181fc3f17fd8988055f24b3074e29eed73a980b5c73',
    'blues/long/0': '526f0436bd71d8d590646ba9551d9e3f356a555b5fea26575567c35a6d31bdaf',
    'blues/primer/0': '3c2661f4bf581711fffed5546cceee0f085876d8eeaf71a68cd150ebc3506364',
    'blues/loop/0': 'f34619cdaf99819fc893a2e90b34b404542ff4b8a1040364676e5fa56d366bbc',
    'blues/stream': '872f8fdd0bed8df301ece29875f3084636e8f2945c6170bd9217657c535e337f',
    'drums/short/0': '16643e484a25fcfecb0e735848daaa46fc7b6dbc7eedf24558555cd3e19e61f2',
    'drums/short/1': '7e57a69893b97f5c99b25b17904e0786f44d2ba7369b3cf7b5f2af17082054e2',
    'drums/long/0': '6353bbb6ab07aa17159f55b68645c175c8705adef20cf39f13643e24cb3cd8ce',
    'drums/primer/0': '23da889f70e1c841440471d34872b84c9ca829ffd794f05a57a6e7cbf546ecb2',
    'drums/loop/0': 'ecec4c2e2edec7464f3d389c386ffc696b424709b7d63e1e9cb2bb566e03b7d8',
    'drums/stream': '024dea083881bfa4553b165877dac79876b25fe0e4731d5593664ae343645b4d',
    'electronic/short/0': 'a0f882e8d6dc8040207a38f9a9dc8741d1eabd057665c12aae3c384d374899a6',
    'electronic/short/1': '71b03873c9f3c166165f8f9180d76b06558698a28b8752f659bd87df79682259',
    'electronic/long/0': '539f23db1cff3c0bc7a5a481643428963ce4c535c7d699f3bd8e0fdea11b888e',
    'electronic/primer/0': '897a5a02f602b6e3e4f3e7a9b137da85532946846fa5ac69d5574afc9c8cb860',
    'electronic/loop/0': '6adc79e66f1ee3758d29d83d3ae55c52aa44343c8abbb348e5fa5efb01da57ff',
    'electronic/stream': '3d3fccc4c1642096c39ae628a3e38bb8878ca9d19b4c9aa9b4146a4c9e21dcb3',
    'jazz/short/0': '728bf9187f36a007aebb7ae5bcef70de7c073fd67156709d00187f67a7e9612c',
    'jazz/short/1': 'c9b462167f61394f533458b8d51efb2dd5844226a0db7bbdb89daaa5ddc21115',
    'jazz/long/0': '93b7dd4a591ab6151513958f9a624a4f7b540e087f8332b2e6f8bc4e945ffd3d',
    'jazz/primer/0': '82002c7a385d175bcd81e7de59b44a634fec3d0a1ff466e968ed7552b944b4b2',
    'jazz/loop/0': '4c1719e069028a81123aeda6014b6fb4fcaf2fb0624a0d14ccc78239b492c3c8',
    'jazz/stream': '10ae91abcb4744da1920921555b3f0a4e43f8597cf2e95586ad5694aa485146c',
    'latin/short/0': 'e43161eff50e8b3904f39ade1da9d8d3f5752603701b8be64c51e779f1917fae',
    'latin/short/1': '3323a9cae6996dfad3356f45107b631fbfd054454665439cb303646556801f8b',
    'latin/long/0': 'f33c6574508242af76b6be444f80a81cd136426003676256ada08380f9c94595',
    'latin/primer/0': '54a0d1576a3fcc270e143bf6ee8f536d21003243de3b237066dded2d61972a36',
    'latin/loop/0': '3c02bd8000e65b11379bf589353420863e3b6ed62bcf8d1c6c22eff2a726eb43',
    'latin/stream': 'e070f7598e721b77c74ca372eac7aa04ca571318c145bec142df5450fc7747c5',
    'piano/short/0': '70caa94c8140bd8d96cb301bb0c9c768e265e71773491a14dcfe65a09114890a',
    'piano/short/1': '249833e0ac50bc8685fe28c8d0d1216ff881d04b078ddf8d90ec717fd0f330ca',
    'piano/long/0': 'e315116ff08fbc443bc27593f64565d96b1768a4e9dcd68695aa08be8179581b',
    'piano/primer/0': '814a970a7448bd2950299a60f388513b6e9f1f68d6fcaeb4f7d2d43b410c8007',
    'piano/loop/0': 'accb65de54ca4d9fe20b7f8b9dd7c0f91abe8e225a9d17e50789e12e73fb54eb',
    'piano/stream': 'b5de56589c70624946683b719097482a4806c34cccde31c6ddb307cc4cb63c6b',
    'rock/short/0': '064a4d95822f413807394027005d1262afd8ed2ed4aa7a3e0344e38a235c8854',
    'rock/short/1': 'f58605132a95312ab02fbb5424ad61a65c6f9f480b06afb137cc34da413b54a4',
    'rock/long/0': '90c15434360137ab55f27feb3f45be578f814bd185a25a8440c3e248c116dc2d',
    'rock/primer/0': 'bfd48b53ef288ade0f4555237bf7fd81e2351ef2e0fa3116c5b40efaff0cddec',
    'rock/loop/0': '8464ce061ce5649f567fbc4b6974f6fcbcdde92e97456363d7de9861dc0e08df',
    'rock/stream': 'f13727697e136cb031c609ae3a88c57fd9cb8fe225a5eb5fac1bf32efb0eca98',
}


def primer() -> music_pb2.NoteSequence:
    """Two bars at 120 bpm: a kick and snare beat, a bass line and chords."""
    sequence = music_pb2.NoteSequence()
    sequence.tempos.add(qpm=120.0)
    sequence.time_signatures.add(numerator=4, denominator=4)
    for beat in range(8):
        start = beat * 0.5
        sequence.notes.add(pitch=36 if beat % 2 == 0 else 38, velocity=100, start_time=start,
                           end_time=start + 0.1, is_drum=True, instrument=9)
        sequence.notes.add(pitch=42, velocity=70, start_time=start + 0.25,
                           end_time=start + 0.35, is_drum=True, instrument=9)
        sequence.notes.add(pitch=(40, 43, 45, 43)[beat % 4], velocity=90, start_time=start,
                           end_time=start + 0.45, program=33, instrument=1)
    for bar, root in enumerate((60, 65)):
        for offset in (0, 4, 7):
            sequence.notes.add(pitch=root + offset, velocity=80, start_time=bar * 2.0,
                               end_time=bar * 2.0 + 1.9, instrument=2)
    sequence.total_time = 4.0
    return sequence


def digests_of(style: str) -> dict[str, str]:
    """The SHA-256 of every file each case makes of `style`, and of a stream's events."""
    sampler = Sampler(load_bundle(ROOT / "bundles" / f"{style}.mag"))
    digests = {}
    for case, options in CASES.items():
        made = generate_midi(sampler, GenerationOptions(**options),
                             primer=primer() if case == "primer" else None)
        for index, piece in enumerate(made.pieces):
            digests[f"{style}/{case}/{index}"] = hashlib.sha256(piece.midi).hexdigest()
    stream = sampler.open_stream(GenerationOptions(seed=21, temperature=0.9))
    events = hashlib.sha256()
    for steps in STREAM_STEPS:
        events.update(stream.extend(steps).astype("<i4").tobytes())
    digests[f"{style}/stream"] = events.hexdigest()
    return digests


@pytest.mark.parametrize("style", BUNDLES)
def test_same_seed_gives_the_bytes_recorded_before_the_change(style):
    recorded = {key: value for key, value in DIGESTS.items() if key.startswith(f"{style}/")}
    assert recorded, f"no digests recorded for {style}: run this file with --record"
    assert digests_of(style) == recorded


if __name__ == "__main__":
    if "--record" not in sys.argv:
        sys.exit(__doc__)
    for name in BUNDLES:
        for key, value in digests_of(name).items():
            print(f"    {key!r}: {value!r},", flush=True)
