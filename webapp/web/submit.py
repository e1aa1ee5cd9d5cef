"""What the pages and the API do with a submission, written once for both:
checking uploads, creating jobs and queueing them, and importing bundles."""

from __future__ import annotations

import os
import tempfile
import threading
import uuid
from pathlib import Path

from perfrnn.errors import PerfRNNError
from webapp.jobs.queues import QueueFull
from webapp.jobs.services import Services
from webapp.jobs.store import QUEUED, RUNNING, Job
from webapp.web.schema import (
    BUNDLE_IMPORT,
    GENERATION,
    PRIMER_SUFFIXES,
    TRAINING_SUFFIXES,
    Field,
)
from webapp.web.security import Refused, client_key
from webapp.web.validation import (
    ValidationError,
    new_style_name,
    upload_name,
)

MAX_TRAINING_FILES = 2000
# An .mxl primer is a zip read into memory whole: a primer is a short piece.
MAX_PRIMER_UNPACKED_BYTES = 4 << 20
PRIMER_READERS = 2
"""Primers parsed at once in this process (a 512 KiB primer parses in about a
second); beyond, a request is answered 503 with Retry-After."""
_primer_readers = threading.BoundedSemaphore(PRIMER_READERS)


def read_upload(upload, field: Field) -> bytes:
    """An upload's bytes, refused (413, naming the limit) past its field's `max_bytes`."""
    limit = field.max_bytes
    data = upload.read() if limit is None else upload.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise ValidationError({field.name: f"{upload.filename} is larger than a {field.label} "
                                           f"may be ({limit >> 10:,} KiB)"}, status=413)
    return data


def _queue(services: Services, queue, job: Job) -> Job:
    try:
        queue.submit(job)
    except QueueFull:
        services.store.delete(job.id)
        if job.params.get("primer"):
            services.storage.delete_prefix(str(Path(job.params["primer"]).parent))
        raise
    return job


def save_primer(services: Services, upload) -> str:
    """Checks an uploaded primer (MIDI or MusicXML) parses and is within the
    primer limits (size, length, notes); returns its storage key."""
    from perfrnn.options import check_primer

    errors: dict[str, str] = {}
    name = upload_name(upload.filename, PRIMER_SUFFIXES, "primer", errors)
    if name is None:
        raise ValidationError(errors)
    data = read_upload(upload, GENERATION["primer"])
    if not _primer_readers.acquire(blocking=False):
        raise QueueFull(retry_after=2)
    try:
        primer = _read_primer(data, name, upload.filename)
    finally:
        _primer_readers.release()
    if not primer.notes:
        raise ValidationError({"primer": f"{upload.filename} has no notes to continue"})
    try:
        check_primer(primer)
    except PerfRNNError as error:
        raise ValidationError({"primer": f"{upload.filename}: {error}"}) from None
    return services.storage.put(f"uploads/{uuid.uuid4().hex[:16]}/{name}", data)


def _read_primer(data: bytes, name: str, filename: str):
    """The primer's notes, or a ValidationError saying why it does not read."""
    from perfrnn.archives import check_zip
    from perfrnn.music_io import read_music_file

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        try:
            if path.suffix.lower() == ".mxl":  # a zip the reader unpacks in memory
                unpacked = sum(entry.file_size for entry in check_zip(path))
                if unpacked > MAX_PRIMER_UNPACKED_BYTES:
                    raise PerfRNNError(f"it unpacks to {unpacked >> 20} MiB, more than a "
                                       f"primer may ({MAX_PRIMER_UNPACKED_BYTES >> 20} MiB)")
            primer = read_music_file(path)
        except PerfRNNError as error:  # said of the upload, not the temporary file
            reason = error.describe(name, lead=error.path != str(path))
            raise ValidationError({"primer": f"{filename}: {reason}"}) from None
    return primer


def request_share() -> dict:
    """The current request's client and how many jobs one client may have at
    once (MAX_JOBS_PER_CLIENT), for `submit_generation` and `submit_training`."""
    from flask import current_app

    return {"client": client_key(), "limit": int(current_app.config["MAX_JOBS_PER_CLIENT"])}


