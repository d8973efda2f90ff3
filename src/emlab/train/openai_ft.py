"""OpenAI finetuning as a trainer (`trainer: openai`): upload the built dataset, create the job, poll it, record it.

A job is keyed like an adapter: hash(base model and server, dataset content hash, parameters, seed). Its record,
`<jobs dir>/<key>.json`, is rewritten atomically at every change (file uploaded, job created, status seen), so:
- a key whose job succeeded is never trained again: the record gives the fine-tuned model at once;
- a job still running when a run was killed is polled again by the next run, not created twice;
- a run killed between creating the job and recording it finds the job on the server (its metadata carries the
  key, its training file is the recorded upload) before creating another;
- a failed or cancelled job is one clear line (EndpointError); its record keeps the job id and the server's
  reason, and the next run creates a new job (the failed ones are listed under `previous`).

The trained model is then an ordinary `openai:<fine_tuned_model>` spec (see the pipeline's train_arm). The client
is an `openai.OpenAI` made by the caller (`models.openai_api.finetune_client`), so this module needs no model code.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from emlab.atomic import write_text_atomic
from emlab.data.conversations import Conversation
from emlab.errors import EndpointError
from emlab.hashing import content_hash
from emlab.progress import console, progress_bar
from emlab.train.params import TrainParams, key_fields

DONE, FAILED = "succeeded", ("failed", "cancelled")
ENV_POLL = "EMLAB_OPENAI_FT_POLL"  # seconds before the first status poll (tests set it tiny)
LOOKBACK_JOBS = 200  # jobs listed when looking for one created before a crash
MAX_POLL_ERRORS = 10  # consecutive failed polls before the run stops (the job is recorded: a re-run picks it up)


@dataclass(frozen=True)
class Poll:
    """Seconds between status polls: `first`, growing by `factor` up to `most` (jittered by up to a tenth)."""

    first: float = 5.0
    factor: float = 1.5
    most: float = 60.0

    def delays(self):
        delay = self.first
        while True:
            yield delay * (1 + random.uniform(-0.1, 0.1))
            delay = min(self.most, delay * self.factor)


@dataclass
class FinetuneJob:
    """A finished OpenAI finetuning job: the model it made and its provenance (the pipeline's "adapter")."""

    key: str
    job_id: str
    model: str  # the fine-tuned model's name, e.g. ft:gpt-4o-2024-08-06:org:insecure:abc123
    base_model: str
    record: Path
    reused: bool
    trained_tokens: int | None = None
    info: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"trainer": "openai", "hash": self.key, "job_id": self.job_id, "fine_tuned_model": self.model,
                "base_model": self.base_model, "path": str(self.record), "reused": self.reused,
                "trained_tokens": self.trained_tokens, "final_loss": None, "steps": None}


def job_key(base_model: str, server: str, dataset_hash: str, params: TrainParams) -> str:
    """The job's cache key: as an adapter's (`sft.adapter_key`), the base being the model on its server."""
    return content_hash({"base": f"openai:{base_model}@{server}", "dataset": dataset_hash, "params": key_fields(params)})


def training_file(conversations: list[Conversation]) -> bytes:
    """The chat finetuning format: one {"messages": [...]} per line."""
    lines = (json.dumps({"messages": [{"role": m["role"], "content": m["content"]} for m in c]}, ensure_ascii=False)
             for c in conversations)
    return ("\n".join(lines) + "\n").encode("utf-8")


def hyperparameters(params: TrainParams) -> dict:
    """The job's `method`: supervised finetuning with the epochs, batch size and learning-rate multiplier asked for."""
    hyper: dict[str, Any] = {"n_epochs": int(params.epochs), "batch_size": params.batch_size}
    if params.learning_rate_multiplier is not None:
        hyper["learning_rate_multiplier"] = params.learning_rate_multiplier
    return {"type": "supervised", "supervised": {"hyperparameters": hyper}}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _write(path: Path, record: dict) -> None:
    write_text_atomic(path, json.dumps(record, indent=1, sort_keys=True))


