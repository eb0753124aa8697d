"""Worker start-up: place the actor, reference and reward groups and build their engines."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class Workers:
    """The groups the loop talks to (``ref`` is the actor ranks' own engine when colocated)."""

    actor: "ActorGroup"  # noqa: F821 - mindspeed_rl.workers.groups, imported when started
    ref: "ReferenceGroup"  # noqa: F821
    reward: "RewardGroup"  # noqa: F821
    critic: "CriticGroup | None" = None  # noqa: F821 - PPO (critic_config) only

    def shutdown(self) -> None:
        for group in (self.actor, self.ref, self.reward, self.critic):
            if group is not None:
                group.shutdown()


def start_workers(cfg, resource: str, total_optimizer_steps: int) -> Workers:
    """Start every group on Ray and build its engines (``build`` on every rank returns its
    ``EngineLayout``, which the group deals shards by)."""
    from mindspeed_rl.workers.actor_worker import ActorRolloutWorker
    from mindspeed_rl.workers.groups import ActorGroup, ReferenceGroup, RewardGroup
    from mindspeed_rl.workers.placement import DeviceRequest, plan_worker_groups
    from mindspeed_rl.workers.reference_worker import ReferenceWorker
    from mindspeed_rl.workers.reward_worker import RewardWorker
    from mindspeed_rl.workers.worker_group import WorkerGroup

    rl = cfg.rl_config
    cfg_dict = dataclasses.asdict(cfg)
    requests = {r.group: r for r in plan_worker_groups(cfg, resource)}
    actor_ranks = WorkerGroup(ActorRolloutWorker, requests["actor_rollout"], init_args=(cfg_dict, rl.colocate_actor_ref))
    ref_ranks = None
    if not rl.colocate_actor_ref:
        ref_ranks = WorkerGroup(ReferenceWorker, requests["reference"], init_args=(cfg_dict,))
    reward_ranks = WorkerGroup(
        RewardWorker,
        DeviceRequest("reward", 1, "CPU", cpus_per_rank=0),
        init_args=(rl.verifier_function, rl.verifier_weight, rl.verifier_num_workers, rl.verifier_timeout),
        init_distributed=False,
    )
    critic_ranks = None
    if cfg.critic_config is not None:
        from mindspeed_rl.workers.critic_worker import CriticWorker

        critic_ranks = WorkerGroup(CriticWorker, requests["critic"], init_args=(cfg_dict,))
    actor = ActorGroup.build(actor_ranks, total_optimizer_steps, with_reference=rl.colocate_actor_ref)
    ref = ReferenceGroup.build(ref_ranks) if ref_ranks is not None else actor.reference()
    critic = None
    if critic_ranks is not None:
        from mindspeed_rl.config.components import total_critic_steps
        from mindspeed_rl.workers.groups import CriticGroup

        critic = CriticGroup.build(critic_ranks, total_critic_steps(cfg))
    return Workers(actor, ref, RewardGroup(reward_ranks), critic)