def check_share(services: Services, client: str | None, limit: int) -> None:
    """Raises Refused (429) when `client` already has `limit` jobs waiting or
    running, so that one client cannot fill the queue that everyone shares."""
    if client is None:
        return
    active = services.store.count((QUEUED, RUNNING), client=client)
    if active >= limit:
        raise Refused(429, f"you have {active} jobs waiting or running, the most one client "
                           "may; wait for one to finish", 10)


def submit_generation(services: Services, queue, params: dict, owner: str | None,
                      primer=None, client: str | None = None, limit: int = 4) -> Job:
    """Checks the client's share and the primer, then records and queues the job."""
    check_share(services, client, limit)
    if primer is not None and primer.filename:
        params = dict(params, primer=save_primer(services, primer))
    return _queue(services, queue, services.store.create("generation", params, owner, client))


def submit_training(services: Services, queue, params: dict, uploads: list,
                    owner: str | None, client: str | None = None, limit: int = 4) -> Job:
    """Checks the client's share, saves the uploaded music files (or zips) and
    queues the training job."""
    check_share(services, client, limit)
    errors: dict[str, str] = {}
    if params.get("name") in services.store.active_training_names():
        raise ValidationError({"name": f"a style called {params['name']!r} is being trained "
                                       "right now; choose another name or wait for it"})
    uploads = [upload for upload in uploads if upload and upload.filename]
    if not uploads:
        raise ValidationError({"files": "choose some MIDI, MusicXML or ABC files, or a zip"})
    if len(uploads) > MAX_TRAINING_FILES:
        raise ValidationError({"files": f"at most {MAX_TRAINING_FILES} files at once; "
                                        "put more in a zip"})
    names = []
    for upload in uploads:
        name = upload_name(upload.filename, TRAINING_SUFFIXES, "files", errors)
        if name is None:
            raise ValidationError(errors)
        names.append(name)
    folder = f"uploads/{uuid.uuid4().hex[:16]}"
    keys, seen = [], set()
    for upload, name in zip(uploads, names):
        stem, suffix = os.path.splitext(name)
        unique, number = name, 1
        while unique in seen:
            number += 1
            unique = f"{stem}-{number}{suffix}"
        seen.add(unique)
        data = upload.read()
        if not data:
            services.storage.delete_prefix(folder)
            raise ValidationError({"files": f"{upload.filename} is empty"})
        keys.append(services.storage.put(f"{folder}/{unique}", data))
    job = services.store.create("training", dict(params, uploads=keys), owner, client)
    try:
        return _queue(services, queue, job)
    except QueueFull:
        services.storage.delete_prefix(folder)
        raise


def import_bundle(services: Services, upload, name: str | None = None) -> str:
    """Adds an uploaded `.mag` (ours or Magenta's) as a style; returns its name.

    The file is checked by loading it before it is put in place.
    """
    from perfrnn.registry import load_bundle

    errors: dict[str, str] = {}
    filename = upload_name(getattr(upload, "filename", None), (".mag",), "bundle", errors)
    if filename is None:
        raise ValidationError(errors)
    wanted = name or Path(filename).stem.lower().replace(".", "_")
    style = new_style_name(wanted, services.registry, errors, "name")
    if style is not None and style in services.store.active_training_names():
        errors["name"] = (f"a style called {style!r} is being trained right now; "
                          "choose another name")
        style = None
    if style is None:
        if not name:  # the user left the name blank: say where it came from
            errors["name"] = (f"the file's name gives the style name {wanted!r}, which "
                              f"cannot be used ({errors['name']}); give the style a name")
        raise ValidationError(errors)
    services.styles_dir.mkdir(parents=True, exist_ok=True)
    final = services.styles_dir / f"{style}.mag"
    handle, partial = tempfile.mkstemp(dir=services.styles_dir, prefix=f".{style}-",
                                       suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(read_upload(upload, BUNDLE_IMPORT["bundle"]))
        try:
            load_bundle(Path(partial))
        except PerfRNNError as error:  # said of the upload, not the server's file
            reason = error.describe(filename, lead=error.path != partial)
            raise ValidationError({"bundle": f"{filename} is not a bundle that loads: "
                                             f"{reason}"}) from None
        if final.exists():
            raise ValidationError({"name": f"there is already a style called {style!r}"})
        os.replace(partial, final)
    finally:
        Path(partial).unlink(missing_ok=True)
    services.registry.forget(final)
    if services.bundles is not None:
        services.bundles.publish(final, style)
    return style
