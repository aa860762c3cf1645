"""Checkpoints tied to prediction rounds: the weights behind a round's answers, kept in the object store.

A round's weights are written to local disk in the thread that ran the round (inline: training waits for that
write; background: the snapshot is written by the round's worker, training does not wait), then uploaded by
one upload thread under `jobs/<job_id>/checkpoints/<name>/`, and announced by a CheckpointEvent. In a job's child the
upload is the trainer service's (`checkpoint_store`): the child holds no store credentials and names no key. With mode
`best`, a checkpoint that falls out of the top `keep` by the metric is deleted from the store and announced by a
CheckpointDeletedEvent. A store failure is a warning event; training and later saves go on.

The owner's checkpoint quota reaches the trainer as the job's byte allowance (what was left of the quota when the
job was submitted, in the start event's inputs): a checkpoint that would take the job's kept checkpoints past it is
not uploaded (a `checkpoint_quota` warning), and what it would have displaced is kept. The check runs in the upload
thread, where uploads and deletions happen one at a time, so the bytes it counts are the bytes in the store.
"""

import hashlib
import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from epochscope_schemas.checkpoints import CheckpointMode, CheckpointsConfig, round_metric
from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    CheckpointFile,
    RoundSummaryEvent,
    WarningEvent,
)
from epochscope_schemas.topics import TRAINING_STATUS
from epochscope_trainer.checkpoint_store import QUOTA_WARNING, CheckpointStore, checkpoint_prefix, within_allowance
from epochscope_trainer.child_protocol import JobIdentity
from epochscope_trainer.job.callbacks import Publish

log = logging.getLogger("epochscope.trainer.checkpoints")
ROUND_METRICS = ("validator_pass_rate", "mean_exact_match", "mean_f1", "mean_rouge_l")


def checkpoint_id(job_id: Any, name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.UUID(str(job_id)), f"checkpoint/{name}")


def round_metrics(summary: RoundSummaryEvent) -> dict[str, float | None]:
    """Every metric of a round, by the names `predictions.checkpoints.metric` and `stop_when.metric` use."""
    fields = summary.model_dump()
    names = [*ROUND_METRICS]
    for grader in summary.graders:
        names += [f"grader_pass_rate:{grader}", f"grader_mean:{grader}"]
    return {name: round_metric(fields, name) for name in names}


@dataclass
class _Kept:
    name: str
    round_index: int
    value: float | None


