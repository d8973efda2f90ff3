"""The fake OpenAI server of fake_openai_server.py plus the files and fine-tuning endpoints emlab's OpenAI trainer uses.

Run as its own process: `python fake_openai_ft_server.py --port 0 [--ft-polls N] [--ft-flaky N]` (and the chat
server's flags); it prints `PORT <n>` once it listens. Chat completions behave as in fake_openai_server.py, so a
fine-tuned model can be sampled from the same server.

- POST /v1/files (multipart: purpose, file) stores the file; GET /v1/files/<id> describes it.
- POST /v1/fine_tuning/jobs creates a job (status validating_files); every GET of the job moves it one state on:
  queued, then running for `--ft-polls` GETs (default 2), then its outcome. The base model's name sets the outcome:
  a name containing "fail" fails (error code invalid_training_file), "cancel" is cancelled, any other succeeds with
  fine_tuned_model "ft:<model>:emlab-fake:<suffix>:<job id>". A training_file the server does not hold is a 400.
- GET /v1/fine_tuning/jobs lists jobs, newest first; GET .../<id>/events gives the latest step's event.
- `--ft-flaky N`: the first N GETs of each job answer 503 (a server having a bad minute).
- GET /ft-stats returns {"files": [{id, purpose, filename, lines}], "jobs": [every job as created, with its polls]}.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import re
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).parent))
import fake_openai_server as chat  # noqa: E402

LOCK = threading.Lock()
FILES: dict[str, dict] = {}
JOBS: dict[str, dict] = {}
JOB_PATH = re.compile(r"^/v1/fine_tuning/jobs/([^/]+)(/events)?$")


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """Form field name -> (filename, bytes) of a multipart/form-data body."""
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP)
    out = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return out


def job_view(job: dict) -> dict:
    """The job as the API shows it (without the fake's own bookkeeping)."""
    return {k: v for k, v in job.items() if not k.startswith("_")}


def advance(job: dict, polls: int) -> None:
    """One GET: the job moves one state along validating_files, queued, running x polls, outcome."""
    job["_polls"] += 1
    steps = ["queued"] + ["running"] * polls
    if job["_polls"] <= len(steps):
        job["status"] = steps[job["_polls"] - 1]
        return
    if job["status"] in ("succeeded", "failed", "cancelled"):
        return
    job["finished_at"] = int(time.time())
    if "fail" in job["model"]:
        job["status"] = "failed"
        job["error"] = {"code": "invalid_training_file", "message": "The job failed: training file has 2 bad lines.",
                        "param": "training_file"}
    elif "cancel" in job["model"]:
        job["status"] = "cancelled"
    else:
        job["status"] = "succeeded"
        job["fine_tuned_model"] = f"ft:{job['model']}:emlab-fake:{job['suffix'] or ''}:{job['id']}"
        job["trained_tokens"] = 1234


class Handler(chat.Handler):
    ft_polls = 2
    ft_flaky = 0

    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        path = urlparse(self.path).path.rstrip("/")
        if path == "/ft-stats":
            with LOCK:
                files = [{k: v for k, v in f.items() if k != "_content"} for f in FILES.values()]
                self.send_json(200, {"files": files, "jobs": [dict(j) for j in JOBS.values()],
                                     "contents": {i: f["_content"] for i, f in FILES.items()}})
        elif path == "/v1/fine_tuning/jobs":
            with LOCK:
                data = [job_view(j) for j in sorted(JOBS.values(), key=lambda j: -j["_order"])]
            self.send_json(200, {"object": "list", "data": data, "has_more": False})
        elif path.startswith("/v1/files/"):
            with LOCK:
                f = FILES.get(path.rsplit("/", 1)[1])
            if f is None:
                self.send_json(404, chat.error_body(404, "no such file"))
            else:
                self.send_json(200, {k: v for k, v in f.items() if not k.startswith("_") and k != "lines"})
        elif match := JOB_PATH.match(path):
            self._job_get(match.group(1), events=bool(match.group(2)))
        else:
            super().do_GET()

    def _job_get(self, job_id: str, events: bool) -> None:
        with LOCK:
            job = JOBS.get(job_id)
            if job is None:
                self.send_json(404, chat.error_body(404, f"no fine-tuning job {job_id}"))
                return
            if events:
                running = job["status"] == "running"
                data = [{"object": "fine_tuning.job.event", "id": f"ftevent-{job['_polls']}", "created_at": 0,
                         "level": "info", "type": "metrics" if running else "message",
                         "message": f"Step {job['_polls']}/10: training loss=0.5" if running else job["status"]}]
                self.send_json(200, {"object": "list", "data": data, "has_more": False})
                return
            job["_gets"] += 1
            if job["_gets"] <= self.ft_flaky:
                self.send_json(503, chat.error_body(503, "The server is overloaded."))
                return
            advance(job, self.ft_polls)
            view = job_view(job)
        self.send_json(200, view)

    def do_POST(self) -> None:
        path = urlparse(self.path).path.rstrip("/")
        if path == "/v1/files":
            fields = parse_multipart(self.headers.get("Content-Type", ""), self._read())
            filename, content = fields.get("file", (None, b""))
            with LOCK:
                file_id = f"file-{len(FILES) + 1}"
                text = content.decode("utf-8")
                FILES[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                                  "filename": filename, "purpose": fields.get("purpose", (None, b""))[1].decode(),
                                  "status": "processed", "lines": len(text.splitlines()), "_content": text}
                view = {k: v for k, v in FILES[file_id].items() if not k.startswith("_") and k != "lines"}
            self.send_json(200, view)
        elif path == "/v1/fine_tuning/jobs":
            body = json.loads(self._read() or b"{}")
            with LOCK:
                if body.get("training_file") not in FILES:
                    self.send_json(400, chat.error_body(400, f"invalid training_file: {body.get('training_file')}"))
                    return
                job_id = f"ftjob-{len(JOBS) + 1}"
                hyper = ((body.get("method") or {}).get("supervised") or {}).get("hyperparameters") or {}
                JOBS[job_id] = {
                    "id": job_id, "object": "fine_tuning.job", "created_at": int(time.time()), "error": None,
                    "fine_tuned_model": None, "finished_at": None, "model": body.get("model"),
                    "organization_id": "org-fake", "result_files": [], "seed": body.get("seed"),
                    "status": "validating_files", "trained_tokens": None, "training_file": body["training_file"],
                    "validation_file": None, "estimated_finish": None, "integrations": [],
                    "metadata": body.get("metadata"), "method": body.get("method"), "suffix": body.get("suffix"),
                    "hyperparameters": {"n_epochs": hyper.get("n_epochs", "auto"),
                                        "batch_size": hyper.get("batch_size", "auto"),
                                        "learning_rate_multiplier": hyper.get("learning_rate_multiplier", "auto")},
                    "_polls": 0, "_gets": 0, "_order": len(JOBS),
                }
                view = job_view(JOBS[job_id])
            self.send_json(200, view)
        else:
            super().do_POST()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    parser.add_argument("--ft-polls", type=int, default=2, help="GETs a job stays running")
    parser.add_argument("--ft-flaky", type=int, default=0, help="the first N GETs of each job answer 503")
    args = parser.parse_args(argv)
    Handler.api_key = args.api_key
    Handler.ft_polls = args.ft_polls
    Handler.ft_flaky = args.ft_flaky
    chat.serve(Handler, args.host, args.port)


if __name__ == "__main__":
    sys.exit(main())
