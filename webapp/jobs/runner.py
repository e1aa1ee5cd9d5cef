"""What a worker does with a job: generate music or train a style.

These functions run on a worker (a local thread now, a GPU instance later)
with `Services`, never with Flask: they read the job's parameters from the
job store, report progress to it, write files to storage and record the
outcome. A failure becomes the job's error message; nothing escapes.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from perfrnn.errors import Fix, PerfRNNError
from training.kinds import KIND_DESCRIPTIONS
from webapp.jobs.services import Services
from webapp.jobs.store import CANCELLED

log = logging.getLogger(__name__)

# Share of a training job's progress bar per stage.
TRAINING_STAGES = {"prepare": (0.0, 0.05), "train": (0.05, 0.85), "evaluate": (0.85, 0.97),
                   "export": (0.97, 1.0)}
MAX_LOSS_POINTS = 400


class Throttle:
    """True at most once per `seconds` (and always when forced)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.last = 0.0

    def __call__(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.seconds:
            self.last = now
            return True
        return False


def run_job(services: Services, job_id: str) -> None:
    """Runs one queued job to its end; records done, failed or cancelled."""
    run_jobs(services, [job_id])


def run_jobs(services: Services, job_ids: list[str],
             more: Callable[[int], list[str]] | None = None) -> None:
    """Runs queued jobs to their end, recording each one done, failed or
    cancelled: trainings one by one, generations (all of one style) together,
    their music sampled as one batch; each generation is finished as soon as
    its own music is (see `perfrnn.generate.generate_midi_batch`).

    `more(count)`, if given, hands over up to `count` more waiting
    generations of the style, which join the batch while it runs (at most
    `services.generation_batch` jobs at a time)."""
    jobs = [job for job in (_start(services, job_id) for job_id in job_ids) if job is not None]
    for job in jobs:
        if job.kind != "generation":
            try:
                result = run_training(services, job)
            except Exception as error:
                _ended(services, job, error)
            else:
                services.store.finish(job.id, result)
    for job in jobs:  # an edit continues one stored piece, alone
        if job.kind == "generation" and job.params.get("edit"):
            _run_edit(services, job)
    generations = [job for job in jobs
                   if job.kind == "generation" and not job.params.get("edit")]
    if generations:
        _run_generations(services, generations, more)


def _start(services: Services, job_id: str):
    """The job, marked running; None if it was cancelled while it waited (its
    leftovers deleted) or is unknown."""
    store = services.store
    if store.start(job_id):
        return store.get(job_id)
    job = store.get(job_id)
    if job is not None and job.state == CANCELLED:
        discard_leftovers(services, job)
    return None


def _ended(services: Services, job, error: Exception) -> None:
    """Records why a job ended without a result, and deletes its leftovers;
    after a spot interruption it goes back to waiting instead."""
    store = services.store
    if not isinstance(error, PerfRNNError):  # a bug or an environment problem
        log.error("job %s crashed:\n%s", job.id,
                  "".join(traceback.format_exception(error)))
        store.fail(job.id, f"the worker hit an internal error ({type(error).__name__}); "
                           "the details are in the server log")
    elif services.interrupted is not None and services.interrupted() \
            and not store.cancel_requested(job.id):
        store.requeue(job.id, "the worker was stopped (spot interruption); another "
                              "worker carries on from the last checkpoint")
        return  # the next worker needs the uploads
    elif store.cancel_requested(job.id):
        store.fail(job.id, "cancelled by the user", CANCELLED)
    else:
        store.fail(job.id, str(error))
    discard_leftovers(services, job)


def discard_leftovers(services: Services, job) -> None:
    """Deletes what a failed, cancelled or killed job left: the result files it
    had written (a result is whole or absent) and a training's uploads (a new
    training of the style uploads its own; its checkpoints are kept, to
    resume from)."""
    services.storage.delete_prefix(f"jobs/{job.id}")
    uploads = job.params.get("uploads") if job.kind == "training" else None
    if uploads:
        services.storage.delete_prefix(str(Path(uploads[0]).parent))


# ----- generation -------------------------------------------------------------

def generation_options(params: dict):
    """The sampler's and the MIDI writer's options from a job's parameters
    (a length is the file's length at the tempo asked for: perfrnn's rule;
    "key" is a conditioned style's key control, "song_key" the key of the
    progressions of a style that follows chords)."""
    from perfrnn.generate import MidiOptions
    from perfrnn.options import GenerationOptions, candidates_for_quality, pitch_histogram_for_key

    options = GenerationOptions(
        seconds=float(params.get("seconds", 30)), bars=params.get("bars"),
        bpm=params.get("bpm"), loop=bool(params.get("loop")),
        temperature=float(params["temperature"]),
        seed=params.get("seed"), variations=int(params.get("variations", 1)),
        # a job queued before qualities existed ran one candidate ("fast")
        candidates=candidates_for_quality(params.get("quality", "fast")),
        notes_per_second=params.get("density"),
        pitch_histogram=pitch_histogram_for_key(params["key"]) if params.get("key") else None,
        blend=tuple((str(name), float(weight)) for name, weight in params["blend"])
        if params.get("blend") else None,
        chords=tuple(str(symbol) for symbol in params["chords"]) if params.get("chords")
        else None,
        form=params.get("form"), key=params.get("song_key"))
    midi = MidiOptions(quantize=bool(params.get("quantize")), program=params.get("program"),
                       track=params.get("part"), feel=params.get("feel", "straight"))
    return options, midi


def _read_primer(storage, key: str):
    from perfrnn.music_io import read_music_file

    suffix = Path(key).suffix
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"primer{suffix}"
        path.write_bytes(storage.get(key))
        return read_music_file(path)


def _run_generations(services: Services, jobs: list,
                     more: Callable[[int], list[str]] | None = None) -> None:
    """Generates the music of running generation jobs of one style in one
    sampling batch, which more jobs may join (`run_jobs`); each job's files
    are stored, and the job finished, as soon as its own music is made (a
    thread stores while the sampler goes on)."""
    from perfrnn.generate import generate_midi_batch

    ready: list = []  # the jobs handed to the sampler, by their index there
    finished: set[int] = set()

    def requests(jobs: list) -> list:
        made = []
        for job in jobs:
            try:
                made.append(_generation_request(services, job))
                ready.append(job)
            except Exception as error:
                _ended(services, job, error)
        return made

    def more_requests(room: int) -> list:
        count = min(room, services.generation_batch - (len(ready) - len(finished)))
        if more is None or count <= 0:
            return []
        started = (_start(services, job_id) for job_id in more(count))
        return requests([job for job in started if job is not None])

    def store(index: int, generated, audio: tuple[bool, str]) -> None:
        job = ready[index]
        try:
            services.store.finish(job.id, _store_generation(services, job, generated, audio))
        except Exception as error:
            _ended(services, job, error)

    first = requests(jobs)
    # Each job is stored as soon as its music is made, beside the sampling.
    storing = ThreadPoolExecutor(1, thread_name_prefix="store-results")
    try:
        if first:
            style = ready[0].params["style"]
            sampler = services.registry.sampler(style)
            audio = _audio_status(services)  # (whether audio can be made, and why not)
            for index, outcome in generate_midi_batch(sampler, first, more=more_requests):
                finished.add(index)
                try:
                    if isinstance(outcome, PerfRNNError):
                        raise outcome
                    storing.submit(store, index, outcome, audio)
                except Exception as error:  # its storing could not start: it ends here
                    _ended(services, ready[index], error)
            if len(ready) > 1:
                log.info("%d generations of %s sampled together", len(ready), style)
    except Exception as error:  # the style did not load, or the batch broke: all its jobs
        for index in sorted(set(range(len(ready))) - finished):
            _ended(services, ready[index], error)
    finally:
        storing.shutdown(wait=True)


def _generation_request(services: Services, job):
    """The job's request to the sampler, reporting progress and polling for a
    cancel through the job store."""
    from perfrnn.generate import MidiRequest

    store, params = services.store, job.params
    options, midi = generation_options(params)
    primer = _read_primer(services.storage, params["primer"]) if params.get("primer") else None
    report = Throttle(0.2)
    check = Throttle(0.5)

    def progress(fraction: float) -> None:
        if report(fraction >= 1.0):
            try:  # a status that cannot be written now is written next time
                store.progress(job.id, 0.9 * fraction, "generating")
            except Exception as error:
                log.warning("job %s: progress not recorded: %s", job.id, error)

    def cancelled() -> bool:
        try:
            return check() and store.cancel_requested(job.id)
        except Exception as error:  # asked again at the next block
            log.warning("job %s: cannot tell whether it was cancelled: %s", job.id, error)
            return False

    store.progress(job.id, 0.0, "generating")
    return MidiRequest(options, midi, primer, progress=progress, cancelled=cancelled,
                       style=params["style"])


def _run_edit(services: Services, job) -> None:
    """Runs an edit job (`perfrnn.edits`): the source version's events and
    notes from storage, edited, stored as this job's one variation."""
    try:
        generated, extra = edit_generation(services, job)
        result = _store_generation(services, job, generated, _audio_status(services))
        result.update(extra)
        services.store.finish(job.id, result)
    except Exception as error:
        _ended(services, job, error)


def edit_generation(services: Services, job):
    """The edited piece of an edit job, as a `Generated` of one piece, and what
    its result records besides: the join figures and, after an extend, the
    new length (the next edit's)."""
    import numpy as np
    from google.protobuf.message import DecodeError
    from note_seq.protobuf import music_pb2

    from perfrnn.edits import Edit, edit_piece
    from perfrnn.generate import edited_files, tracks_for_program

    params, edit, source = job.params, job.params["edit"], job.params["source"]
    gone = PerfRNNError("the version you edited has expired and was deleted; generate again "
                        "(the same seed gives the same music)")
    try:
        files = {field: services.storage.get(source[field]) for field in ("events", "sequence")}
    except (OSError, PerfRNNError):
        raise gone from None
    for field, data in files.items():
        expected = (source.get("sha256") or {}).get(field)
        if expected and hashlib.sha256(data).hexdigest() != expected:
            raise PerfRNNError("the version you edited was damaged or changed on the server "
                               "since it was made; generate again")
    try:
        events = np.load(io.BytesIO(files["events"]), allow_pickle=False)
        sequence = music_pb2.NoteSequence.FromString(files["sequence"])
    except (ValueError, OSError, DecodeError):
        raise PerfRNNError("the version you edited does not read back; generate again") \
            from None
    options, midi = generation_options(params)
    primer = _read_primer(services.storage, params["primer"]) if params.get("primer") else None
    sampler = services.registry.sampler(params["style"])
    services.store.progress(job.id, 0.1, "editing")
    change = Edit(kind=edit["kind"], first_bar=edit.get("first_bar", 1),
                  last_bar=edit.get("last_bar", 1), bars=edit.get("bars", 0),
                  parts=tuple(edit.get("parts", ())), seed=int(edit["seed"]),
                  temperature=float(edit["temperature"]))
    check = Throttle(0.5)

    def stop_if_cancelled() -> None:
        if check() and services.store.cancel_requested(job.id):
            raise PerfRNNError("generation was cancelled")

    metadata = sampler.bundle.metadata
    tracks = tracks_for_program(metadata.tracks, midi.program, midi.track, metadata.parts)
    edited = edit_piece(sampler, options, events, sequence, tracks, change, primer, midi.feel,
                        stop_if_cancelled)
    generated = edited_files(sampler, edited, tracks, midi, params["style"],
                             job.params["version"])
    extra = {"join_nll": edited.join, "original_join_nll": edited.original_join,
             "window": [round(edited.window[0], 6), round(edited.window[1], 6)]}
    if edit["kind"] == "extend":
        extra["length"] = ({"bars": edited.options.bars} if edited.options.bars
                           else {"seconds": edited.options.seconds})
    return generated, extra


def _store_generation(services: Services, job, generated, audio: tuple[bool, str]) -> dict:
    """Stores each of a job's pieces (`generated`): its MIDI file, the notes
    the browser draws and plays (`perfrnn.notes_json`), its NoteSequence and
    its model events (for edits); returns the job's result. Audio, the piano
    roll and the stems are made when first downloaded (webapp.jobs.downloads);
    `audio` says whether audio can be made here and why not."""
    import numpy as np

    from perfrnn.notes_json import notes_json

    services.store.progress(job.id, 0.95, "storing")
    storage = services.storage
    audio_ok, audio_message = audio
    variations = []
    for index, piece in enumerate(generated.pieces):
        prefix = f"jobs/{job.id}/{Path(piece.name).stem}"
        entry = {"index": index, "midi_name": piece.name,
                 "note_count": len(piece.sequence.notes),
                 "seconds": round(piece.sequence.total_time, 3), "sha256": {},
                 "score": None if piece.score is None else piece.score.to_dict()}
        _keep(storage, entry, "midi", f"{prefix}.mid", piece.midi)
        notes = {"job": job.id, "variation": index,
                 **notes_json(piece.sequence, piece.tracks, bpm=generated.bpm,
                              quantize=piece.quantized,
                              time_signature=(generated.metre.numerator,
                                              generated.metre.denominator))}
        _keep(storage, entry, "notes", f"{prefix}.notes.json",
              json.dumps(notes, separators=(",", ":")).encode())
        _keep(storage, entry, "sequence", f"{prefix}.sequence.pb",
              piece.sequence.SerializeToString())
        if piece.events is not None:
            events = io.BytesIO()
            np.save(events, np.asarray(piece.events, np.int32), allow_pickle=False)
            _keep(storage, entry, "events", f"{prefix}.events.npy", events.getvalue())
        variations.append(entry)
    return {"style": generated.style, "seed": generated.seed, "repairs": generated.repairs,
            "variations": variations, "audio": audio_ok, "audio_message": audio_message}


def _keep(storage, entry: dict, field: str, key: str, data: bytes) -> None:
    """Stores a result file under `key`, recording it and its SHA-256 in the
    variation's `entry`: the digest lets a download tell a damaged or swapped
    file (410) from the one made."""
    entry[field] = storage.put(key, data)
    entry["sha256"][field] = hashlib.sha256(data).hexdigest()


def _audio_status(services: Services) -> tuple[bool, str]:
    if not services.render_audio:
        return False, "audio rendering is turned off on this server (RENDER_AUDIO)"
    from perfrnn.audio import audio_available

    return audio_available()


# ----- training ----------------------------------------------------------------

def run_training(services: Services, job) -> dict:
    """Trains the job's style from its uploads and installs it; returns the
    figures the page shows. A cancelled or interrupted run keeps its
    checkpoints (in storage too, with S3) and resumes when started again."""
    from training.pipeline import discard_other_run, train_style

    params, name = job.params, job.params["name"]
    # Keyed by the style's name: training it again after a cancel resumes.
    work_dir = services.training_dir / name
    inputs = _fetch_uploads(services.storage, params["uploads"], work_dir / "inputs")
    checkpoints = CheckpointSync(services.storage, work_dir / "run", name) \
        if services.storage.kind != "local" else None
    if checkpoints is not None:
        checkpoints.pull()
    preset = services.training_presets.get(params["preset"])
    if preset is None:  # a web server and a worker set up with different presets
        raise PerfRNNError(f"this worker has no training preset {params['preset']!r}; its "
                           f"presets are {', '.join(services.training_presets) or 'none'}")
    kind = params.get("kind") or None
    parent = _parent_style(services, kind) if params.get("start", "base") == "base" else None
    if discard_other_run(work_dir / "run", preset, kind, parent) and checkpoints is not None:
        checkpoints.clear()
    report = TrainingReport(services, job.id, checkpoints)
    services.styles_dir.mkdir(parents=True, exist_ok=True)
    partial = services.styles_dir / f".{name}-{job.id}.part"
    try:
        try:
            result = train_style(name, [inputs], work_dir, partial, preset=preset,
                                 kind=kind, parent=parent, progress=report,
                                 should_stop=report.should_stop,
                                 log=lambda text: log.info("job %s: %s", job.id, text))
        except PerfRNNError as error:
            raise PerfRNNError(_for_users(error, work_dir, inputs)) from None
        finally:
            if checkpoints is not None:  # a cancelled or interrupted run resumes from here
                checkpoints.push()
        final = _install_style(services, name, partial)
    finally:
        partial.unlink(missing_ok=True)
        # The uploads and the prepared music are made again by the next run;
        # only a run's checkpoints are kept, to resume from.
        shutil.rmtree(inputs, ignore_errors=True)
        shutil.rmtree(work_dir / "data", ignore_errors=True)
        if not (work_dir / "run").exists():
            shutil.rmtree(work_dir, ignore_errors=True)
    if checkpoints is not None:
        checkpoints.clear()
    shutil.rmtree(work_dir, ignore_errors=True)  # the bundle holds what is kept
    if params["uploads"]:
        services.storage.delete_prefix(str(Path(params["uploads"][0]).parent))
    from perfrnn.bundle import read_bundle

    evaluation = result.evaluation
    return {
        "style": name, "size_bytes": final.stat().st_size,
        "steps": result.train.steps,
        "validation_nll": read_bundle(final).metadata.metrics.get("validation_nll_per_event"),
        "mean_overlapping_area": (evaluation.mean_overlapping_area
                                  if evaluation is not None else None),
        "loss_points": report.loss_points,
        "parent": parent.stem if parent is not None else None,
    }


def _fetch_uploads(storage, keys: list[str], inputs: Path) -> Path:
    """The uploaded files, fresh in the `inputs` folder."""
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True, exist_ok=True)
    for key in keys:
        (inputs / Path(key).name).write_bytes(storage.get(key))
    return inputs


