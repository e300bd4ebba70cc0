"""Linguistic classes of decoded tokens: function word, punctuation, number or content.

SENT's KL acts on the bottom-80 % entropy tokens (reference/paper.md §1.4). Many of those are function words and
punctuation, whose certainty says nothing about reasoning. :func:`classify_token` classes a token as

* ``function``: a closed-class word (articles/determiners, pronouns, prepositions, conjunctions, auxiliary and
  modal verbs, particles, common discourse adverbs);
* ``punctuation``: punctuation, symbols, whitespace (an empty token too: it is layout);
* ``number``: digits (``42``, ``-7``, ``3.14``, ``2nd``, ``5%``) and number words up to "billion";
* ``content``: everything else (open-class words, sub-word pieces, LaTeX commands, variable names).

:func:`content_mask` is the trainer's default ``token_filter_fn`` (``"sent.tokens:content_mask"``): with
``token_filter="content"`` the non-content tokens leave the low-entropy set. ``sent_analysis.linguistic_filter`` reports the
share of each class in the token sets of a run.

Word lists: English closed classes written out below, in the spirit of the closed-class lists of standard stop-word
lists; number words are the cardinals/ordinals up to "billion". Other languages plug in through :data:`LANGUAGES`
(:func:`register_language`).

Caveats: a sub-word piece ("ing", "ation") is classed as content because its word is unknown; a decoded token that
carries two words is classed by its whole text; the classes are lexical, not syntactic ("that" is always a function
word). BPE markers (``Ġ``, ``▁``, ``Ċ``) and surrounding whitespace are stripped first.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field


CATEGORIES = ("function", "punctuation", "number", "content")

_EN_FUNCTION = """
a an the this that these those some any each every either neither no another such what which whose
whatever whichever both all half several many much more most few fewer less least other own same
i me my mine myself you your yours yourself yourselves he him his himself she her hers herself it its
itself we us our ours ourselves they them their theirs themselves one ones oneself who whom whoever
someone somebody something anyone anybody anything everyone everybody everything nobody nothing none
about above across after against along amid among around as at before behind below beneath beside
besides between beyond but by despite down during except for from in inside into like near of off on
onto out outside over past per plus since than through throughout till to toward towards under
underneath unlike until up upon via with within without minus times
and or nor so yet if then else because although though while whereas unless whether once lest whenever
wherever when where why how
be am is are was were been being have has had having do does did doing done will would shall should
can could may might must ought need dare let lets
not n't 's 're 've 'd 'll 'm to there here also just only even very too quite rather again already
still ever never always often now thus hence therefore however moreover furthermore indeed instead
otherwise meanwhile else namely e.g. i.e. etc ok okay yes oh well
"""
_EN_NUMBERS = """
zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen
seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred thousand
million billion first second third fourth fifth sixth seventh eighth ninth tenth half twice thrice
"""
_NUMBER_RE = re.compile(r"^[+\-−]?(\d+([.,]\d+)*|\.\d+)(st|nd|rd|th|%)?$")
# Byte-level BPE (GPT-2 / Qwen) and SentencePiece markers, mapped to the whitespace they stand for.
_BPE_MARKERS = {"Ġ": " ", "▁": " ", "Ċ": "\n", "ĉ": "\t", "č": "\r"}


@dataclass(frozen=True)
class Language:
    """A language's closed-class word lists (lower-case)."""

    name: str
    function_words: frozenset = field(default_factory=frozenset)
    number_words: frozenset = field(default_factory=frozenset)


LANGUAGES: dict[str, Language] = {
    "en": Language(
        "English",
        frozenset(_EN_FUNCTION.split()) - frozenset(["one"]),  # "one" is counted as a number
        frozenset(_EN_NUMBERS.split()),
    )
}


def register_language(code: str, language: Language) -> None:
    """Add or replace a language in :data:`LANGUAGES` (e.g. ``register_language("de", Language(...))``)."""
    if not isinstance(language, Language):
        raise ValueError(f"language must be a sent.tokens.Language, got {type(language).__name__}")
    LANGUAGES[code] = language


