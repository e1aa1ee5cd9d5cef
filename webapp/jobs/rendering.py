"""Piano rolls and audio of generated pieces, drawn in worker processes.

Drawing a piano roll (matplotlib, ~50 ms) and rendering a WAV
(TinySoundFont, ~90 ms for 30 s) are Python and C work that hold the GIL. In
the server's process they would queue behind each other, behind the
sampler's bookkeeping and behind the API's answers, so that eight users at
once wait for eight pieces drawn one by one. A small pool of processes
(`RENDER_PROCESSES`) draws them beside the server instead; 0 draws them in
the calling thread.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from perfrnn.configs import TrackRole
from perfrnn.errors import PerfRNNError

log = logging.getLogger(__name__)

# A render process is replaced after this many pieces, so that nothing it
# leaks can grow without bound.
PIECES_PER_PROCESS = 500


@dataclass
class Drawn:
    """A piece's piano roll (PNG bytes), and its WAV bytes or why there are none."""

    pianoroll: bytes
    wav: bytes | None
    audio_problem: str | None


def draw_piece(sequence: bytes, tracks: tuple[TrackRole, ...], title: str, midi: bytes,
               audio: bool) -> Drawn:
    """The piano roll of `sequence` (a serialized NoteSequence) and, if `audio`,
    the WAV of `midi`; runs in a render process."""
    from note_seq.protobuf import music_pb2

    from perfrnn.pianoroll import pianoroll_png

    notes = music_pb2.NoteSequence.FromString(sequence)
    pianoroll = pianoroll_png(notes, tracks, title=title)
    if not audio:
        return Drawn(pianoroll, None, None)
    from perfrnn.audio import render_wav

    try:
        return Drawn(pianoroll, render_wav(midi), None)
    except PerfRNNError as error:
        return Drawn(pianoroll, None, str(error))


def _leave_with(parent: int) -> None:
    """In a render process: exits as soon as the process that started it is
    gone (killed, say), so that no render process outlives its server."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


class Renderer:
    """Draws pieces in `processes` spawned processes, started on first use
    (0: in the calling thread). A pool whose process died is replaced."""

    def __init__(self, processes: int):
        self.processes = max(0, int(processes))
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, sequence: bytes, tracks: tuple[TrackRole, ...], title: str,
               midi: bytes, audio: bool) -> Future:
        """A Future of the piece's `Drawn`."""
        arguments = (sequence, tracks, title, midi, audio)
        if not self.processes:
            future: Future = Future()
            try:
                future.set_result(draw_piece(*arguments))
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
                    return self._pool.submit(draw_piece, *arguments)
                except BrokenProcessPool:  # a render process died: start afresh
                    log.warning("a render process died; starting new ones")
                    self._pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = None
            raise PerfRNNError("the piano roll and audio renderer cannot start")

    def warm_up(self, audio: bool) -> None:
        """Starts the render processes and has each draw once (matplotlib and the
        synthesizer load in about a second), so that no request waits for it."""
        from note_seq.protobuf import music_pb2

        from perfrnn.midi_writer import midi_bytes

        sequence = music_pb2.NoteSequence(total_time=1.0)
        sequence.notes.add(pitch=60, velocity=80, start_time=0.0, end_time=0.5)
        tracks = (TrackRole("piano", 0),)
        midi = midi_bytes(sequence, tracks)
        futures = [self.submit(sequence.SerializeToString(), tracks, "warm-up", midi, audio)
                   for _ in range(2 * self.processes or 1)]  # each process, or this one
        for future in futures:
            future.result()

    def shutdown(self) -> None:
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
