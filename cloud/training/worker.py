"""The training worker: claims queued jobs through the API and runs them in this process (never in the API's
request threads). The signing key is read here only, from COLDWATCH_SIGNING_KEY_FILE; it never reaches the
API, the database or a log. Any host with the key, an ops token and (ideally) a GPU can run it."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Final

from cloud.api_client.client import ApiError, MalformedJob, OpsClient
from cloud.api_client.responses import TrainingJob, TrainingUpdate
from cloud.training.job import JobFailed, run_job

log = logging.getLogger(__name__)
KEY_ENV: Final = "COLDWATCH_SIGNING_KEY_FILE"
EXIT_CONFIG: Final = 2


def signing_key(env: dict[str, str] | None = None) -> bytes:
    """The private key from the file named by COLDWATCH_SIGNING_KEY_FILE (ValueError naming the variable)."""
    path = (os.environ if env is None else env).get(KEY_ENV)
    if not path:
        raise ValueError(f"{KEY_ENV} is not set: the worker signs what it trains")
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{KEY_ENV}: cannot read the key file ({exc.strerror})") from None


def run_one(api: OpsClient, job: TrainingJob, *, key: bytes, work_dir: Path, device: str | None) -> bool:
    """Run a claimed job and report its end; returns whether it succeeded."""
    job_id = job.id

    def report(update: TrainingUpdate) -> None:
        api.report_training(job_id, update)

    log.info("training job claimed job=%s profile=%s", job_id, job.profile)
    try:
        result = run_job(api, job, work_dir=work_dir, signing_key=key, device=device, report=report)
    except JobFailed as exc:
        log.warning("training job failed job=%s reason=%s", job_id, exc)
        report(TrainingUpdate(state="failed", error=str(exc)[:2000], log=[f"failed: {exc}"], result=exc.result))
        return False
    except Exception as exc:  # a bug or an outage: the job fails visibly, the worker lives on
        log.exception("training job crashed job=%s", job_id)
        report(TrainingUpdate(state="failed", error=f"{type(exc).__name__}: {exc}"[:2000],
                              log=traceback.format_exc().splitlines()[-20:]))
        return False
    report(TrainingUpdate(state="succeeded", stage="done", progress=1.0, model_stem=result.model, result=result,
                          log=[f"registered {result.model} in {result.timings_s['total_s']} s on {result.device}"]))
    return True


def fail_malformed(api: OpsClient, exc: MalformedJob) -> None:
    """A claimed job the worker cannot read: failed on the API (when its id is known), never left running."""
    log.warning("training job malformed job=%s error=%s", exc.job_id, exc)
    if exc.job_id is not None:
        api.report_training(exc.job_id, TrainingUpdate(state="failed", error=f"malformed job: {exc.message}"[:2000],
                                                       log=[f"failed: malformed job: {exc.message}"]))


def run_worker(api: OpsClient, *, worker: str, once: bool, poll_s: float, work_dir: Path,
               device: str | None) -> int:
    """Claim and run jobs until interrupted (`once`: at most one); returns the exit status."""
    try:
        key = signing_key()
    except ValueError as exc:
        print(f"coldwatch train-worker: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    work_dir.mkdir(parents=True, exist_ok=True)
    log.info("training worker started worker=%s device=%s", worker, device or "auto")
    while True:
        ok: bool | None = None  # None: no job claimed
        try:
            job = api.claim_training(worker)
        except MalformedJob as exc:
            job, ok = None, False
            try:
                fail_malformed(api, exc)
            except ApiError as report_exc:
                log.warning("cannot fail malformed job=%s error=%s", exc.job_id, report_exc)
        except ApiError as exc:
            log.warning("claim failed worker=%s error=%s", worker, exc)
            job = None
        if job is not None:
            ok = run_one(api, job, key=key, work_dir=work_dir, device=device)
        if ok is not None:
            if once:
                return 0 if ok else 1
        elif once:
            return 0
        else:
            time.sleep(poll_s)
