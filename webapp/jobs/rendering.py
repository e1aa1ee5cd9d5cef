"""A result's files made when first downloaded, in worker processes: WAV,
MP3, the piano roll (PNG) and the stems zip.

Rendering audio (TinySoundFont, ~90 ms for 30 s of piano), encoding MP3
(LAME) and drawing a piano roll (matplotlib, ~50 ms) are Python and C work
that hold the GIL. In the server's process they would hold up the sampler's
bookkeeping and the API's answers. A small pool of processes
(`RENDER_PROCESSES`) makes them beside the server instead; 0 makes them in
the calling thread. Jobs make none of them: a file is made on its first
download and kept in storage (webapp.jobs.downloads).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Hashable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from perfrnn.errors import PerfRNNError

log = logging.getLogger(__name__)

# A render process is replaced after this many files, so that nothing it
# leaks can grow without bound.
PIECES_PER_PROCESS = 500
KINDS = ("wav", "mp3", "pianoroll", "stems")


def make_file(kind: str, midi: bytes, notes: bytes | None, title: str, audio: bool) -> bytes:
    """The bytes of a result's file of `kind` (KINDS) from its MIDI file and
    its notes JSON (`perfrnn.notes_json`, needed for "pianoroll"); `audio`
    says whether the stems zip holds WAVs. Runs in a render process.

    Raises:
      PerfRNNError: the file cannot be made (AudioUnavailable: no audio here).
    """
    if kind == "wav":
        from perfrnn.audio import render_wav

        return render_wav(midi)
    if kind == "mp3":
        from perfrnn.audio import render_mp3

        return render_mp3(midi)
    if kind == "pianoroll":
        from perfrnn.notes_json import sequence_from_notes
        from perfrnn.pianoroll import pianoroll_png

        if notes is None:
            raise PerfRNNError("the piano roll is drawn from the notes, which this result "
                               "does not have")
        sequence, tracks = sequence_from_notes(json.loads(notes))
        return pianoroll_png(sequence, tracks, title=title)
    if kind == "stems":
        from perfrnn.stems import stems_zip

        return stems_zip(midi, audio)
    raise ValueError(f"no file kind {kind!r}; the kinds are {', '.join(KINDS)}")


def _leave_with(parent: int) -> None:
    """In a render process: exits as soon as the process that started it is
    gone (killed, say), so that no render process outlives its server."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


class Renderer:
    """Makes files in `processes` spawned processes, started on first use
    (0: in the calling thread). A pool whose process died is replaced."""

    def __init__(self, processes: int):
        self.processes = max(0, int(processes))
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()
        self._making: dict[Hashable, Future] = {}  # files being made, by key

    def submit(self, kind: str, midi: bytes, notes: bytes | None, title: str,
               audio: bool) -> Future:
        """A Future of `make_file(kind, midi, notes, title, audio)`."""
        arguments = (kind, midi, notes, title, audio)
        if not self.processes:
            future: Future = Future()
            try:
                future.set_result(make_file(*arguments))
            except Exception as error:  # as a pool would hand it over
                future.set_exception(error)
            return future
        with self._lock:
            for _attempt in range(2):
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(
                        self.processes, mp_context=multiprocessing.get_context("spawn"),
                        max_tasks_per_child=PIECES_PER_PROCESS,
                        initializer=_leave_with, initargs=(os.getpid(),))
                try:
                    return self._pool.submit(make_file, *arguments)
                except BrokenProcessPool:  # a render process died: start afresh
                    log.warning("a render process died; starting new ones")
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
            raise PerfRNNError("the audio and piano roll renderer cannot start")

    def shared(self, key: Hashable, kind: str, midi: bytes, notes: bytes | None, title: str,
               audio: bool) -> Future:
        """As `submit`, but while a file of the same `key` is being made, its
        Future is handed out again instead of making it twice (two first
        downloads at once)."""
        with self._lock:
            future = self._making.get(key)
            if future is not None:
                return future
        future = self.submit(kind, midi, notes, title, audio)
        with self._lock:
            future = self._making.setdefault(key, future)

        def forget(done: Future) -> None:
            with self._lock:
                if self._making.get(key) is done:
                    del self._making[key]

        future.add_done_callback(forget)
        return future

    def warm_up(self, audio: bool) -> None:
        """Starts the render processes and has each make a second of audio and a
        piano roll (matplotlib and the synthesizer load in about a second), so
        that no download waits for it."""
        from note_seq.protobuf import music_pb2

        from perfrnn.configs import TrackRole
        from perfrnn.midi_writer import midi_bytes
        from perfrnn.notes_json import notes_json

        sequence = music_pb2.NoteSequence(total_time=1.0)
        sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=0.5)
        tracks = (TrackRole("piano", 0),)
        midi = midi_bytes(sequence, tracks)
        notes = json.dumps(notes_json(sequence, tracks, bpm=120.0)).encode()
        futures = [self.submit(kind, midi, notes, "warm-up", audio)
                   for _ in range(self.processes or 1)  # each process, or this one
                   for kind in (("wav", "pianoroll") if audio else ("pianoroll",))]
        for future in futures:
            future.result()

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
