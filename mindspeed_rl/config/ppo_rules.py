"""Rules of PPO with a critic (``rl_config.advantage_estimator=gae`` + ``critic_config``), checked
by ``validate()`` with the other cross-field rules, each naming the key and the fix."""
from __future__ import annotations

from mindspeed_rl.config.errors import Problem


def check_ppo(cfg, out: list[Problem], check_layout) -> None:
    """``check_layout(name, worker, num_devices, cfg, out)``: validate's TP/PP/devices rule."""
    rl, critic, mt = cfg.rl_config, cfg.critic_config, cfg.megatron_training
    gae = rl.advantage_estimator == "gae"
    if gae and critic is None:
        out.append(Problem("critic_config", None, "rl_config.advantage_estimator=gae needs a critic (its values)",
                           "add a critic_config section (see configs/ppo_tiny_cpu.yaml), or choose another "
                           "advantage_estimator (grpo, dr_grpo, rloo)"))
    if critic is not None and not gae:
        out.append(Problem("critic_config", "set", f"a critic is only used by rl_config.advantage_estimator=gae, "
                           f"the run has {rl.advantage_estimator!r}",
                           "set rl_config.advantage_estimator=gae, or remove the critic_config section"))
    for key in ("gamma", "lam"):
        v = getattr(rl, key)
        if not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            out.append(Problem(f"rl_config.{key}", v, "must be in [0, 1]", "use 1.0 (Open-Reasoner-Zero) or e.g. 0.95"))
    # equal to train_iters is allowed: a run may stop after its warm-up and resume with more iterations
    if rl.critic_warmup < 0 or (critic is not None and rl.critic_warmup > mt.train_iters):
        out.append(Problem("rl_config.critic_warmup", rl.critic_warmup,
                           f"must be in [0, megatron_training.train_iters ({mt.train_iters})]: during it only "
                           "the critic trains", f"use 0, or at most {mt.train_iters}"))
    if critic is None:
        return
    devices = rl.critic_resource.num_devices
    if devices < 1:
        out.append(Problem("rl_config.critic_resource.num_devices", devices, "must be >= 1", "set it to the critic's devices"))
        return
    before = len(out)
    check_layout("critic_config", critic, devices, cfg, out)
    if len(out) > before:
        return
    dp, mbs = cfg.critic_data_parallel_size, critic.micro_batch_size
    experiences = mt.global_batch_size * rl.n_samples_per_prompt
    mini = critic.mini_batch_size or mt.global_batch_size
    if mt.global_batch_size % mini:
        out.append(Problem("critic_config.mini_batch_size", critic.mini_batch_size,
                           f"must divide megatron_training.global_batch_size ({mt.global_batch_size})",
                           "use 0 (the whole batch) or a divisor"))
    elif (mini * rl.n_samples_per_prompt) % (dp * mbs) or experiences % (dp * mbs):
        out.append(Problem("critic_config.micro_batch_size", mbs,
                           f"mini_batch_size x n_samples_per_prompt ({mini * rl.n_samples_per_prompt}) must be "
                           f"divisible by critic DP ({dp}) x micro_batch_size ({mbs})",
                           f"make it a multiple of {dp * mbs}"))
    if critic.epochs < 1:
        out.append(Problem("critic_config.epochs", critic.epochs, "must be >= 1", "use 1"))
