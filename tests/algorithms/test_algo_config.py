import dataclasses

import pytest

from mindspeed_rl.algorithms import AlgorithmConfig, PolicyLossConfig, field_help


@pytest.mark.parametrize("cls", [AlgorithmConfig, PolicyLossConfig])
def test_defaults_are_valid_and_every_field_is_documented(cls):
    cls()  # defaults validate
    for f in dataclasses.fields(cls):
        assert f.default is not dataclasses.MISSING, f.name
        assert field_help(cls)[f.name].strip(), f"{cls.__name__}.{f.name} has no help"


@pytest.mark.parametrize("cls,kwargs,match", [
    (PolicyLossConfig, {"clip_ratio_c": 1.0}, r"actor_config.clip_ratio_c=1.0: .*> 1"),
    (PolicyLossConfig, {"clip_ratio_low": 1.0}, r"actor_config.clip_ratio_low"),
    (PolicyLossConfig, {"clip_ratio": -0.1}, r"actor_config.clip_ratio=-0.1"),
    (PolicyLossConfig, {"loss_agg_mode": "mean"}, r"actor_config.loss_agg_mode='mean'.*token-mean"),
    (PolicyLossConfig, {"policy_loss": "ppo2"}, r"actor_config.policy_loss.*vanilla"),
    (PolicyLossConfig, {"kl_loss_type": "k4"}, r"actor_config.kl_loss_type.*low_var_kl"),
    (PolicyLossConfig, {"loss_norm_length": 0}, r"actor_config.loss_norm_length"),
    (AlgorithmConfig, {"adv_estimator": "gae"}, r"rl_config.adv_estimator.*grpo"),
    (AlgorithmConfig, {"kl_penalty": "x"}, r"rl_config.kl_penalty"),
    (AlgorithmConfig, {"adv_epsilon": 0}, r"rl_config.adv_epsilon"),
])
def test_bad_values_name_the_key(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_clip_higher_and_dual_clip_config():
    cfg = PolicyLossConfig(clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0, loss_agg_mode="token-mean")
    assert cfg.clip_ratio_high == 0.28 and cfg.clip_ratio_c == 3.0
