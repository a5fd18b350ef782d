"""Training jobs that outlive a page's script run: one background thread per job.

The Train page must stay responsive while a model trains, and a reload of its tab must find
the running job instead of starting another. `start_job` runs `train.train_and_save` in a
daemon thread and records its events in a `TrainingJob`; jobs are kept in a process-wide
registry keyed by the model registry folder (MRI_HOME), at most one running per folder.

A job has an owner: the token of the browser session that started it (None from the CLI or a
test). `own_job(owner)` gives a session its own job; anyone else learns only that the server is
busy (`busy_elsewhere`: the epoch and the start time), never the other run's data, curves or
result, and cannot cancel it. Pages read `job.snapshot()`, a frozen copy taken under the job's
lock, never the live lists. Never imports streamlit.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from mri_core.io.atomic import write_text_atomic
from mri_core.io.errors import MriError, SettingsInvalid, TrainingCancelled
from mri_core.package import registry
from mri_core.training import checkpoint
from mri_core.training.events import DataReady, EpochEnd, Event, PartFailed, StepEnd
from mri_core.training.recipes import TrainSettings
from mri_core.training.train import train_and_save

log = logging.getLogger(__name__)

RUNNING, FINISHED, CANCELLED, FAILED = "running", "finished", "cancelled", "failed"
MAX_ENDED_JOBS = 16  # ended jobs kept per registry folder (one per owner) so that their owners find the result
JOB_FILE = "job.json"  # next to the checkpoint: what to train, so a restarted server can resume


def checkpoint_dir() -> Path:
    """Where the resumable job of this registry folder keeps its last completed epoch."""
    return Path(registry.mri_home()) / "checkpoints" / "current"


@dataclass(frozen=True)
class InterruptedJob:
    """A job whose process stopped (crash, restart) after `epochs_done` epochs."""

    data_dirs: tuple[str, ...]
    settings: TrainSettings
    epochs_done: int


@dataclass(frozen=True)
class Busy:
    """All that another session learns of a running job: how far it is and when it started."""

    epoch: int | None  # the epoch in progress, None while the data is read
    epochs: int
    started: float  # time.time() at start


@dataclass(frozen=True)
class JobSnapshot:
    """What a page draws: a consistent copy of a job's state at one moment."""

    status: str  # running | finished | cancelled | failed
    settings: TrainSettings
    data_dirs: tuple[str, ...]
    data: DataReady | None  # None until the data set is read and split
    history: tuple[EpochEnd, ...]  # one per completed epoch
    step: StepEnd | None  # the latest training batch
    error: str | None  # why it failed (status failed) or was stopped (cancelled)
    result: registry.ModelEntry | None  # the saved package (status finished)
    started: float  # time.time() at start
    ended: float | None
    warnings: tuple[str, ...] = ()  # parts of training that failed without failing the run (PartFailed)
    owner: str | None = None  # the token of the session that started it

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    @property
    def progress(self) -> float:
        """Share of all training batches done, 0..1 (1 once finished)."""
        if self.status == FINISHED:
            return 1.0
        if self.step is None:
            return 0.0
        done = (self.step.epoch - 1) * self.step.steps + self.step.step
        return min(done / (self.settings.epochs * self.step.steps), 1.0)


