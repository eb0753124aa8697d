"""A rank function for test_real_checkpoint_check: a real engine checkpoint in the run layout."""


def save_world(rank, world_size, hf_dir, run_iter_dir):
    from mindspeed_rl.engine import MegatronEngine, MegatronEngineConfig

    engine = MegatronEngine(hf_dir, MegatronEngineConfig(micro_batch_size=2, params_dtype="fp32", lr=1e-3, seed=1,
                                                         use_distributed_optimizer=world_size > 1))
    engine.step = 3
    engine.save_checkpoint(f"{run_iter_dir}/actor")
    return engine.dp_size
