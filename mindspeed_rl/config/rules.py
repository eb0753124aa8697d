"""Range, sign and relation rules of the loss, optimiser and schedule settings, named by the keys
the user writes (``rl_config.kl_coef``, not the engine's ``kl_loss_coef``). Checked by
``validate()``, so a bad value is refused before Ray, model load or a rollout."""
from __future__ import annotations

import math

from mindspeed_rl.config.errors import Problem


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_loss(rl, out: list[Problem]) -> None:
    r = "rl_config"
    if not (_number(rl.clip_ratio) and 0 < rl.clip_ratio < 1):
        out.append(Problem(f"{r}.clip_ratio", rl.clip_ratio, "the PPO clip range must be in (0, 1): the ratio is "
                           "clipped to [1 - clip_ratio, 1 + clip_ratio]", "use 0.2"))
    if rl.clip_ratio_low is not None and not (_number(rl.clip_ratio_low) and 0 < rl.clip_ratio_low < 1):
        out.append(Problem(f"{r}.clip_ratio_low", rl.clip_ratio_low, "must be in (0, 1) so that 1 - clip_ratio_low > 0",
                           "use 0.2, or null to take clip_ratio"))
    if rl.clip_ratio_high is not None and not (_number(rl.clip_ratio_high) and rl.clip_ratio_high > 0):
        out.append(Problem(f"{r}.clip_ratio_high", rl.clip_ratio_high, "must be > 0",
                           "use 0.28 (DAPO clip-higher), or null to take clip_ratio"))
    if rl.clip_ratio_c is not None and not (_number(rl.clip_ratio_c) and rl.clip_ratio_c > 1):
        out.append(Problem(f"{r}.clip_ratio_c", rl.clip_ratio_c,
                           "the dual-clip bound must be > 1 (it caps the loss of negative advantages at c x A)",
                           "use 3.0, or null to turn dual clip off"))
    if not (_number(rl.kl_coef) and rl.kl_coef >= 0):
        out.append(Problem(f"{r}.kl_coef", rl.kl_coef, "must be >= 0 (a negative coefficient rewards drifting from "
                           "the reference)", "use 0.001, or 0 to drop the KL term"))
    if not (_number(rl.entropy_coeff) and rl.entropy_coeff >= 0):
        out.append(Problem(f"{r}.entropy_coeff", rl.entropy_coeff, "must be >= 0 (it is a bonus: loss -= coeff x entropy)",
                           "use 0 (off) or a small positive value such as 0.001"))
    if not (_number(rl.norm_adv_eps) and rl.norm_adv_eps > 0):
        out.append(Problem(f"{r}.norm_adv_eps", rl.norm_adv_eps, "must be > 0 (it keeps the group-std division finite)",
                           "use 1e-6"))
    for i, w in enumerate(rl.verifier_weight):
        if not _number(w):
            out.append(Problem(f"{r}.verifier_weight[{i}]", w, "must be a finite number", "use 1.0"))
    if not (_number(rl.verifier_timeout) and rl.verifier_timeout > 0):
        out.append(Problem(f"{r}.verifier_timeout", rl.verifier_timeout, "must be > 0 seconds", "use 10"))
    if isinstance(rl.verifier_num_workers, int) and rl.verifier_num_workers < 0:
        out.append(Problem(f"{r}.verifier_num_workers", rl.verifier_num_workers, "must be >= 0", "use 1 or more"))