@dataclass
class TrainingJob:
    """One training run in a background thread; created and started by `start_job`."""

    data_dirs: tuple[str, ...]
    settings: TrainSettings
    cleanup: Callable[[], None] | None = None  # runs when the job ends (removes an upload's temp folder)
    checkpoint_dir: Path | None = None  # resumable jobs save every completed epoch here
    owner: str | None = None  # the token of the session that started it (None: CLI, tests)
    status: str = RUNNING
    data: DataReady | None = None
    history: list[EpochEnd] = field(default_factory=list)
    step: StepEnd | None = None
    error: str | None = None
    result: registry.ModelEntry | None = None
    warnings: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> "TrainingJob":
        self._thread = threading.Thread(target=self._run, name="mri-training", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Ask the job to stop at the next training batch; nothing is saved."""
        self._stop.set()

    @property
    def cancel_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (or timeout); True when it has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.snapshot().status != RUNNING

    def snapshot(self) -> JobSnapshot:
        with self._lock:
            return JobSnapshot(self.status, self.settings, self.data_dirs, self.data, tuple(self.history),
                               self.step, self.error, self.result, self.started, self.ended, tuple(self.warnings),
                               self.owner)

    def _record(self, event: Event) -> None:
        with self._lock:
            if isinstance(event, EpochEnd):
                self.history.append(event)
            elif isinstance(event, StepEnd):
                self.step = event
            elif isinstance(event, DataReady):
                self.data = event
            elif isinstance(event, PartFailed):
                self.warnings.append(event.message)

    def _run(self) -> None:
        status, error, result = FAILED, None, None
        try:
            result = train_and_save(list(self.data_dirs), self.settings, self._record, self._stop.is_set,
                                    checkpoint_dir=self.checkpoint_dir)
            status = FINISHED
        except TrainingCancelled as exc:
            status, error = CANCELLED, str(exc)
            checkpoint.clear(self.checkpoint_dir)  # cancelled on purpose: nothing to resume
        except MriError as exc:
            error = str(exc)
            checkpoint.clear(self.checkpoint_dir)  # bad data or settings: resuming would fail again
        except Exception as exc:  # a bug or an exhausted machine: say so, keep the app alive
            log.exception("training job failed")
            error = f"Training failed unexpectedly ({type(exc).__name__}: {exc}); see the server log."
        finally:
            if self.cleanup is not None:
                try:
                    self.cleanup()
                except Exception:
                    log.exception("cleanup after training failed")
            with self._lock:
                self.status, self.error, self.result, self.ended = status, error, result, time.time()


# --- the process-wide registry of jobs ---------------------------------------------------

_jobs: dict[tuple[str, str | None], TrainingJob] = {}  # (registry folder, owner) -> that owner's latest job
_jobs_lock = threading.Lock()


def _home_key() -> str:
    return str(Path(registry.mri_home()).expanduser().resolve())


def _folder_jobs(key: str) -> list[TrainingJob]:
    """This registry folder's jobs, latest started first (call under _jobs_lock)."""
    return sorted((job for (home, _), job in _jobs.items() if home == key), key=lambda j: j.started, reverse=True)


def _running(key: str) -> TrainingJob | None:
    return next((job for job in _folder_jobs(key) if job.snapshot().running), None)


def current_job() -> TrainingJob | None:
    """The latest job for this registry folder, whoever started it (running or ended), or None.

    For the server side (the CLI, tests); a page asks for `own_job` and `busy_elsewhere`."""
    with _jobs_lock:
        jobs = _folder_jobs(_home_key())
    return jobs[0] if jobs else None


def own_job(owner: str | None) -> TrainingJob | None:
    """The latest job that `owner` started in this registry folder (running or ended), or None."""
    with _jobs_lock:
        return _jobs.get((_home_key(), owner))


def busy_elsewhere(owner: str | None) -> Busy | None:
    """The running job of someone other than `owner`, as much as `owner` may know of it, or None."""
    with _jobs_lock:
        job = _running(_home_key())
    if job is None or job.owner == owner:
        return None
    snap = job.snapshot()
    return Busy(snap.step.epoch if snap.step else None, snap.settings.epochs, snap.started)


def start_job(data_dirs: Sequence[str | Path], settings: TrainSettings,
              cleanup: Callable[[], None] | None = None, resumable: bool = True,
              resume: bool = False, owner: str | None = None) -> TrainingJob:
    """Start training in the background for `owner`; SettingsInvalid when settings are bad or a job runs.

    A resumable job (server folders, not a temporary upload) checkpoints every epoch, so a
    server restart does not lose it; `resume` continues the interrupted one.
    """
    settings.check()
    with _jobs_lock:
        key = _home_key()
        running = _running(key)
        if running is not None:
            mine = running.owner == owner
            raise SettingsInvalid(
                "A training job is already running for this model registry; "
                + ("wait for it to finish or cancel it on the Train page before starting another."
                   if mine else "only one model trains at a time: start yours when it finishes.")
            )
        folder = checkpoint_dir()
        if not resume:
            checkpoint.clear(folder)  # a new job replaces an interrupted one
        if resumable:
            folder.mkdir(parents=True, exist_ok=True)
            write_text_atomic(folder / JOB_FILE, json.dumps(
                {"data_dirs": [str(d) for d in data_dirs], "settings": asdict(settings)}))
        job = TrainingJob(tuple(str(d) for d in data_dirs), settings, cleanup, folder if resumable else None, owner)
        _jobs[(key, owner)] = job
        for old in _folder_jobs(key)[MAX_ENDED_JOBS + 1:]:  # the running one and the latest ended ones stay
            del _jobs[(key, old.owner)]
        return job.start()


def interrupted_job() -> InterruptedJob | None:
    """The job a stopped server left behind (no job of ours runs), or None. Anyone may resume it."""
    with _jobs_lock:
        if _running(_home_key()) is not None:
            return None
    folder = checkpoint_dir()
    if not (folder / JOB_FILE).is_file():
        return None
    try:
        record = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
        state = folder / checkpoint.STATE_FILE
        done = json.loads(state.read_text(encoding="utf-8"))["epoch"] if state.is_file() else 0
        return InterruptedJob(tuple(record["data_dirs"]), TrainSettings(**record["settings"]), int(done))
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("unreadable interrupted training job in %s; ignoring it", folder)
        return None


def resume_interrupted(owner: str | None = None) -> TrainingJob:
    """Continue the interrupted job from its last completed epoch, as `owner`'s job."""
    interrupted = interrupted_job()
    if interrupted is None:
        raise SettingsInvalid("There is no interrupted training to resume.")
    return start_job(interrupted.data_dirs, interrupted.settings, resume=True, owner=owner)


def discard_interrupted() -> None:
    """Forget an interrupted job and its checkpoint."""
    checkpoint.clear(checkpoint_dir())


def dismiss_job(owner: str | None = None) -> None:
    """Forget `owner`'s ended job in this registry folder (a running job is kept)."""
    with _jobs_lock:
        key = (_home_key(), owner)
        job = _jobs.get(key)
        if job is not None and not job.snapshot().running:
            del _jobs[key]
