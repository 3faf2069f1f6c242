"""Old home of the answer parser, kept so existing imports work: it now lives in
``fourdthinker.qa`` (package root, so the decoder and the RL rewards use it without importing the
eval stage; docs/architecture.md). New code imports from there."""

from fourdthinker.qa import answer_span, has_valid_format, parse_answer, strip_special_tokens

__all__ = ["answer_span", "has_valid_format", "parse_answer", "strip_special_tokens"]
