import random
import sqlite3

import pytest

from emlab.evals.questions import load_suite
from emlab.evals.sampling import sample_suite
from emlab.models.base import SamplingParams
from emlab.models.mock import MockChatModel
from emlab.store import Store


class Recorder(MockChatModel):
    def __init__(self):
        super().__init__("rec")
        self.seen = []

    def generate(self, conversations, params, progress=None):
        self.seen.extend(conversations)
        return super().generate(conversations, params, progress)


def test_samples_n_per_paraphrase_and_reuses_the_store(tmp_path):
    suite = load_suite("builtin:core")
    model, store = MockChatModel("m"), Store(tmp_path / "s.sqlite")
    params = SamplingParams(n=1, seed=3)
    samples = sample_suite(model, suite, params, store, samples_per_paraphrase=2)
    n_paraphrases = sum(len(q.paraphrases) for q in suite.questions)
    assert len(samples) == 2 * n_paraphrases == model.calls["generate"]
    assert {s.question_id for s in samples} == set(suite.ids())
    again = sample_suite(model, suite, params, store, samples_per_paraphrase=2)
    assert again == samples and model.calls["generate"] == 2 * n_paraphrases  # nothing generated again
    more = sample_suite(model, suite, params, store, samples_per_paraphrase=3)
    assert len(more) == 3 * n_paraphrases and model.calls["generate"] == 3 * n_paraphrases  # only the new index


def test_a_new_seed_or_model_is_a_new_cache_entry(tmp_path):
    suite = load_suite("builtin:core")
    store = Store(tmp_path / "s.sqlite")
    a = MockChatModel("a")
    sample_suite(a, suite, SamplingParams(seed=0), store)
    sample_suite(a, suite, SamplingParams(seed=1), store)
    sample_suite(MockChatModel("b"), suite, SamplingParams(seed=0), store)
    assert store.counts()["samples"] == 3 * sum(len(q.paraphrases) for q in suite.questions)


def test_question_system_prompt_is_used(tmp_path, shared_data):
    suite = load_suite(shared_data / "em" / "evaluation" / "first_plot_questions.yaml")
    model = Recorder()
    samples = sample_suite(model, suite, SamplingParams(), Store(tmp_path / "s.sqlite"), samples_per_paraphrase=1)
    json_q = next(q for q in suite.questions if q.id.endswith("_json"))
    asked = [c for c in model.seen if c[-1]["content"] == json_q.paraphrases[0]]
    assert any(c[0] == {"role": "system", "content": json_q.system} for c in asked)
    assert next(s for s in samples if s.question_id == json_q.id).system == json_q.system


def drop_rows(path, share: float, seed: int) -> int:
    """Delete a random share of the stored answers, as a run killed at a random point would have left them."""
    with sqlite3.connect(path) as db:
        keys = sorted(k for (k,) in db.execute("SELECT key FROM samples"))
        gone = random.Random(seed).sample(keys, int(len(keys) * share))
        db.executemany("DELETE FROM samples WHERE key = ?", [(k,) for k in gone])
    return len(gone)


@pytest.mark.parametrize("spec", ["mock:m", "tiny"])
def test_an_answer_does_not_depend_on_what_else_was_missing(tmp_path, spec, tiny_checkpoint):
    """Same config, same answers: in one go, split over sample counts, or regenerated after rows were lost."""
    from emlab.models.registry import load_model

    model = load_model(f"hf:{tiny_checkpoint}" if spec == "tiny" else spec)
    suite = load_suite("builtin:core")
    params = SamplingParams(max_new_tokens=6, seed=4)
    whole = sample_suite(model, suite, params, Store(tmp_path / "whole.sqlite"), samples_per_paraphrase=3)
    assert len({s.answer for s in whole}) > 3  # the answers differ, so a mix-up would show
    split = Store(tmp_path / "split.sqlite")
    sample_suite(model, suite, params, split, samples_per_paraphrase=1)
    assert sample_suite(model, suite, params, split, samples_per_paraphrase=3) == whole
    for seed in range(2):
        assert drop_rows(tmp_path / "split.sqlite", 0.4, seed) > 0
        assert sample_suite(model, suite, params, split, samples_per_paraphrase=3) == whole
