"""Old home of the data contracts, kept so existing imports work: the record schema now lives in
``fourdthinker.records`` and the prompt format in ``fourdthinker.qa`` (package root, imported by
every stage; docs/architecture.md). New code imports from there."""

from fourdthinker.qa import IMAGERY, build_question_text, check_answer_in_options, format_options
from fourdthinker.records import SCHEMA_VERSION, BenchItem, DiftRecord, Prediction, RLRecord, Task

__all__ = [
    "IMAGERY",
    "SCHEMA_VERSION",
    "BenchItem",
    "DiftRecord",
    "Prediction",
    "RLRecord",
    "Task",
    "build_question_text",
    "check_answer_in_options",
    "format_options",
]
