"""The question/answer format every stage shares: one module, at the package root.

* Latent-token strings (``LATENT_START``, ``LATENT_END``, ``LATENT_PAD``) and the ``<imagery>``
  placeholder (``IMAGERY``) of the imagery CoT (docs/method.md, Eq. 4-6).
* The prompt: :func:`format_options` renders the options, :func:`build_question_text` is the user
  text of DIFT, RL, inference and evaluation.
* The answer: :func:`parse_answer` (model output text -> option letter or None) and
  :func:`has_valid_format` (the 4DRL format check, Eq. 11).

It imports nothing from a pipeline stage, so the data builder, the trainers, the decoder and the
evaluation all read the same definitions (see docs/architecture.md for the layer rule).

The one answer parser: model output text -> option letter ("A".."D") or None.

Used by inference (`fourdthinker infer`), the RL rewards (accuracy and format, Eq. 11) and
every benchmark's scoring, so that "what did the model answer" has exactly one definition.

Order of evidence (first that decides wins):
1. the content of the last complete ``<answer>...</answer>`` (DOTALL, case-insensitive); an
   unclosed ``<answer>`` at the end (truncated output) counts too;
2. without a tag: an explicit "answer is X" / "Answer: X" statement anywhere (last one), else the
   whole text if it is short (a bare "B", "(B)", "Pan Left");
3. inside the chosen span: a leading letter ("B", "B.", "(B)", "B) Pan Left", "Option B"), then an
   option's text (exact, case/punctuation-insensitive), then a unique standalone letter, then a
   unique option text contained in the span (the longest wins, so "Moving Left-Up" beats
   "Moving Left").

Never the first capital letter inside a word: the reference's regex took the "A" in "At" or
"Camera" (docs/reference.md#rl, #evaluation). Latent special tokens and ``<imagery:K>`` markers are stripped.

>>> parse_answer("<think>...</think><answer>B</answer>")
'B'
>>> parse_answer("<answer>Pan Left</answer>", {"A": "Pan Right", "B": "Pan Left", "C": "Tilt Up", "D": "Tilt Down"})
'B'
>>> parse_answer("At first the camera moves.") is None
True
"""

from __future__ import annotations

import re

from fourdthinker.labels import OPTION_LETTERS

__all__ = [
    "IMAGERY",
    "LATENT_END",
    "LATENT_PAD",
    "LATENT_START",
    "LATENT_TOKENS",
    "answer_span",
    "build_question_text",
    "check_answer_in_options",
    "format_options",
    "has_valid_format",
    "parse_answer",
    "strip_special_tokens",
]

# The special tokens of a latent block (Eq. 6): <|latent_start|> z_1 .. z_K <|latent_end|>, the K
# latent positions holding <|latent_pad|> ids in the token stream.
LATENT_START, LATENT_END, LATENT_PAD = "<|latent_start|>", "<|latent_end|>", "<|latent_pad|>"
LATENT_TOKENS = (LATENT_START, LATENT_END, LATENT_PAD)
# One imagery placeholder in a reasoning text: one per imagery image (overlay), chronological.
IMAGERY = "<imagery>"


def format_options(options: dict[str, str]) -> str:
    """``A. x\\nB. y ...`` — the one place options are rendered into a prompt."""
    return "\n".join(f"{k}. {v}" for k, v in options.items())


_THINK_SUFFIX = (
    "\nFirst, think about the reasoning process with mental imagery of the relevant object or region, "
    "then provide the user with the answer. Put the reasoning in <think>...</think> and only the final "
    "answer in <answer>...</answer>, e.g. <think> reasoning process (with mental imagery as needed) "
    "</think><answer> answer here </answer>."
)


def build_question_text(question: str, options: dict[str, str], *, suffix: bool = True) -> str:
    """The user text of every stage (DIFT, RL, eval): question, blank line, options, suffix.

    One source of truth for the prompt (the reference's DIFT and RL suffixes differ and one has a
    ``</think>`` typo: docs/reference.md#rl)."""
    text = f"{question.strip()}\n\n{format_options(options)}"
    return text + _THINK_SUFFIX if suffix else text


def check_answer_in_options(answer: str, options: dict[str, str]) -> None:
    if answer not in options:
        raise ValueError(f"answer {answer!r} is not one of the options {list(options)}")


_LETTERS = "".join(OPTION_LETTERS)  # "ABCD"
_FLAGS = re.IGNORECASE | re.DOTALL

