"""Errors raised by the models room; each message names the offending key or size and the fix."""


class ModelsError(ValueError):
    """Base class for bad model / checkpoint / parallelism input."""


class UnsupportedModelError(ModelsError):
    """The HF architecture or one of its config options has no mapping."""


class ParallelismError(ModelsError):
    """TP/PP sizes or num_layer_list do not fit the model."""


class CheckpointError(ModelsError):
    """A checkpoint on disk is missing, truncated or inconsistent."""