def check_optimiser(cfg, out: list[Problem], k: str = "actor_config") -> None:
    """The optimiser and schedule keys of a trained section (the actor; the critic when set)."""
    a, mt = getattr(cfg, k), cfg.megatron_training
    if not (_number(a.lr) and a.lr > 0):
        out.append(Problem(f"{k}.lr", a.lr, "the learning rate must be > 0", "use e.g. 1e-6"))
    if not (_number(a.min_lr) and a.min_lr >= 0):
        out.append(Problem(f"{k}.min_lr", a.min_lr, "must be >= 0", "use 0"))
    elif _number(a.lr) and a.lr > 0 and a.min_lr > a.lr:
        out.append(Problem(f"{k}.min_lr", a.min_lr, f"must not exceed {k}.lr ({a.lr:g}): the schedule decays "
                           "from lr down to min_lr", f"use a value <= {a.lr:g}, e.g. 0"))
    if not (_number(a.lr_warmup_fraction) and 0 <= a.lr_warmup_fraction < 1):
        out.append(Problem(f"{k}.lr_warmup_fraction", a.lr_warmup_fraction, "must be in [0, 1)",
                           "use 0 (no warm-up) or e.g. 0.05"))
    elif a.lr_warmup_fraction > 0 and isinstance(mt.train_iters, int) and mt.train_iters >= 1 and a.epochs >= 1:
        mini = a.mini_batch_size or mt.global_batch_size
        steps = mt.train_iters * max(mt.global_batch_size // max(mini, 1), 1) * a.epochs
        if round(a.lr_warmup_fraction * steps) == 0:
            out.append(Problem(f"{k}.lr_warmup_fraction", a.lr_warmup_fraction,
                               f"gives 0 warm-up steps: the run makes {steps} optimizer steps "
                               "(megatron_training.train_iters x mini-batches x epochs)",
                               f"use at least {0.5 / steps:.3g}, or 0 for no warm-up"))
    if not (_number(a.weight_decay) and a.weight_decay >= 0):
        out.append(Problem(f"{k}.weight_decay", a.weight_decay, "must be >= 0", "use 0 or e.g. 0.01"))
    for name in ("adam_beta1", "adam_beta2"):
        v = getattr(a, name)
        if not (_number(v) and 0 <= v < 1):
            out.append(Problem(f"{k}.{name}", v, "must be in [0, 1)", "use 0.9 (beta1) / 0.999 (beta2)"))
    if not (_number(a.adam_eps) and a.adam_eps > 0):
        out.append(Problem(f"{k}.adam_eps", a.adam_eps, "must be > 0", "use 1e-8"))
    if not (_number(a.clip_grad) and a.clip_grad >= 0):
        out.append(Problem(f"{k}.clip_grad", a.clip_grad, "must be >= 0 (0 turns gradient clipping off)", "use 1.0"))
    if a.epochs < 1:
        out.append(Problem(f"{k}.epochs", a.epochs, "must be >= 1", "use 1"))
    if a.mini_batch_size < 0:
        out.append(Problem(f"{k}.mini_batch_size", a.mini_batch_size, "must be >= 0 (0: the whole global batch)", "use 0"))


def check_schedule(cfg, out: list[Problem]) -> None:
    mt, rl = cfg.megatron_training, cfg.rl_config
    s = cfg.generate_config.sampling_config
    if mt.train_iters < 1:
        out.append(Problem("megatron_training.train_iters", mt.train_iters, "must be >= 1", "set the number of GRPO iterations"))
    if mt.save_interval < 0:
        out.append(Problem("megatron_training.save_interval", mt.save_interval, "must be >= 0 (0: save at the end)", "use 0"))
    if mt.log_interval < 1:
        out.append(Problem("megatron_training.log_interval", mt.log_interval, "must be >= 1", "use 1"))
    if mt.max_prompt_length < 1:
        out.append(Problem("megatron_training.max_prompt_length", mt.max_prompt_length, "must be >= 1",
                           "use the max_prompt_length the dataset was preprocessed with"))
    if s.max_tokens < 1:
        out.append(Problem("generate_config.sampling_config.max_tokens", s.max_tokens, "must be >= 1", "use e.g. 512"))
    for key in ("test_freq", "save_samples_interval"):
        if getattr(rl, key) < 0:
            out.append(Problem(f"rl_config.{key}", getattr(rl, key), "must be >= 0 (0: off)", "use 0"))


def check_training_rules(cfg, out: list[Problem]) -> None:
    check_loss(cfg.rl_config, out)
    check_optimiser(cfg, out)
    if getattr(cfg, "critic_config", None) is not None:
        check_optimiser(cfg, out, "critic_config")
    check_schedule(cfg, out)