# A latent block as the decoder writes it (ids decoded without skipping specials) or renders it.
_LATENT_BLOCK = re.compile(rf"{re.escape(LATENT_START)}.*?(?:{re.escape(LATENT_END)}|$)", re.DOTALL)
_SPECIAL = re.compile(r"<\|[a-z_]+\|>|<imagery(?::\d+)?>", re.IGNORECASE)
_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", _FLAGS)
_ANSWER_OPEN = re.compile(r"<answer>(?!.*</answer>)(.*)$", _FLAGS)
_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)

_PREFIX = re.compile(
    r"^\s*(?:so\s*,?\s*|therefore\s*,?\s*|thus\s*,?\s*|hence\s*,?\s*)?"
    r"(?:(?:the\s+)?(?:best|correct|final|right)?\s*(?:answer|option|choice)\s*(?:is|would be|should be|:|-|=)?"
    r"|(?:i\s+(?:choose|pick|select))|(?:my\s+answer\s+is))\s*[:\-=]?\s*",
    re.IGNORECASE,
)
# "answer is B", "Answer: (C)", "correct option is D." anywhere in a text without a tag.
_STATED = re.compile(
    rf"(?:answer|option|choice)\s*(?:is|would be|should be|:|=|-)\s*[\(\[\*\"']*\s*([{_LETTERS}])(?![A-Za-z])",
    re.IGNORECASE,
)
# A letter at the very start of the span: "B", "B.", "(B)", "[B]", "**B**", "B) text", "B: text", "Option B".
_LEADING = re.compile(
    rf"^\s*(?:option\s+|choice\s+)?[\(\[\*\"']*\s*([{_LETTERS}])\s*[\)\]\*\"']*\s*(?:$|[.:)\]\-,;]|\s+(?=\S))",
    re.IGNORECASE,
)
_STANDALONE = re.compile(rf"(?<![A-Za-z0-9'])([{_LETTERS}])(?![A-Za-z0-9'])")
_ARTICLE_NEXT = re.compile(r"\s+[a-z]")
_VERB_NEXT = re.compile(r"\s+(?:is|was|seems|looks|would|should|fits|matches)\b", re.IGNORECASE)

_SHORT_WORDS = 12  # a tag-less text this short is treated as the answer itself


def strip_special_tokens(text: str) -> str:
    """Remove latent blocks (``<|latent_start|> .. <|latent_end|>``), ``<imagery:K>`` markers and any
    other ``<|...|>`` special token (``<|im_end|>``, ``<|endoftext|>``)."""
    text = _LATENT_BLOCK.sub(" ", text)
    return _SPECIAL.sub(" ", text)


def _norm(s: str) -> str:
    """Case-, space- and edge-punctuation-insensitive form of an option text."""
    s = re.sub(r"\s+", " ", s.strip().lower())
    return s.strip(" .,:;!?\"'`*()[]")


def answer_span(text: str) -> tuple[str, bool]:
    """The part of ``text`` holding the answer and whether it came from an ``<answer>`` tag.

    Last complete ``<answer>..</answer>`` wins; else a trailing unclosed ``<answer>``; else the
    whole text (after the last ``</think>`` when there is one)."""
    text = strip_special_tokens(text)
    tags = _ANSWER_TAG.findall(text)
    if tags:
        return tags[-1], True
    m = _ANSWER_OPEN.search(text)
    if m:
        return m.group(1), True
    parts = re.split(r"</think>", text, flags=re.IGNORECASE)
    return parts[-1] if len(parts) > 1 and parts[-1].strip() else text, False


def _letter_ok(letter: str, options: dict[str, str] | None) -> str | None:
    letter = letter.upper()
    if options is not None and letter not in options:
        return None
    return letter if letter in OPTION_LETTERS else None


def _standalone_letters(span: str) -> set[str]:
    found = set()
    for m in _STANDALONE.finditer(span):
        letter = m.group(1)
        rest = span[m.end():]
        # "A camera ..." is the article, not option A; "A is correct" is the option.
        if letter == "A" and _ARTICLE_NEXT.match(rest) and not _VERB_NEXT.match(rest):
            continue
        found.add(letter)
    return found


def _stated_article(m: re.Match, text: str) -> bool:
    """"The answer is a rightward pan" / "answer is a Pan Right": a lower-case "a" before a word is
    the article, not option A. "answer is A because", "answer is (a)", "answer is a." and "answer
    is a" at the end stay option A."""
    if m.group(1) != "a":
        return False
    bracketed = bool(re.search(r"[\(\[\*\"']\s*$", text[m.start():m.start(1)]))
    rest = text[m.end(1):]
    return not bracketed and bool(re.match(r"\s+[A-Za-z]{2,}", rest)) and not _VERB_NEXT.match(rest)


