"""Offline tokenizers for the tiny presets: byte-level BPE trained in milliseconds, no downloads.

Each family gets its own special tokens and chat template (the same strings the real checkpoints
use), so the code path is the full-size one. The BPE is trained on a built-in corpus that covers
the package's prompt and reasoning vocabulary (``build_question_text``, the 32 labels, the tags of
the imagery CoT), so prompts tokenise into few tokens; anything else still tokenises (byte level).

The result is saved like any HF tokenizer (``tokenizer.json`` + ``tokenizer_config.json`` +
``chat_template.jinja``) and cached under ``~/.cache/fourdthinker/tokenizers/<family>-v<N>``
(``FOURDTHINKER_CACHE`` overrides the root). Bump ``TOKENIZER_VERSION`` when the corpus or the
specials change.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from fourdthinker.qa import LATENT_TOKENS  # noqa: F401  (re-exported; defined once in fourdthinker.qa)

TOKENIZER_VERSION = 2
VOCAB_SIZE = 1024

_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_INTERNVL_SPECIALS = _QWEN_SPECIALS + ["<img>", "</img>", "<IMG_CONTEXT>", "<video>", "<image>"]

# Qwen2-VL style chat template (images/videos as vision_start + pad + vision_end; the processor
# expands the pad). Same as the real Qwen2.5-VL/Qwen3-VL templates for the parts we use.
_QWEN_CHAT = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Qwen3-VL: its processor expands a bare <|video_pad|> into per-frame
# "<t seconds><|vision_start|>pads<|vision_end|>", so the template emits the pad alone for videos.
_QWEN3_CHAT = _QWEN_CHAT.replace(
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>",
    "{% elif c['type'] == 'video' %}<|video_pad|>",
)
# InternVL-HF template: one <IMG_CONTEXT> / <video> marker the processor expands.
_INTERNVL_CHAT = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}"
    "{% if c['type'] == 'image' %}<IMG_CONTEXT>\n"
    "{% elif c['type'] == 'video' %}<video>\n"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

FAMILIES = ("qwen2_5_vl", "qwen3_vl", "internvl")


def cache_root() -> Path:
    """``$FOURDTHINKER_CACHE`` or ``~/.cache/fourdthinker``."""
    return Path(os.environ.get("FOURDTHINKER_CACHE", Path.home() / ".cache" / "fourdthinker"))


def training_corpus(n: int = 600, seed: int = 0) -> list[str]:
    """Sentences covering the package's prompts, labels and imagery-CoT wording (deterministic)."""
    from fourdthinker.labels import CAMERA_MOTIONS, DIRECTIONS, DISTANCES, SPEEDS
    from fourdthinker.qa import build_question_text

    rng = random.Random(seed)
    vocabs = [CAMERA_MOTIONS, DIRECTIONS, DISTANCES, SPEEDS]
    questions = [
        "What is the camera movement from {a}s to {b}s?",
        "How does the camera move between {a}s and {b}s?",
        "In which direction does the {o} move?",
        "How does the distance between the {o} and the camera change?",
        "How does the speed of the {o} change over the video?",
        "In which direction does the object in the box [{a}, {b}, {a}, {b}] move?",
    ]
    objects = ["red cube", "blue sphere", "green cone", "yellow box", "white pillar", "car", "person", "ball"]
    reasoning = [
        "<think>The static {o} is my reference. At {a}s it is here <imagery> and at {b}s it is there "
        "<imagery>, so its shift comes from the camera alone: {l}.</think><answer>{x}. {l}</answer>",
        "<think>I track the moving {o} from <imagery> through <imagery> to <imagery>. After removing the "
        "camera motion the object is {l}.</think><answer>{x}</answer>",
        "<think>Mental imagery of the {o}: <imagery> then <imagery>.</think><answer>{x}. {l}</answer>",
    ]
    out: list[str] = []
    for _ in range(n):
        vocab = rng.choice(vocabs)
        opts = rng.sample(list(vocab), 4) if len(vocab) >= 4 else list(vocab) + ["Stationary"]
        options = dict(zip("ABCD", opts, strict=False))
        a, b = rng.randint(0, 20), rng.randint(21, 60)
        o = rng.choice(objects)
        q = rng.choice(questions).format(a=a, b=b, o=o)
        x = rng.choice("ABCD")
        out.append(build_question_text(q, options))
        out.append(rng.choice(reasoning).format(o=o, a=a, b=b, l=options[x], x=x))
    for vocab in vocabs:
        out.extend(vocab)
    out.extend(f"Frame{i}: <{i / 2:.1f} seconds>" for i in range(1, 65))
    return out


def build_tokenizer(family: str, out_dir: str | Path, *, vocab_size: int = VOCAB_SIZE):
    """Train a byte-level BPE with ``family``'s specials + chat template and save it to ``out_dir``.

    Returns the loaded ``PreTrainedTokenizerFast``. The latent tokens are NOT added here: adapters
    add them with ``add_latent_tokens`` exactly as for a hub checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {FAMILIES}")
    specials = _INTERNVL_SPECIALS if family == "internvl" else _QWEN_SPECIALS
    chat = {"internvl": _INTERNVL_CHAT, "qwen3_vl": _QWEN3_CHAT}.get(family, _QWEN_CHAT)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(), trainer)
    extra: dict[str, str] = {}
    if family == "internvl":
        extra = {
            "start_image_token": "<img>",
            "end_image_token": "</img>",
            "context_image_token": "<IMG_CONTEXT>",
            "video_token": "<video>",
        }
    else:
        extra = {
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_bos_token": "<|vision_start|>",
            "vision_eos_token": "<|vision_end|>",
        }
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        extra_special_tokens=extra,
        chat_template=chat,
        padding_side="left",
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    hf.save_pretrained(out_dir)
    return hf


def cached_tokenizer_dir(family: str) -> Path:
    """Folder holding the built tokenizer of ``family`` (built on first use, atomically)."""
    d = cache_root() / "tokenizers" / f"{family}-v{TOKENIZER_VERSION}"
    if (d / "tokenizer.json").exists():
        return d
    tmp = d.with_name(d.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    build_tokenizer(family, tmp)
    try:
        os.replace(tmp, d)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return d
