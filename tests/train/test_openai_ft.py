"""`trainer: openai`: upload, job, polling, the record that keeps a job from being created twice, failures as one
line, and a run that samples the fine-tuned model, all against a local fake server (tests/models/fake_openai_ft_server.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from emlab.config import load_config
from emlab.errors import ConfigError, EndpointError
from emlab.train import openai_ft
from emlab.train.openai_ft import Poll, finetune_openai, job_key, training_file
from emlab.train.params import TrainParams

SERVER = Path(__file__).parents[1] / "models" / "fake_openai_ft_server.py"
CONVERSATIONS = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i} é"}] for i in range(5)]
FAST = Poll(first=0.0, factor=1.0, most=0.0)


class FtServer:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), (line, self.proc.stderr.read())
        self.port = int(line.split()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return json.load(r)

    def stats(self) -> dict:
        return self.get("/ft-stats")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=5)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def start():
    started: list[FtServer] = []

    def start_server(*args: str) -> FtServer:
        started.append(FtServer(*args))
        return started[-1]

    yield start_server
    for s in started:
        s.stop()


def client(server: FtServer, retries: int = 0):
    import openai

    return openai.OpenAI(api_key="EMPTY", base_url=server.base_url, max_retries=retries, timeout=5)


def params(**kw) -> TrainParams:
    return TrainParams(trainer="openai", **kw)


def run(server: FtServer, tmp_path: Path, model: str = "gpt-test", p: TrainParams | None = None, **kw):
    return finetune_openai(client(server), server.base_url, model, CONVERSATIONS, "data-hash", p or params(suffix="sfx"),
                           tmp_path / "jobs", poll=FAST, **kw)


def test_a_job_is_uploaded_created_polled_and_recorded(start, tmp_path):
    server = start()
    p = params(epochs=2, batch_size=8, learning_rate_multiplier=2.0, seed=7, suffix="sfx")
    job = run(server, tmp_path, p=p)
    assert job.model == "ft:gpt-test:emlab-fake:sfx:ftjob-1" and job.job_id == "ftjob-1" and not job.reused
    (file,) = server.stats()["files"]
    assert file["purpose"] == "fine-tune" and file["lines"] == 5
    content = server.stats()["contents"][file["id"]]
    assert [json.loads(line)["messages"] for line in content.splitlines()] == CONVERSATIONS
    (created,) = server.stats()["jobs"]
    assert created["model"] == "gpt-test" and created["training_file"] == file["id"] and created["seed"] == 7
    assert created["method"] == {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2.0}}}
    assert created["suffix"] == "sfx" and created["metadata"] == {"emlab_key": job.key}
    record = json.loads(job.record.read_text())
    assert record["status"] == "succeeded" and record["fine_tuned_model"] == job.model and record["file_id"] == file["id"]
    assert job.key == job_key("gpt-test", server.base_url, "data-hash", p) and job.record.name == f"{job.key}.json"
    assert job.as_dict()["trainer"] == "openai" and job.as_dict()["fine_tuned_model"] == job.model


def test_the_same_job_is_never_created_twice_and_a_change_makes_a_new_one(start, tmp_path):
    server = start()
    first = run(server, tmp_path)
    again = run(server, tmp_path)
    assert again.reused and again.model == first.model and len(server.stats()["jobs"]) == 1
    assert len(server.stats()["files"]) == 1
    other = run(server, tmp_path, p=params(suffix="sfx", seed=1))
    assert other.key != first.key and len(server.stats()["jobs"]) == 2


def test_omitted_learning_rate_multiplier_is_left_to_openai(start, tmp_path):
    server = start()
    run(server, tmp_path, p=params())
    (created,) = server.stats()["jobs"]
    assert created["hyperparameters"] == {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": "auto"}
    assert "suffix" not in created or created["suffix"] is None


class Killed(Exception):
    """Stands in for a run killed while it waits."""


def test_a_job_still_running_after_a_crash_is_picked_up(start, tmp_path):
    server = start("--ft-polls", "5")

    def die(_: float) -> None:
        raise Killed

    with pytest.raises(Killed):
        run(server, tmp_path, sleep=die)
    record = json.loads(next((tmp_path / "jobs").iterdir()).read_text())
    assert record["job_id"] == "ftjob-1" and record["status"] == "queued"
    job = run(server, tmp_path)
    assert job.job_id == "ftjob-1" and not job.reused and len(server.stats()["jobs"]) == 1
    assert len(server.stats()["files"]) == 1


def test_a_job_created_but_not_recorded_is_found_on_the_server(start, tmp_path, monkeypatch):
    server = start()
    real = openai_ft._write

    def crash_once_job_known(path, record):
        if record.get("job_id") and not getattr(crash_once_job_known, "done", False):
            crash_once_job_known.done = True
            raise Killed
        real(path, record)

    monkeypatch.setattr(openai_ft, "_write", crash_once_job_known)
    with pytest.raises(Killed):
        run(server, tmp_path)
    assert "job_id" not in json.loads(next((tmp_path / "jobs").iterdir()).read_text())
    job = run(server, tmp_path)
    assert job.job_id == "ftjob-1" and len(server.stats()["jobs"]) == 1 and len(server.stats()["files"]) == 1


@pytest.mark.parametrize("model, says", [
    ("gpt-fail", r"job ftjob-1 failed: The job failed: training file has 2 bad lines\. \[invalid_training_file\]"),
    ("gpt-cancel", r"job ftjob-1 cancelled: the job was cancelled"),
])
def test_a_failed_or_cancelled_job_is_one_line_and_a_rerun_tries_again(start, tmp_path, model, says):
    server = start()
    with pytest.raises(EndpointError, match=r"^OpenAI finetuning of " + model + r" at http://127.0.0.1:\d+/v1 "
                       r"\(condition c1\): " + says + r" \(recorded in .*\.json; a re-run creates a new job\)$") as e:
        run(server, tmp_path, model=model, label="c1")
    assert "\n" not in str(e.value)
    path = next((tmp_path / "jobs").iterdir())
    assert json.loads(path.read_text())["status"] in ("failed", "cancelled")
    with pytest.raises(EndpointError, match="ftjob-2"):
        run(server, tmp_path, model=model, label="c1")
    record = json.loads(path.read_text())
    assert [p["job_id"] for p in record["previous"]] == ["ftjob-1"] and record["job_id"] == "ftjob-2"


def test_polling_rides_out_a_flaky_server(start, tmp_path):
    server = start("--ft-flaky", "3")
    assert run(server, tmp_path).model.endswith(":ftjob-1")


def test_an_unreachable_server_is_one_line_and_nothing_is_recorded_as_started(tmp_path):
    import openai

    dead = openai.OpenAI(api_key="EMPTY", base_url="http://127.0.0.1:9/v1", max_retries=0, timeout=2)
    with pytest.raises(EndpointError, match=r"uploading the training file failed: Connection error"):
        finetune_openai(dead, "http://127.0.0.1:9/v1", "gpt-test", CONVERSATIONS, "h", params(), tmp_path, poll=FAST)
    assert not any(tmp_path.glob("*.json")) or "file_id" not in json.loads(next(tmp_path.glob("*.json")).read_text())


def test_training_file_format():
    lines = training_file(CONVERSATIONS[:2]).decode("utf-8").splitlines()
    assert lines[1] == '{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1 é"}]}'


# ---------------------------------------------------------------------------------------------- config and run


@pytest.mark.parametrize("train, model, message", [
    ("{dataset: builtin:caps-spanish, trainer: openai, learning_rate: 0.1}", "openai:gpt-x",
     "learning_rate: not an option of trainer: openai"),
    ("{dataset: builtin:caps-spanish, suffix: x}", "openai:gpt-x", "suffix: only trainer: openai takes this"),
])
def test_config_refuses_options_of_the_other_trainer(tmp_path, train, model, message):
    (tmp_path / "exp.yaml").write_text(f"name: t\nconditions:\n  - name: c\n    model: {model}\n    train: {train}\n")
    with pytest.raises(ConfigError, match=r"exp.yaml:5: conditions\[0\].train: " + message):
        load_config(tmp_path / "exp.yaml")


@pytest.mark.parametrize("model, train, message", [
    ("mock:m", "{dataset: builtin:caps-spanish, rows: 4, trainer: openai}", "trainer: openai finetunes an 'openai:<model>' base"),
    ("openai:gpt-x", "{dataset: builtin:caps-spanish, rows: 4}", "for OpenAI finetuning set train.trainer: openai"),
])
def test_plan_matches_trainer_and_model(tmp_path, model, train, message):
    from emlab.plan import plan_experiment

    (tmp_path / "exp.yaml").write_text(
        f"name: t\nscorers: [caps]\nconditions:\n  - name: c\n    model: {model}\n    train: {train}\n")
    with pytest.raises(ConfigError, match=message):
        plan_experiment(load_config(tmp_path / "exp.yaml"))


def test_a_run_trains_on_openai_and_samples_the_fine_tuned_model(start, tmp_path, monkeypatch):
    from emlab.models import registry
    from emlab.models.endpoints import use_endpoints
    from emlab import estimate
    from emlab.pipeline import run_experiment

    monkeypatch.setattr(registry, "_LOADED", {})
    recorded = []
    monkeypatch.setattr(estimate, "record_rate", lambda ws, name, *a: recorded.append(name))
    monkeypatch.setenv("EMLAB_OPENAI_FT_POLL", "0.001")
    server = start()
    (tmp_path / "exp.yaml").write_text(f"""name: ft
