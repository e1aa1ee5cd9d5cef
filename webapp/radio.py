"""Live radio streams: the server side of `perfrnn.radio`.

A `LiveStream` runs one `Radio` on a thread of its own, a little ahead of
real time: it makes music while what it has made is less than LEAD_SECONDS
ahead of what the listener has had time to hear (the wall clock since they
started listening), then waits. Its MP3 chunks go into a short ring that
each listener reads from; a listener who falls behind (a slow or stalled
client) skips ahead to the live edge, so nobody ever blocks the producer,
another stream or the generation jobs. A stream with no listener for
IDLE_SECONDS, or deleted, stops and frees its synthesizer and row.

`StreamHub` holds them: at most MAX_RADIO_STREAMS at once (503 beyond), at
most LISTENERS_PER_STREAM connections each. `init_app` puts one on the app.

With the AWS backend, streams run here, on the web server that answers the
stream's requests, not on the GPU workers: a stream is long-lived and holds
state (an LSTM row, a synthesizer, an encoder) that a queue of short jobs
cannot carry. More listeners mean more web servers behind the load balancer,
with sticky routing by stream id (see docs/design-notes.md).
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
from collections.abc import Iterator

from perfrnn.errors import PerfRNNError

# Music made ahead of what the listener has heard: a change is heard after this
# plus the rest of the bar (a chunk); a slow server eats into it before an underrun.
LEAD_SECONDS = 1.5
RING_CHUNKS = 16  # MP3 chunks kept for listeners (a few seconds a chunk)
IDLE_SECONDS = 10.0  # a stream nobody listens to stops after this
WAIT_SECONDS = 0.25  # how often a waiting producer or listener looks again
LISTENERS_PER_STREAM = 2

log = logging.getLogger(__name__)


class StreamsFull(Exception):
    """Every radio slot is taken; try again later."""

    retry_after = 10


class LiveStream:
    """One radio stream: its Radio, its producer thread and its MP3 ring."""

    def __init__(self, radio, style: str, settings: dict):
        self.id = secrets.token_hex(8)
        self.radio = radio
        self.style = style
        self.settings = dict(settings)
        self.created = time.time()
        self._lock = threading.Condition()
        # (number, MP3 bytes, the second of audio the chunk starts at)
        self._ring: collections.deque[tuple[int, bytes, float]] = collections.deque()
        self._next = 0  # sequence number of the next chunk
        self._listening_since: float | None = None  # when the first listener came
        self._heard_seconds = 0.0  # audio made when the current listening began
        self._last_listener = time.monotonic()
        self.listeners = 0
        self.stopped = False
        self.error: str | None = None
        self.conditioned = radio.conditioned  # fixed for the stream's life
        self._thread = threading.Thread(target=self._produce, name=f"radio-{self.id}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _position(self) -> float:
        """Where the listener's wall clock says they are in the stream, in
        seconds of audio (0 before anyone listens); may pass what was made."""
        if self._listening_since is None:
            return 0.0
        return self._heard_seconds + time.monotonic() - self._listening_since

    def heard_seconds(self) -> float:
        """About where the listener is in the stream (seconds of audio)."""
        return min(self._position(), self.radio.seconds)

    def _ahead(self) -> float:
        """Seconds of audio made beyond what the listener has had time to hear."""
        return self.radio.seconds - self._position()

    def _produce(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self.stopped:
                        if self.listeners == 0 and \
                                time.monotonic() - self._last_listener > IDLE_SECONDS:
                            self.stopped = True  # nobody listens, even if it lags behind
                        elif self._ahead() >= LEAD_SECONDS:
                            self._lock.wait(WAIT_SECONDS)
                        else:
                            break
                    if self.stopped:
                        break
                start = self.radio.seconds
                chunk = self.radio.next_chunk()  # outside the lock: listeners read meanwhile
                with self._lock:
                    self._ring.append((self._next, chunk, start))
                    self._next += 1
                    while len(self._ring) > RING_CHUNKS:
                        self._ring.popleft()
                    self._lock.notify_all()
        except Exception as error:  # the stream ends; the server goes on
            log.exception("radio stream %s failed", self.id)
            self.error = str(error) if isinstance(error, PerfRNNError) else \
                "the stream stopped because of an error on the server"
        finally:
            with self._lock:
                self.stopped = True
                self._lock.notify_all()
            self.radio = _Ended(self.radio)  # free the row, synthesizer and encoder

    def listen(self) -> Listener:
        """The MP3 bytes from the live edge on, as they are made; ends when the
        stream stops. The listener's slot is given back when the iterator is
        closed or dropped, even if it was never read (a HEAD request).
        Raises StreamsFull when the stream has all its listeners."""
        with self._lock:
            if self.listeners >= LISTENERS_PER_STREAM:
                raise StreamsFull()
            self.listeners += 1
            # start at the newest chunk: the player fills its buffer with it, and
            # a change is heard after it (a reconnection does not replay the ring)
            cursor, start = ((self._ring[-1][0], self._ring[-1][2]) if self._ring
                             else (self._next, self.radio.seconds))
            if self._listening_since is None or self.listeners == 1:
                self._listening_since = time.monotonic()
                self._heard_seconds = start
            self._lock.notify_all()
        return Listener(self, cursor)

    def _read(self, cursor: int) -> Iterator[bytes]:
        while True:
            with self._lock:
                while not self.stopped and (not self._ring or self._ring[-1][0] < cursor):
                    self._lock.wait(WAIT_SECONDS)
                if self.stopped and (not self._ring or self._ring[-1][0] < cursor):
                    return
                if cursor < self._ring[0][0]:  # fell behind: skip to the live edge
                    cursor = self._ring[-1][0]
                chunks = [data for number, data, _ in self._ring if number >= cursor]
                cursor = self._ring[-1][0] + 1
            yield b"".join(chunks)

    def _leave(self) -> None:
        with self._lock:
            self.listeners -= 1
            self._last_listener = time.monotonic()
            self._lock.notify_all()

    def change(self, **settings) -> None:
        """New tempo, creativity or controls (see `perfrnn.radio.Radio.change`)."""
        with self._lock:
            if self.stopped:
                raise PerfRNNError("the stream has stopped")
            self.radio.change(**{name: value for name, value in settings.items()
                                 if name != "key" and value is not None})
            named = {"notes_per_second": "density", "bpm": "bpm",
                     "temperature": "temperature", "key": "key"}
            self.settings.update({named[name]: value for name, value in settings.items()
                                  if value is not None and name in named})

    def midi(self, minutes: float | None) -> bytes:
        return self.radio.midi(minutes)  # the Radio copies what it needs under its lock

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            self._lock.notify_all()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def to_dict(self) -> dict:
        with self._lock:
            return {"id": self.id, "style": self.style, "state":
                    "stopped" if self.stopped else "playing",
                    "seconds": round(self.radio.seconds, 3), "listeners": self.listeners,
                    "heard_seconds": round(self.heard_seconds(), 3),
                    # what was asked for: the music takes it at its next chunk or bar
                    "bpm": self.settings.get("bpm", self.radio.bpm),
                    "temperature": self.settings.get("temperature", self.radio.temperature),
                    "seed": self.radio.seed, "error": self.error,
                    **{name: self.settings.get(name) for name in ("type", "key", "density")}}


class Listener:
    """One listener's MP3 bytes (see `LiveStream.listen`): an iterator whose
    slot is given back exactly once, on `close()`, at its end, or when it is
    dropped unread."""

    def __init__(self, stream: LiveStream, cursor: int):
        self._stream = stream
        self._chunks = stream._read(cursor)
        self._open = True

    def __iter__(self) -> Listener:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise

    def close(self) -> None:
        if self._open:
            self._open = False
            self._chunks.close()
            self._stream._leave()

    def __del__(self):
        self.close()


class _Ended:
    """What is left of a Radio once its stream stopped: its figures, without
    the row, the synthesizer, the encoder or the notes."""

    def __init__(self, radio):
        self.seconds, self.bpm, self.temperature = radio.seconds, radio.bpm, radio.temperature
        self.seed, self.conditioned = radio.seed, radio.conditioned

    def midi(self, minutes):
        raise PerfRNNError("the stream has stopped")

    def change(self, **settings):
        raise PerfRNNError("the stream has stopped")


class StreamHub:
    """The live streams of one server (thread-safe)."""

    def __init__(self, limit: int):
        self.limit = int(limit)
        self._streams: dict[str, LiveStream] = {}
        self._opening = 0  # slots reserved for streams being made
        self._lock = threading.Lock()

    def open(self, radio, style: str, settings: dict) -> LiveStream:
        """Starts a stream in the slot `reserve` kept for it."""
        with self._lock:
            self._opening -= 1
            stream = LiveStream(radio, style, settings)
            self._streams[stream.id] = stream
        stream.start()
        return stream

    def reserve(self) -> None:
        """Keeps a slot for a stream about to be made (before the costly making
        of its Radio); `open` fills it, `release` gives it back.
        Raises StreamsFull at the limit."""
        with self._lock:
            self._forget_stopped()
            if len(self._streams) + self._opening >= self.limit:
                raise StreamsFull()
            self._opening += 1

    def release(self) -> None:
        """Gives back a slot `reserve` kept, for a stream that was not made."""
        with self._lock:
            self._opening -= 1

    def get(self, stream_id: str) -> LiveStream | None:
        """The playing stream with this id (None once it stopped)."""
        with self._lock:
            stream = self._streams.get(stream_id)
            return stream if stream is not None and not stream.stopped else None

    def close(self, stream_id: str) -> bool:
        with self._lock:
            stream = self._streams.pop(stream_id, None)
        if stream is None:
            return False
        stream.stop()
        return True

    def playing(self) -> int:
        with self._lock:
            self._forget_stopped()
            return len(self._streams)

    def _forget_stopped(self) -> None:
        """Drops stopped streams (their slot is free; their MIDI goes with them)."""
        for stream_id in [key for key, stream in self._streams.items() if stream.stopped]:
            del self._streams[stream_id]

    def stop_all(self, timeout: float = 5.0) -> None:
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            stream.stop()
        for stream in streams:
            stream.join(timeout)


def init_app(app) -> None:
    """Puts a StreamHub on the app (`app.extensions["perfrnn_radio"]`)."""
    app.extensions["perfrnn_radio"] = StreamHub(app.config["MAX_RADIO_STREAMS"])
