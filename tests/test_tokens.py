"""sent.tokens: linguistic classes of literal tokens, the trainer's default content mask, the language registry."""

import pytest

from sent.tokens import LANGUAGES, Language, classify_token, content_mask, is_content_token, register_language


@pytest.mark.parametrize(
    "token, expected",
    [
        ("the", "function"), ("Ġthe", "function"), ("▁The", "function"), (" of", "function"),
        ("Therefore", "function"), ("is", "function"), ("n't", "function"),
        (",", "punctuation"), (".", "punctuation"), ("Ċ", "punctuation"), ("  ", "punctuation"),
        ("", "punctuation"), ("=", "punctuation"), ("$", "punctuation"),
        ("42", "number"), (" 3.14", "number"), ("-7", "number"), ("twelve", "number"), ("2nd", "number"),
        ("cat", "content"), ("Ġcompute", "content"), ("ing", "content"), ("\\frac", "content"), ("x", "content"),
    ],
)
def test_classify_literal_tokens(token, expected):
    assert classify_token(token) == expected


def test_is_content_token_and_mask():
    assert is_content_token("Ġsum") and not is_content_token("Ġand") and not is_content_token("?")
    assert content_mask(["Ġthe", "Ġsum", "Ġis", "Ġ5", "."]) == [False, True, False, False, False]


def test_language_registry():
    register_language("xx", Language("test", frozenset({"le"}), frozenset({"un"})))
    try:
        assert classify_token("le", "xx") == "function" and classify_token("un", "xx") == "number"
        assert classify_token("the", "xx") == "content"
    finally:
        LANGUAGES.pop("xx")
    with pytest.raises(ValueError, match="unknown language"):
        classify_token("the", "zz")


def test_default_token_filter_fn_is_content_mask():
    import importlib

    from sent.trainer_config import SENTConfig

    module, _, name = SENTConfig.__dataclass_fields__["token_filter_fn"].default.partition(":")
    assert getattr(importlib.import_module(module), name) is content_mask  # the trainer imports it the same way