def normalize_token(token: str) -> str:
    """Decode BPE whitespace markers and strip surrounding whitespace ("Ġthe" -> "the", "▁The" -> "The")."""
    for marker, ws in _BPE_MARKERS.items():
        token = token.replace(marker, ws)
    return token.strip()


def classify_token(token: str, language: str = "en") -> str:
    """Class of one decoded token: ``function``, ``punctuation``, ``number`` or ``content``.

    Empty / whitespace-only tokens count as punctuation (they are layout). Case-insensitive.
    """
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; registered: {sorted(LANGUAGES)} (see register_language)")
    if not isinstance(token, str):
        raise ValueError(f"token must be a str, got {type(token).__name__}")
    lang = LANGUAGES[language]
    text = normalize_token(token)
    if not text or all(unicodedata.category(ch)[0] in "PSZ" for ch in text):
        return "punctuation"
    low = text.lower()
    if _NUMBER_RE.match(text) or low in lang.number_words:
        return "number"
    if low in lang.function_words:
        return "function"
    return "content"


def is_content_token(token: str) -> bool:
    """True unless ``token`` is a function word, punctuation/whitespace or a number (English lists).

    The trainer's ``token_filter="content"`` keeps these tokens in the low-entropy set (via :func:`content_mask`).
    """
    return classify_token(token) == "content"


def content_mask(tokens: list[str]) -> list[bool]:
    """:func:`is_content_token` over a list of decoded tokens: the trainer's default ``token_filter_fn``."""
    return [is_content_token(t) for t in tokens]


# ------------------------------------------------------------------------------------------------ special tokens

#: Special tokens and padding as common tokenizers spell them, for when the tokenizer itself is not at hand:
#: ``<pad>``, ``<s>``, ``</s>``, ``<unk>``, ``<eos>``, ``<bos>``, ``<mask>``, ``<|...|>`` (Qwen, Llama 3, GPT-2's
#: ``<|endoftext|>``), ``<｜...｜>`` (DeepSeek), ``[PAD]`` / ``[CLS]`` / ``[SEP]`` / ``[MASK]`` / ``[UNK]`` (BERT), and
#: ``<extra_id_N>``. A tokenizer's own list (``all_special_tokens`` / ``all_special_ids``) is passed to
#: :func:`special_token_mask` when known and takes precedence.
SPECIAL_TOKEN_RE = re.compile(
    r"^(<\|[^|]*\|>|<｜[^｜]*｜>|</?s>|<(pad|unk|eos|bos|mask|sep|cls|eot|eom)>|\[(PAD|CLS|SEP|MASK|UNK)\]"
    r"|<extra_id_\d+>|<\|?(im_start|im_end|endoftext|end_of_text|begin_of_text|eot_id)\|?>)$",
    re.IGNORECASE,
)


def is_special_token(token: str, special_tokens: frozenset | set | None = None) -> bool:
    """True for a special or padding token: in ``special_tokens`` (a tokenizer's ``all_special_tokens``) or, as a
    fallback, spelled like one (:data:`SPECIAL_TOKEN_RE`). Surrounding whitespace is ignored."""
    text = token.strip() if isinstance(token, str) else ""
    if special_tokens and text in special_tokens:
        return True
    return bool(text) and bool(SPECIAL_TOKEN_RE.match(text))


def special_token_mask(tokens: list[str], token_ids: list[int] | None = None, special_ids=None,
                       special_tokens=None) -> list[bool]:
    """Per token: True where it is a special or padding token (by id when ``special_ids`` and ``token_ids`` are
    given, else by its text, :func:`is_special_token`). Word clouds and token heat maps leave these out."""
    ids = set(int(i) for i in special_ids) if special_ids is not None else None
    specials = frozenset(special_tokens) if special_tokens else None
    out = []
    for i, tok in enumerate(tokens):
        by_id = ids is not None and token_ids is not None and int(token_ids[i]) in ids
        out.append(bool(by_id or is_special_token(tok, specials)))
    return out