def _option_text_match(span: str, options: dict[str, str], *, contained: bool) -> str | None:
    ns = _norm(span)
    if not ns:
        return None
    exact = [k for k, v in options.items() if _norm(v) == ns]
    if len(exact) == 1:
        return exact[0]
    if not contained:
        return None
    hits = {}
    for k, v in options.items():
        nv = _norm(v)
        if nv and re.search(rf"(?<![a-z0-9]){re.escape(nv)}(?![a-z0-9\-])", ns):
            hits[k] = nv
    # Drop options whose text is part of another matched option's text ("moving left" in "moving left-up").
    keep = [k for k, nv in hits.items() if not any(nv != o and nv in o for o in hits.values())]
    return keep[0] if len(keep) == 1 else None


def _parse_span(span: str, options: dict[str, str] | None) -> str | None:
    span = _THINK_TAG.sub(" ", span).strip()
    if not span:
        return None
    # Strip "The answer is", "Answer:", "I choose" ... possibly repeated ("Answer: The answer is B").
    for _ in range(3):
        new = _PREFIX.sub("", span, count=1).strip()
        if new == span or not new:
            break
        span = new
    m = _LEADING.match(span)
    if m:
        letter = m.group(1)
        tail = span[m.start(1) + 1:]
        bracketed = bool(re.match(r"\s*[\)\]\*\"']", tail)) or bool(re.match(r"[\(\[\*\"']", span.lstrip()))
        punct = bool(re.match(r"\s*(?:$|[.:)\]\-,;])", tail))
        if letter.isupper():
            # "A camera pans left": the article, not option A ("A is correct" is the option).
            article = letter == "A" and not bracketed and _ARTICLE_NEXT.match(tail) and not _VERB_NEXT.match(tail)
            # "B or C": a letter followed by words that name another letter is no decision.
            ambiguous = not (punct or bracketed) and len(_standalone_letters(span)) > 1
            if not article and not ambiguous:
                return _letter_ok(letter, options)
        elif punct or bracketed:  # "b." / "(b)" / "b": a lower-case letter only with punctuation
            return _letter_ok(letter, options)
    if options:
        hit = _option_text_match(span, options, contained=False)
        if hit:
            return hit
    letters = _standalone_letters(span)
    if len(letters) == 1:
        return _letter_ok(letters.pop(), options)
    if options:
        return _option_text_match(span, options, contained=True)
    return None


def parse_answer(text: str, options: dict[str, str] | None = None) -> str | None:
    """Return the option letter ("A".."D") that ``text`` answers, or None if it does not say.

    ``options`` (letter -> option text) enables answers given as option text and restricts the
    result to its letters. See the module docstring for the order of evidence.

    >>> parse_answer("The answer is (C).")
    'C'
    >>> parse_answer("<answer>b. pan left</answer>", {"A": "Pan Right", "B": "Pan Left", "C": "x", "D": "y"})
    'B'
    """
    if not isinstance(text, str) or not text.strip():
        return None
    span, tagged = answer_span(text)
    if tagged:
        return _parse_span(span, options)
    clean = strip_special_tokens(text)
    stated = [m.group(1) for m in _STATED.finditer(clean) if not _stated_article(m, clean)]
    if stated:
        return _letter_ok(stated[-1], options)
    if len(span.split()) <= _SHORT_WORDS:
        return _parse_span(span, options)
    return None


_FORMAT = re.compile(r"\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*", _FLAGS)


def has_valid_format(text: str, options: dict[str, str] | None = None) -> bool:
    """True iff ``text`` is exactly ``<think> .. </think><answer> .. </answer>`` (whitespace and
    special tokens such as latent blocks or ``<|im_end|>`` aside), with one tag pair of each and an
    answer that parses to an option letter (of ``options`` when given).

    Stricter than the reference's ``re.search`` (docs/reference.md#rl): text after ``</answer>``, a second
    answer, or an answer tag inside the think block all fail.

    >>> has_valid_format("<think>pans <|latent_start|><|latent_pad|><|latent_end|> left</think><answer>A</answer><|im_end|>")
    True
    >>> has_valid_format("<answer>A</answer>")
    False
    """
    if not isinstance(text, str):
        return False
    clean = strip_special_tokens(text)
    m = _FORMAT.fullmatch(clean)
    if not m:
        return False
    think, answer = m.group(1), m.group(2)
    if re.search(r"</?(?:think|answer)>", think + answer, re.IGNORECASE):
        return False
    return _parse_span(answer, options) is not None
