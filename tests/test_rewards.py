import pytest

from sent.rewards import accuracy_reward, format_reward, make_accuracy_reward


def test_accuracy_reward_string_and_conversational():
    gold = ["2", "2", r"\frac{"]
    strings = [r"\boxed{2}", r"\boxed{3}", r"\boxed{1}"]
    assert accuracy_reward(strings, answer=gold) == [1.0, 0.0, None]
    conv = [[{"role": "assistant", "content": s}] for s in strings]
    assert accuracy_reward(prompts=["q"] * 3, completions=conv, completion_ids=None, answer=gold) == [1.0, 0.0, None]
    assert accuracy_reward.__name__ == "accuracy_reward"


def test_plus_minus_one_factory_and_domain_column():
    reward = make_accuracy_reward(1.0, -1.0)
    assert reward.__name__ == "accuracy_reward"  # TRL logs rewards/accuracy_reward
    out = reward([r"\boxed{Yes}", r"\boxed{0.5}"], answer=["yes", "1/2"], domain=["relations", "math"])
    assert out == [1.0, 1.0]
    assert reward([r"\boxed{no}"], answer=["yes"], domain=["relations"]) == [-1.0]
    with pytest.raises(ValueError, match="answer"):
        reward([r"\boxed{1}"], answer=["1", "2"])


def test_format_reward():
    assert format_reward([r"\boxed{1}", "1", [{"role": "assistant", "content": r"\fbox{2}"}]]) == [1.0, 0.0, 1.0]
