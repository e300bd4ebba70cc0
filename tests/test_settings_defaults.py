"""One declaration per loss knob: ``LossSettings`` holds each knob's default, help and range check; ``SENTConfig``
takes its loss fields from it (or from TRL's field named by ``metadata["trl_field"]``) and validates with it."""

from dataclasses import MISSING, fields

import pytest
from transformers import HfArgumentParser
from trl import GRPOConfig

from sent.losses import LossSettings
from sent.trainer_config import SENTConfig


BASE = dict(output_dir="unused", use_cpu=True, report_to=[])
CONFIG_FIELDS = {f.name: f for f in fields(SENTConfig)}
TRL_FIELDS = {f.name: f for f in fields(GRPOConfig)}


def _config_name(f):
    return f.metadata.get("trl_field", f.name)


def _declared_here(f):
    """SENTConfig takes this field from LossSettings' declaration (not from TRL's)."""
    return "trl_field" not in f.metadata or f.metadata.get("override_trl", False)


@pytest.fixture(scope="module")
def config():
    return SENTConfig(**BASE)


def test_every_loss_setting_has_help_and_a_sent_config_field():
    for f in fields(LossSettings):
        assert f.metadata.get("help"), f"LossSettings.{f.name} has no help text"
        assert f.default is not MISSING, f"LossSettings.{f.name} has no default"
        assert _config_name(f) in CONFIG_FIELDS, f"LossSettings.{f.name} is not reachable from SENTConfig"
        if "trl_field" in f.metadata:
            assert f.metadata["trl_field"] in TRL_FIELDS, f"{f.metadata['trl_field']} is not a GRPOConfig field"


def test_sent_config_does_not_redeclare_the_knobs():
    """SENTConfig's own class body declares no loss knob: they come from LossSettings, once."""
    own = set(SENTConfig.__dict__.get("__annotations__", {}))
    assert not own & {_config_name(f) for f in fields(LossSettings)}


@pytest.mark.parametrize("name", [f.name for f in fields(LossSettings) if _declared_here(f)])
def test_sent_config_field_has_the_loss_settings_default_and_help(name):
    ours = LossSettings.__dataclass_fields__[name]
    theirs = CONFIG_FIELDS[_config_name(ours)]
    # the annotation, not Field.type: HfArgumentParser rewrites Field.type of Optional fields in place
    declared = next(c.__annotations__[theirs.name] for c in SENTConfig.__mro__
                    if theirs.name in c.__dict__.get("__annotations__", {}))
    assert theirs.default == ours.default and str(declared) == str(LossSettings.__annotations__[name])
    assert theirs.metadata["help"] == ours.metadata["help"].replace("%", "%%")  # argparse %-formats help


def test_default_config_gives_the_default_loss_settings(config):
    """Also covers the knobs read from TRL's own fields (epsilon, epsilon_high=None -> epsilon, beta, entropy_coef)."""
    assert config.loss_settings() == LossSettings()


def test_config_values_reach_the_loss_settings():
    changed = dict(low_entropy_ratio=0.5, beta_low=0.01, beta_high=0.04, release_int_mask_indexing=True,
                   epsilon=0.3, epsilon_high=0.28, beta=0.001, use_bias_correction_kl=True)
    s = SENTConfig(**BASE, **changed).loss_settings()
    assert (s.low_entropy_ratio, s.beta_low, s.beta_high, s.release_int_mask_indexing) == (0.5, 0.01, 0.04, True)
    assert (s.epsilon_low, s.epsilon_high, s.beta, s.kl_bias_correction) == (0.3, 0.28, 0.001, True)
    assert SENTConfig(**BASE, epsilon=0.3).loss_settings().epsilon_high == 0.3  # TRL: None means epsilon


@pytest.mark.parametrize(("settings", "config"), [
    ({"low_entropy_ratio": 1.5}, None),
    ({"beta_low": 0.3, "beta_high": 0.2}, None),  # beta_high < beta_low
    ({"high_cov_ratio": None}, None),  # neither high_cov_ratio nor high_cov_threshold
    ({"cov_center": "batch"}, None),
    ({"entropy_adv_kappa": 0.0}, None),
    ({"clip_cov_lb": 5.0, "clip_cov_ub": 1.0}, None),
    ({"release_kl_coef": float("nan")}, None),
    ({"beta": -0.1}, {"beta": -0.1}),
    ({"epsilon_low": 1.5}, {"epsilon": 1.5}),
])
def test_bad_value_refused_by_both_with_the_same_message(settings, config):
    with pytest.raises(ValueError) as direct:
        LossSettings(**settings)
    with pytest.raises(ValueError) as via_config:
        SENTConfig(**BASE, **(settings if config is None else config))
    assert str(via_config.value) == str(direct.value)
    if config is not None:  # a knob read from a TRL field: the message names that field too
        assert next(iter(config)) in str(direct.value)


def test_train_help_shows_the_knobs_help_and_defaults():
    text = " ".join(HfArgumentParser(SENTConfig).format_help().split())
    assert "(bottom 80%, reference/paper.md" in text and "%%" not in text
    assert "(default: 0.8)" in text and "(default: 0.0002)" in text
    assert "False: no token-level KL on any token, neither tier" in text
