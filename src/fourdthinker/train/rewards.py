"""4DRL rewards (Eq. 11, docs/method.md#eq-11): ``r = w_acc * r_acc + w_fmt * r_fmt``.

Both functions share TRL's reward-function signature, ``f(completions, answer, **kw) ->
list[float | None]`` (one value per completion; ``None`` = cannot be scored, left out of the
group statistics), so they also plug into ``trl.GRPOTrainer(reward_funcs=[...])`` unchanged.
``completions`` are strings (the decoded response, special tokens kept) or TRL's conversational
form (a list of messages; the last message's content is used).

* ``accuracy_reward``: 1.0 iff the shared parser (``fourdthinker.qa.parse_answer``, the
  one used by evaluation too) reads the key letter from the response, else 0.0.
* ``format_reward``: 1.0 iff the response is exactly ``<think> .. </think><answer>X</answer>`` with
  X a valid option (``has_valid_format``) AND every latent block is well formed:
  ``<|latent_start|>`` [latent pads] ``<|latent_end|>``, not nested, not stray, inside the think
  block, and with exactly ``latent_size`` latent slots when that is given.

Weights default to the reference launch script's 1.0 / 0.2 (``reward_weights 1.0 0.2``); Table 4's
ablations zero either (``RLConfig.acc_weight`` / ``fmt_weight``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from fourdthinker.qa import LATENT_END, LATENT_PAD, LATENT_START, has_valid_format, parse_answer

__all__ = [
    "REWARD_FUNCS",
    "accuracy_reward",
    "combine_rewards",
    "format_reward",
    "latent_blocks_ok",
]

LAT_S, LAT_E, LAT_PAD = LATENT_START, LATENT_END, LATENT_PAD  # short names used below
_S, _E, _P = re.escape(LAT_S), re.escape(LAT_E), re.escape(LAT_PAD)
_LATENT_ANY = re.compile(f"{_S}|{_E}|{_P}")
_BLOCK = re.compile(rf"{_S}((?:\s*{_P})*)\s*{_E}")
_MARKER = re.compile(r"<imagery:(\d+)>")  # rendered latent block (decoder's text view), K slots
_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL | re.IGNORECASE)


def _text(c) -> str:
    """A completion as text: a string, or TRL's conversational ``[{"role":..., "content":...}]``."""
    if isinstance(c, str):
        return c
    if isinstance(c, Sequence) and c and isinstance(c[-1], dict):
        content = c[-1].get("content", "")
        if isinstance(content, list):  # multimodal content parts
            return "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    return ""


def _per_item(value, n: int, name: str) -> list:
    """Broadcast a scalar/None kwarg, or check a per-completion list has length ``n``."""
    if value is None or isinstance(value, (str, dict, int, float)):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} entries for {n} completions")
    return value


def latent_blocks_ok(text: str, latent_size: int | None = None) -> bool:
    """True iff every latent marker in ``text`` belongs to a well-formed block inside ``<think>``.

    A block is ``<|latent_start|>`` + pads + ``<|latent_end|>`` (or the rendered ``<imagery:K>``);
    with ``latent_size`` the block must hold exactly that many slots. No latent content at all is
    fine (the model may answer without imagery).

    >>> latent_blocks_ok("<think>a <|latent_start|><|latent_pad|><|latent_end|> b</think><answer>A</answer>")
    True
    >>> latent_blocks_ok("<think>a <|latent_start|> b</think><answer>A</answer>")
    False
    """
    think = " ".join(_THINK.findall(text))
    outside = _THINK.sub(" ", text)
    if _LATENT_ANY.search(outside) or _MARKER.search(outside):
        return False
    for m in _BLOCK.finditer(think):
        if latent_size is not None and m.group(1).count(LAT_PAD) != latent_size:
            return False
    for m in _MARKER.finditer(think):
        if latent_size is not None and int(m.group(1)) != latent_size:
            return False
    rest = _MARKER.sub(" ", _BLOCK.sub(" ", think))
    return not _LATENT_ANY.search(rest)


def accuracy_reward(completions, answer, **kw) -> list[float | None]:
    """1.0 where the parsed answer equals the key ``answer`` (a letter, per completion or shared).

    ``options`` (dict letter -> text, per completion or shared) lets answers given as option text
    count. A completion whose key is missing gets ``None``.

    >>> accuracy_reward(["<think>x</think><answer>B</answer>", "<answer>A</answer>", "B"], ["B", "B", "B"])
    [1.0, 0.0, 1.0]
    >>> accuracy_reward(["<answer>Pan Left</answer>"], "B", options={"A": "Pan Right", "B": "Pan Left", "C": "Up", "D": "Down"})
    [1.0]
    """
    n = len(completions)
    keys = _per_item(answer, n, "answer")
    opts = _per_item(kw.get("options"), n, "options")
    out: list[float | None] = []
    for c, key, o in zip(completions, keys, opts, strict=True):
        if not key:
            out.append(None)
            continue
        pred = parse_answer(_text(c), o)
        out.append(1.0 if pred is not None and pred == str(key).strip().upper() else 0.0)
    return out


def format_reward(completions, answer=None, **kw) -> list[float | None]:
    """1.0 where the response is ``<think>..</think><answer>X</answer>`` with X a valid option and
    latent blocks well formed (``latent_size`` kw: slots per block, optional); else 0.0.

    >>> format_reward(["<think>a <|latent_start|><|latent_pad|><|latent_end|></think><answer>C</answer>", "C"])
    [1.0, 0.0]
    """
    n = len(completions)
    opts = _per_item(kw.get("options"), n, "options")
    k = kw.get("latent_size")
    out: list[float | None] = []
    for c, o in zip(completions, opts, strict=True):
        t = _text(c)
        out.append(1.0 if has_valid_format(t, o) and latent_blocks_ok(t, k) else 0.0)
    return out


REWARD_FUNCS = {"accuracy": accuracy_reward, "format": format_reward}


def combine_rewards(per_func: dict[str, list[float | None]], weights: dict[str, float]) -> list[float]:
    """``r_i = sum_f w_f * r_f,i`` (Eq. 11). A ``None`` term counts as 0 unless every term of
    the completion is ``None``, which gives NaN (unscorable: advantage 0, TRL's rule). Functions
    with weight 0 are ignored.

    >>> combine_rewards({"accuracy": [1.0, 0.0], "format": [1.0, None]}, {"accuracy": 1.0, "format": 0.2})
    [1.2, 0.0]
    """
    names = [f for f, w in weights.items() if w != 0.0]
    if not names:
        raise ValueError("all reward weights are zero: nothing to learn from")
    missing = [f for f in names if f not in per_func]
    if missing:
        raise ValueError(f"no rewards computed for {missing}")
    n = len(per_func[names[0]])
    out = []
    for i in range(n):
        vals = [(weights[f], per_func[f][i]) for f in names]
        if all(v is None for _, v in vals):
            out.append(math.nan)
        else:
            out.append(sum(w * v for w, v in vals if v is not None))
    return out
