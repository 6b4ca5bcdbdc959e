"""Judging a step: pure verdicts from counts, and the templates of the metric queries."""