class Checkpointer:
    """Saves rounds' weights (and the final weights) as the job's checkpoints config says.

    Args:
        config: the job's `predictions.checkpoints`.
        store: puts and deletes a checkpoint's files by name (the service's upload, in a job's child).
        job: the job identity every event carries.
        publish: the non-blocking event publisher.
        work_dir: a local folder for the saves before upload.
        byte_allowance: the most bytes the job's kept checkpoints may take; None: no limit.
    """

    def __init__(
        self,
        config: CheckpointsConfig,
        store: CheckpointStore,
        job: JobIdentity,
        publish: Publish,
        work_dir: Path,
        byte_allowance: int | None = None,
    ) -> None:
        self.config = config
        self.byte_allowance = byte_allowance
        self.store = store
        self.job = job
        self.publish = publish
        self.work_dir = work_dir
        self._kept: list[_Kept] = []
        self._lock = threading.Lock()
        self._uploads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-upload")
        self._pending: list[Future[None]] = []
        self._files: dict[str, list[str]] = {}  # each uploaded checkpoint's files: deleted by name, never by listing
        self._sizes: dict[str, int] = {}  # each kept checkpoint's bytes (upload thread only)

    @property
    def enabled(self) -> bool:
        return self.config.mode != CheckpointMode.NONE

    def on_round(self, model: Any, tokenizer: Any, summary: RoundSummaryEvent, stalls_training: bool) -> None:
        """Save this round's weights if the config keeps them; prune what falls out of the best `keep`."""
        if not self.enabled:
            return
        name = f"round-{summary.round_index}"
        pruned: list[_Kept] = []
        if self.config.mode == CheckpointMode.BEST:
            value = round_metric(summary.model_dump(), self.config.metric)
            with self._lock:
                ranked = sorted([*self._kept, _Kept(name, summary.round_index, value)], key=_rank)
                if ranked.index(next(k for k in ranked if k.name == name)) >= self.config.keep:
                    return  # not among the best: nothing saved
                self._kept, pruned = ranked[: self.config.keep], ranked[self.config.keep :]
        metrics = round_metrics(summary)
        self._save(
            model, tokenizer, name, summary.round_index, summary.step, summary.epoch, metrics, stalls_training, pruned
        )

    def save_final(self, model: Any, tokenizer: Any, step: int, epoch: float) -> None:
        """The weights at the end of training: always kept (with any mode but none)."""
        if self.enabled:
            self._save(model, tokenizer, "final", None, step, epoch, {}, True, [])

    def close(self) -> None:
        """Until every upload and deletion queued so far is done."""
        wait(self._pending)
        self._uploads.shutdown(wait=True)

    def _save(
        self,
        model: Any,
        tokenizer: Any,
        name: str,
        round_index: int | None,
        step: int,
        epoch: float,
        metrics: dict[str, float | None],
        stalls_training: bool,
        pruned: list[_Kept],
    ) -> None:
        """Write the weights and tokenizer locally (the stall), then queue the upload and, once it succeeded,
        the deletion of what it displaced."""
        folder = self.work_dir / name
        started = time.perf_counter()
        try:
            shutil.rmtree(folder, ignore_errors=True)
            model.save_pretrained(folder, safe_serialization=True)  # a PeftModel writes only its adapter
            tokenizer.save_pretrained(folder)
        except Exception as exc:  # noqa: BLE001  a failed save is a warning, never a failed job
            self._warn(name, round_index, exc)
            shutil.rmtree(folder, ignore_errors=True)
            self._forget(name, pruned)
            return
        save_ms = (time.perf_counter() - started) * 1000
        event = {
            "round_index": round_index,
            "step": step,
            "epoch": epoch,
            "final": round_index is None,
            "metrics": metrics,
            "save_ms": save_ms,
            "stall_ms": save_ms if stalls_training else None,  # beside training: not a stall measured here
        }
        self._pending.append(self._uploads.submit(self._upload, folder, name, event, pruned))

    def _upload(self, folder: Path, name: str, fields: dict[str, Any], pruned: list[_Kept]) -> None:
        prefix = checkpoint_prefix(self.job.job_id, name)
        started = time.perf_counter()
        names: list[str] = []
        try:
            if not self._fits(name, fields["round_index"], folder, pruned):
                self._forget(name, pruned)
                return
            files = []
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                files.append(CheckpointFile(name=path.name, bytes=path.stat().st_size, sha256=_sha256(path)))
            names = [file.name for file in files]
            self.store.put(name, names)
            manifest = "\n".join(f"{f.name} {f.sha256}" for f in files).encode()
            event = CheckpointEvent(
                **self.job.envelope(),
                checkpoint_id=checkpoint_id(self.job.job_id, name),
                key=prefix,
                files=files,
                bytes=sum(f.bytes for f in files),
                sha256=hashlib.sha256(manifest).hexdigest(),
                upload_ms=(time.perf_counter() - started) * 1000,
                **fields,
            )
        except Exception as exc:  # noqa: BLE001  the store is down or refuses: a warning, training goes on
            self._warn(name, fields["round_index"], exc)
            self._forget(name, pruned)
            self._remove_objects(name, names)
            return
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        self.publish(TRAINING_STATUS, event)
        self._files[name], self._sizes[name] = names, event.bytes  # (upload thread only)
        log.info(
            "checkpoint %s: %d bytes, saved in %.0f ms (%s), uploaded to %s in %.0f ms",
            name,
            event.bytes,
            event.save_ms,
            "beside training" if event.stall_ms is None else "training waited",
            prefix,
            event.upload_ms,
        )
        for gone in pruned:
            self._delete(gone)

    def _delete(self, gone: _Kept) -> None:
        try:
            self._remove_objects(gone.name, self._files.pop(gone.name, []), strict=True)
        except Exception as exc:  # noqa: BLE001
            self._warn(gone.name, gone.round_index, exc, action="delete")
            return
        self._sizes.pop(gone.name, None)
        self.publish(
            TRAINING_STATUS,
            CheckpointDeletedEvent(
                **self.job.envelope(),
                checkpoint_id=checkpoint_id(self.job.job_id, gone.name),
                round_index=gone.round_index,
            ),
        )

    def _fits(self, name: str, round_index: int | None, folder: Path, pruned: list[_Kept]) -> bool:
        """Whether this checkpoint stays within the job's byte allowance, counting what it displaces as freed
        (it is deleted right after this upload); if not, a `checkpoint_quota` warning."""
        new = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
        displaced = {p.name for p in pruned}
        kept = sum(size for kept_name, size in self._sizes.items() if kept_name not in displaced)
        if within_allowance(self.byte_allowance, kept, new):
            return True
        where = "the final weights" if round_index is None else f"round {round_index}"
        message = (
            f"checkpoint {name} ({where}) not kept: its {new} bytes would take this job's checkpoints to"
            f" {kept + new} bytes, over the {self.byte_allowance} bytes left of the owner's checkpoint quota when"
            " the job was submitted"
        )
        log.warning(message)
        self.publish(TRAINING_STATUS, WarningEvent(**self.job.envelope(), code=QUOTA_WARNING, message=message))
        return False

    def _remove_objects(self, name: str, files: list[str], strict: bool = False) -> None:
        """Delete by name (the trainer may not list the bucket)."""
        try:
            if files:
                self.store.delete(name, files)
        except Exception:
            if strict:
                raise
            log.warning("could not remove the partial checkpoint %s %s", name, files, exc_info=True)

    def _forget(self, name: str, pruned: list[_Kept]) -> None:
        """A checkpoint that did not make it: what it would have displaced is kept after all."""
        with self._lock:
            self._kept = sorted([k for k in self._kept if k.name != name] + pruned, key=_rank)

    def _warn(self, name: str, round_index: int | None, exc: BaseException, action: str = "save") -> None:
        where = "the final weights" if round_index is None else f"round {round_index}"
        message = f"checkpoint {name} ({where}): {action} failed: {type(exc).__name__}: {exc}"
        log.warning(message)
        code = "checkpoint_failed" if action == "save" else "checkpoint_delete_failed"
        self.publish(TRAINING_STATUS, WarningEvent(**self.job.envelope(), code=code, message=message[:2000]))


def _rank(kept: _Kept) -> tuple[float, int]:
    """Best first: the higher metric, then the earlier round; a round without a value ranks last."""
    return (-(kept.value if kept.value is not None else float("-inf")), kept.round_index)


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
