"""Data room: chat templates, dataset handlers, the preprocessor, and the prompt dataset/sampler.

Light to import (no transformers, torch or megatron at import time)::

    from mindspeed_rl.data import load_template, PromptDataset, PromptSampler
    from mindspeed_rl.data.preprocess import PreprocessConfig, preprocess
"""
from .handlers import Handler, RowRejected, Sample, available_handlers, get_handler, register_handler
from .prompt_dataset import DatasetFormatError, PromptDataset, PromptItem
from .sampler import PromptSampler
from .templates import ChatTemplate, TemplateError, load_template, load_templates, stop_token_ids

__all__ = [
    "ChatTemplate", "TemplateError", "load_template", "load_templates", "stop_token_ids",
    "Handler", "RowRejected", "Sample", "available_handlers", "get_handler", "register_handler",
    "PromptDataset", "PromptItem", "DatasetFormatError", "PromptSampler",
]

