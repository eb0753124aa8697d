"""A reward that a random tiny model earns now and then (about 1 response in 8), so that some
prompt groups are constant and some are not: dynamic sampling has to generate extra batches.
Used as ``rl_config.verifier_function=['tests.trainer.sparse_reward:length_multiple_of_8']``."""


def length_multiple_of_8(response, gold, extra=None):
    return 1.0 if len(response) % 8 == 0 else 0.0
