"""Scoring: one Scorer contract for LLM judges (numeric and categorical), distilled judges and deterministic scorers."""
