"""The single-controller GRPO loop."""


def run_grpo(cfg) -> int:
    """Run GRPO for ``cfg`` (a validated GRPOConfig)."""
    from mindspeed_rl.trainer.grpo import run

    return run(cfg)
