"""A generation's files that are made when first downloaded, not by its job:
WAV, MP3, the piano roll (PNG) and the stems zip.

A job stores only what it must (the MIDI file, the notes, the NoteSequence
and the events; webapp.jobs.runner), so a piece nobody listens to costs no
audio. The first download of a file makes it in a render process
(webapp.jobs.rendering), stores it under a key named by its SHA-256 and
records the key and digest in the job's result (`JobStore.record_file`); the
next download is served from storage like the MIDI file. Two first
downloads at once in one server share one render; across servers both
render, the first recorded stays, and each answers with a whole file it
made (storage writes are atomic, and keys differ when bytes do).
"""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from perfrnn.audio import AudioUnavailable
from perfrnn.errors import PerfRNNError
from webapp.jobs.services import Services

# kind -> (file name suffix after the MIDI file's stem, whether it is audio)
MADE_ON_DOWNLOAD = {"wav": (".wav", True), "mp3": (".mp3", True),
                    "pianoroll": (".png", False), "stems": ("-stems.zip", False)}
MAKE_TIMEOUT_SECONDS = 300.0  # a 15-minute band's stems take about a minute here


class DownloadProblem(Exception):
    """A file that cannot be served: message, HTTP status and error code."""

    def __init__(self, message: str, status: int, code: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass
class Download:
    """A file to send: its storage key, bytes (None: `url` is where it is) and name."""

    key: str
    filename: str
    data: bytes | None = None


def server_audio(services: Services) -> tuple[bool, str]:
    """(True, "") if this server can make audio, else (False, why and the fix)."""
    if not services.render_audio:
        return False, "audio rendering is turned off on this server (RENDER_AUDIO)"
    from perfrnn.audio import audio_available

    return audio_available()


def stored_bytes(services: Services, job, entry: dict, field: str) -> bytes:
    """The bytes of the result file `entry[field]`, checked against the SHA-256
    recorded when it was made.

    Raises:
      DownloadProblem: 404 "expired" when it is no longer stored, 410 "damaged"
        when its bytes are not the ones made.
    """
    storage, key = services.storage, entry[field]
    path = storage.local_path(key)
    try:
        data = path.read_bytes() if path is not None else storage.get(key)
    except (OSError, PerfRNNError):
        raise DownloadProblem(f"the {field} file of job {job.id} is no longer stored (results "
                              "expire); generate again", 404, "expired") from None
    expected = (entry.get("sha256") or {}).get(field)
    if expected and not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
        raise DownloadProblem(
            f"the {field} file of job {job.id} was damaged or changed on the server since it "
            "was made; generate again (the same seed gives the same music)", 410, "damaged")
    return data


def made_file(services: Services, job, index: int, kind: str) -> Download:
    """Variation `index`'s file of `kind` (MADE_ON_DOWNLOAD), made now in a
    render process, stored and recorded in the job's result.

    Raises:
      DownloadProblem: 404 "no_audio" for audio where none can be made, 404
        "not_found" for a piano roll of a result stored without its notes,
        503 "busy" when it takes longer than MAKE_TIMEOUT_SECONDS, 422
        "cannot_make" when the music cannot be rendered; and as `stored_bytes`.
    """
    suffix, is_audio = MADE_ON_DOWNLOAD[kind]
    audio_ok, audio_message = server_audio(services)
    if is_audio and not audio_ok:
        raise DownloadProblem(f"there is no {kind} for this result: {audio_message}", 404,
                              "no_audio")
    result = job.result
    entry = result["variations"][index]
    midi = stored_bytes(services, job, entry, "midi")
    notes = None
    if kind == "pianoroll":
        if not isinstance(entry.get("notes"), str):  # stored before results had notes
            raise DownloadProblem(f"job {job.id} was stored without its notes, so its piano "
                                  "roll cannot be drawn; generate again", 404, "not_found")
        notes = stored_bytes(services, job, entry, "notes")
    title = f"{result.get('style', '')} - seed {result.get('seed', '')}"
    future = services.renderer.shared((job.id, index, kind), kind, midi, notes, title,
                                      audio_ok)
    try:
        data = future.result(timeout=MAKE_TIMEOUT_SECONDS)
    except FutureTimeout:
        raise DownloadProblem(f"the {kind} file is still being made; try again in a minute",
                              503, "busy") from None
    except AudioUnavailable as error:
        raise DownloadProblem(f"there is no {kind} for this result: {error}", 404,
                              "no_audio") from None
    except PerfRNNError as error:
        raise DownloadProblem(f"the {kind} file cannot be made: {error}", 422,
                              "cannot_make") from None
    digest = hashlib.sha256(data).hexdigest()
    stem = Path(entry["midi"]).name.removesuffix(".mid")
    key = str(Path(entry["midi"]).parent / f"{stem}.{digest[:16]}{suffix}")
    filename = f"{Path(entry.get('midi_name') or stem).stem}{suffix}"
    services.storage.put(key, data)
    recorded = services.store.record_file(job.id, index, kind, key, digest,
                                          None if kind == "pianoroll" else filename)
    if recorded is None:  # the job expired meanwhile: leave nothing behind
        services.storage.delete_prefix(key)
        raise DownloadProblem(f"the results of job {job.id} have expired and were deleted; "
                              "generate again (the same seed gives the same music)",
                              404, "expired")
    return Download(key, filename, data)
