import dataclasses

import pytest

from mindspeed_rl.algorithms import LossConfigError, PolicyLossConfig, field_help


@pytest.mark.parametrize("cls", [PolicyLossConfig])
def test_defaults_are_valid_and_every_field_is_documented(cls):
    cls()  # defaults validate
    for f in dataclasses.fields(cls):
        assert f.default is not dataclasses.MISSING, f.name
        assert field_help(cls)[f.name].strip(), f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize("cls,kwargs,match", [
    (PolicyLossConfig, {"clip_ratio_c": 1.0}, r"^clip_ratio_c=1.0: .*> 1"),
    (PolicyLossConfig, {"clip_ratio_low": 1.0}, r"^clip_ratio_low"),
    (PolicyLossConfig, {"clip_ratio": -0.1}, r"^clip_ratio=-0.1"),
    (PolicyLossConfig, {"loss_agg_mode": "mean"}, r"^loss_agg_mode='mean'.*token-mean"),
    (PolicyLossConfig, {"policy_loss": "ppo2"}, r"^policy_loss.*vanilla"),
    (PolicyLossConfig, {"kl_loss_type": "k4"}, r"^kl_loss_type.*low_var_kl"),
    (PolicyLossConfig, {"loss_norm_length": 0}, r"^loss_norm_length"),
])
def test_bad_values_name_the_key(cls, kwargs, match):
    with pytest.raises(LossConfigError, match=match) as info:
        cls(**kwargs)
    assert info.value.field in kwargs  # the config room maps the field to its rl_config key


def test_clip_higher_and_dual_clip_config():
    cfg = PolicyLossConfig(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, loss_agg_mode="token-mean")
    assert cfg.clip_ratio_high == 0.28 and cfg.clip_ratio_c == 3.0