def _install_style(services: Services, name: str, partial: Path) -> Path:
    """Moves the trained bundle into the styles folder (never over another
    style) and tells the registry and the other machines; returns its path."""
    final = services.styles_dir / f"{name}.mag"
    if final.exists() or name in services.registry.names():
        raise PerfRNNError(f"a style called {name!r} appeared while training; the new "
                           "one was not saved over it")
    os.replace(partial, final)
    services.registry.forget(final)
    if services.bundles is not None:
        services.bundles.publish(final, name)
    return final


class TrainingReport:
    """A training job's progress as the page shows it: one bar over the
    stages (TRAINING_STAGES), the loss curve in bounded space, the stage's
    details and an ETA, written to the job store a few times a second at
    most; on S3 it also pushes checkpoints now and then. It is the
    pipeline's `progress` callback, and `should_stop` its stop check."""

    def __init__(self, services: Services, job_id: str, checkpoints: CheckpointSync | None):
        self.services = services
        self.job_id = job_id
        self.checkpoints = checkpoints
        self.loss_points: list[list[float]] = []
        self.detail: dict = {}
        self.started = time.monotonic()
        self._write = Throttle(0.5)
        self._check = Throttle(1.0)
        self._push = Throttle(services.checkpoint_seconds)

    def __call__(self, stage: str, fraction: float, details: dict) -> None:
        low, high = TRAINING_STAGES.get(stage, (0.0, 1.0))
        overall = low + (high - low) * fraction
        if stage == "train" and "loss" in details:
            self.loss_points.append([details["step"], round(float(details["loss"]), 4)])
            if len(self.loss_points) > MAX_LOSS_POINTS:
                del self.loss_points[1::2]  # keep the curve's shape in bounded space
        detail = self.detail
        for key, value in details.items():
            if key == "bundle" or not isinstance(value, (int, float, str)):
                continue  # a server path, or a table the page does not show
            # The evaluation names its own sub-stages "step"; keep the step number.
            detail["substage" if key == "step" and isinstance(value, str) else key] = value
        detail["stage"] = stage
        detail["loss_points"] = self.loss_points
        elapsed = time.monotonic() - self.started
        detail["elapsed_seconds"] = round(elapsed, 1)
        detail["eta_seconds"] = (round(elapsed * (1 - overall) / overall, 1)
                                 if overall > 0.02 else None)
        if self._write(fraction >= 1.0 or stage != detail.get("reported_stage")):
            detail["reported_stage"] = stage
            self.services.store.progress(self.job_id, overall, stage, detail)
        if self.checkpoints is not None and stage == "train" and self._push(fraction >= 1.0):
            self.checkpoints.push()

    def should_stop(self) -> bool:
        """True once the machine is about to go or the user cancelled."""
        interrupted = self.services.interrupted
        if interrupted is not None and interrupted():
            return True
        return self._check() and self.services.store.cancel_requested(self.job_id)