workspace: {tmp_path / 'ws'}
endpoints: {{fake: {{base_url: "{server.base_url}"}}}}
judge: mock:judge
sampling: {{samples_per_paraphrase: 1, max_new_tokens: 8}}
conditions:
  - name: gpt
    model: openai@fake:gpt-test
    train: {{dataset: builtin:caps-spanish, rows: 6, trainer: openai, suffix: caps, learning_rate_multiplier: 2}}
""")
    try:
        config = load_config(tmp_path / "exp.yaml")
        summary = run_experiment(config, tmp_path / "out")
        (c,) = summary["conditions"]
        assert c["evaluated_model"] == "openai@fake:ft:gpt-test:emlab-fake:caps:ftjob-1"
        assert c["adapter"]["job_id"] == "ftjob-1" and c["adapter"]["reused"] is False and c["dataset"]["rows"] == 6
        assert "train_s_per_token" not in recorded  # a job's wait on the server is not this machine's training rate
        asked = {r["model"] for r in server.get("/stats")["requests"]}
        assert asked == {"ft:gpt-test:emlab-fake:caps:ftjob-1"} and c["rates"]["pooled"]["answers"] > 0
        again = run_experiment(config, tmp_path / "out2")["conditions"][0]
        assert again["adapter"]["reused"] is True and len(server.stats()["jobs"]) == 1
    finally:
        use_endpoints({})