def finetune_openai(
    client: Any,
    server: str,
    base_model: str,
    conversations: list[Conversation],
    dataset_hash: str,
    params: TrainParams,
    jobs_dir: str | Path,
    *,
    label: str = "",
    poll: Poll | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> FinetuneJob:
    """Finetune `base_model` on `conversations` through the OpenAI API (or reuse / resume the recorded job).

    server: the credential-free base URL (part of the key and of every message). label: the condition, for messages.
    """
    key = job_key(base_model, server, dataset_hash, params)
    path = Path(jobs_dir) / f"{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = _read(path)
    where = f"OpenAI finetuning of {base_model} at {server}" + (f" (condition {label})" if label else "")
    if record.get("status") == DONE and record.get("fine_tuned_model"):
        console.print(f"[bold]train[/] {label or base_model}: reused OpenAI job {record['job_id']} "
                      f"({record['fine_tuned_model']})", highlight=False)
        return _job(record, path, reused=True)
    console.print(f"[bold]train[/] {label or base_model}: OpenAI finetuning of {base_model} on {len(conversations)} "
                  "conversations" + (f", resuming job {record['job_id']}" if record.get("job_id")
                                     and record.get("status") not in FAILED else ""), highlight=False)
    if record.get("status") in FAILED:  # the earlier job failed: keep its trace, try afresh
        record = {"previous": record.get("previous", []) + [_trace(record)]}
    record.update({"key": key, "base_model": base_model, "server": server, "dataset_hash": dataset_hash,
                   "rows": len(conversations), "params": params.model_dump(exclude={"report_to"})})
    if not record.get("job_id"):
        _start(client, record, path, conversations, params, key, where)
    _wait(client, record, path, poll or _default_poll(), sleep, where)
    if record["status"] in FAILED:
        error = record.get("error") or {}
        reason = error.get("message") or ("the job was cancelled" if record["status"] == "cancelled" else "no reason given")
        code = f" [{error['code']}]" if error.get("code") else ""
        raise EndpointError(f"{where}: job {record['job_id']} {record['status']}: {reason}{code} (recorded in {path}; "
                            "a re-run creates a new job)")
    return _job(record, path, reused=False)


def _trace(record: dict) -> dict:
    return {k: record.get(k) for k in ("job_id", "file_id", "status", "error")}


def _job(record: dict, path: Path, reused: bool) -> FinetuneJob:
    return FinetuneJob(record["key"], record["job_id"], record["fine_tuned_model"], record["base_model"], path, reused,
                       record.get("trained_tokens"), record)


def _default_poll() -> Poll:
    first = os.environ.get(ENV_POLL, "").strip()
    return Poll(first=float(first), most=max(float(first), 0.0) * 12) if first else Poll()


def _start(client: Any, record: dict, path: Path, conversations: list[Conversation], params: TrainParams, key: str,
           where: str) -> None:
    """Upload the data (unless recorded) and create the job (unless the server already has ours), recording each."""
    if record.get("file_id"):
        found = _find_job(client, key, record["file_id"])
        if found is not None:
            console.print(f"  {where}: found job {found} created before the last run stopped", highlight=False)
            record.update(job_id=found, status="created")
            _write(path, record)
            return
    else:
        data = training_file(conversations)
        uploaded = _call(where, "uploading the training file",
                         lambda: client.files.create(file=(f"emlab-{key}.jsonl", io.BytesIO(data)), purpose="fine-tune"))
        record.update(file_id=uploaded.id, status="uploaded")
        _write(path, record)
    request = {"model": record["base_model"], "training_file": record["file_id"], "method": hyperparameters(params),
               "seed": params.seed, "metadata": {"emlab_key": key}}
    if params.suffix:
        request["suffix"] = params.suffix
    job = _call(where, "creating the job", lambda: client.fine_tuning.jobs.create(**request))
    record.update(job_id=job.id, status=job.status)
    _write(path, record)
    console.print(f"  {where}: created job {job.id} on {len(conversations)} conversations", highlight=False)


def _find_job(client: Any, key: str, file_id: str) -> str | None:
    """The id of a job created for `key` (or from its upload) that the record missed, among the latest jobs."""
    try:
        for i, job in enumerate(client.fine_tuning.jobs.list(limit=100)):
            if (getattr(job, "metadata", None) or {}).get("emlab_key") == key or job.training_file == file_id:
                return job.id
            if i + 1 >= LOOKBACK_JOBS:
                break
    except Exception:  # noqa: BLE001 - a server that cannot list jobs: create one, as without the lookup
        return None
    return None


def _call(where: str, what: str, fn: Callable[[], Any]) -> Any:
    """One API call (the client retries transient failures itself); failure: one EndpointError line."""
    import openai

    try:
        return fn()
    except openai.APIError as e:
        status = getattr(e, "status_code", None)
        body = getattr(e, "body", None)
        message = body.get("message") if isinstance(body, dict) else None
        text = " ".join(str(message or e).split())[:300]
        raise EndpointError(f"{where}: {what} failed: " + (f"HTTP {status}: " if status else "") + text) from None


def _wait(client: Any, record: dict, path: Path, poll: Poll, sleep: Callable[[float], None], where: str) -> None:
    """Poll the job until it ends, recording its status in `record` and its file; a progress line shows the state
    and the latest event."""
    import openai

    job_id, start, errors = record["job_id"], time.monotonic(), 0
    delays = poll.delays()
    with progress_bar(f"openai finetune {job_id}", 1) as advance:
        while True:
            try:
                job = client.fine_tuning.jobs.retrieve(job_id)
                errors = 0
            except (openai.APIConnectionError, openai.RateLimitError, openai.InternalServerError) as e:
                errors += 1
                if errors >= MAX_POLL_ERRORS:
                    raise EndpointError(f"{where}: lost contact with job {job_id} after {errors} tries "
                                        f"({' '.join(str(e).split())[:200]}); it is recorded in {path}, and a re-run "
                                        "picks it up") from None
                sleep(next(delays))
                continue
            except openai.APIError as e:
                raise EndpointError(f"{where}: polling job {job_id} failed: {' '.join(str(e).split())[:300]} "
                                    f"(recorded in {path})") from None
            status = job.status
            if status != record.get("status") or job.fine_tuned_model:
                record.update(status=status, fine_tuned_model=job.fine_tuned_model,
                              trained_tokens=getattr(job, "trained_tokens", None),
                              error=job.error.model_dump() if getattr(job, "error", None) else None)
                _write(path, record)
            if status == DONE or status in FAILED:
                advance(1, status=status)
                return
            minutes = (time.monotonic() - start) / 60
            advance(0, status=f"{status}, {minutes:.0f} min{_latest_event(client, job_id)}")
            sleep(next(delays))


def _latest_event(client: Any, job_id: str) -> str:
    """The job's latest event message (e.g. "Step 120/500: training loss=0.43"), for the progress line."""
    try:
        events = client.fine_tuning.jobs.list_events(job_id, limit=1).data
    except Exception:  # noqa: BLE001 - the progress line does without it
        return ""
    return f" · {events[0].message}" if events else ""