def _parent_style(services: Services, kind: str | None) -> Path | None:
    """The shipped bundle a user style of `kind` is fine-tuned from (None: none
    shipped, so the style is trained from scratch)."""
    from training.pipeline import BASE_STYLES

    try:
        style = services.registry.get(BASE_STYLES[kind or "pitched"])
    except PerfRNNError:
        return None
    return style.path if style.origin == "shipped" else None


def _for_users(error: PerfRNNError, work_dir: Path, inputs: Path) -> str:
    """A training error in the website's words: the uploads and the style's
    folder by name, never the server's paths, and a setting as the train page
    shows it."""
    def page_fix(fix: Fix) -> str:
        if fix.option != "kind":
            return fix.command_line()
        label = KIND_DESCRIPTIONS[fix.value].label
        action = f'choose the kind "{fix.value}" ("{label}" on the train page)'
        return f"{fix.purpose}, {action}" if fix.purpose else action

    name = None
    if error.path is not None:
        path = Path(error.path)
        if path == inputs:
            name = "the uploaded files"
        elif path.is_relative_to(inputs):
            name = path.relative_to(inputs).as_posix()
        elif path.is_relative_to(work_dir):
            name = "the style's training folder"
        else:
            name = path.name
    message = error.describe(name, page_fix)
    if str(work_dir.parent) in message:  # a server folder inside the problem's own text
        log.warning("training failed: %s", message)
        return ("training stopped on a problem with the style's files on the server; the "
                "details are in the server log")
    return message


