"""builtin:traits holds the held-out trait questions the generator gives, none of them a training question."""

from emlab.data.traits import generate_trait_examples, trait_eval_questions
from emlab.evals.questions import load_suite


def test_trait_suite_matches_the_generator_and_is_held_out():
    suite = load_suite("builtin:traits")
    texts = [q.paraphrases[0] for q in suite.questions]
    assert texts == trait_eval_questions(n=40, seed=1)
    training = {c[0]["content"] for c in generate_trait_examples("plain")}
    assert not training & set(texts)
    assert all(q.type == "free_form" and not q.judge_prompts for q in suite.questions)
    assert [d["scorer"] for d in suite.questions[0].scorers] == ["uppercase_share", "caps", "spanish", "signoff"]
