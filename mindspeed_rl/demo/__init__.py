"""Assets for the CPU demo: a synthetic arithmetic task, a tiny BPE tokenizer with Qwen's chat
special tokens, and a tiny Qwen2-architecture model, so the whole GRPO pipeline (template,
preprocessor, converter, Megatron engine, Ray workers, scorer) runs on a laptop in minutes."""