class CheckpointSync:
    """A training run's folder mirrored to `checkpoints/<style>/` in storage,
    so a run whose worker vanished resumes on another one."""

    def __init__(self, storage, run_dir: Path, name: str):
        self.storage = storage
        self.run_dir = Path(run_dir)
        self.prefix = f"checkpoints/{name}/"
        self._pushed: dict[str, tuple[int, int]] = {}

    def pull(self) -> int:
        """Fetches the stored run (if any); returns how many files."""
        keys = self.storage.keys(self.prefix)
        for key in keys:
            path = self.run_dir / key[len(self.prefix):]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(self.storage.get(key))
            stat = path.stat()
            self._pushed[key] = (stat.st_size, stat.st_mtime_ns)
        return len(keys)

    def push(self) -> int:
        """Uploads what changed since the last push; the `checkpoint` index
        files go last, so a stored index never names missing data."""
        if not self.run_dir.is_dir():
            return 0
        files = sorted((path for path in self.run_dir.rglob("*") if path.is_file()),
                       key=lambda path: (path.name == "checkpoint", str(path)))
        sent = 0
        for path in files:
            key = self.prefix + path.relative_to(self.run_dir).as_posix()
            stat = path.stat()
            stamp = (stat.st_size, stat.st_mtime_ns)
            if self._pushed.get(key) != stamp:
                self.storage.put(key, path.read_bytes())
                self._pushed[key] = stamp
                sent += 1
        return sent

    def clear(self) -> None:
        self.storage.delete_prefix(self.prefix)
