"""The GRPO run config: typed sections, every field defaulted and documented.

Section names follow MindSpeed-RL (``megatron_training``, ``actor_config``, ``ref_config``,
``rl_config``, ``generate_config`` with ``sampling_config``) so its users can carry their YAML
over (``mindspeed_compat`` reads its files as published); ``model`` points at the model, whose
``config.json`` gives the architecture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from mindspeed_rl.config.structured import option


@dataclass
class ModelConfig:
    """The policy's model. The architecture is read from ``<hf_config_dir>/config.json``
    (``mindspeed_rl.config.architecture``); the architecture keys below are only the stand-in for
    planning and validating a run whose model files are not at hand (``--dry-run`` on a laptop).
    Defaults: the tiny CPU demo model (tools/demo/prepare_tiny_cpu.py)."""

    hf_config_dir: str = option("", "HF model directory with config.json (empty: megatron_training.tokenizer_name_or_path)")
    make_vocab_size_divisible_by: int = option(128, "Pad the Megatron vocab to a multiple of this times TP")
    hidden_size: int = option(128, "Hidden size (from config.json)")
    num_layers: int = option(2, "Number of transformer layers (config.json num_hidden_layers)")
    num_attention_heads: int = option(4, "Number of query heads (from config.json)")
    num_query_groups: int = option(2, "Number of key/value heads (config.json num_key_value_heads)")
    ffn_hidden_size: int = option(256, "MLP intermediate size (config.json intermediate_size)")
    vocab_size: int = option(512, "Vocabulary rows in the embedding (from config.json)")
    max_position_embeddings: int = option(512, "Longest sequence the positional encoding supports (from config.json)")
    rope_theta: float = option(10000.0, "RoPE base (from config.json)")
    rms_norm_eps: float = option(1e-6, "RMSNorm epsilon (from config.json)")
    tie_word_embeddings: bool = option(True, "Share input embedding and output layer weights (from config.json)")
    add_qkv_bias: bool = option(True, "Bias on the QKV projection (Qwen2: true; config.json attention_bias)")


@dataclass
class MegatronTrainingConfig:
    """Run-wide training settings (MindSpeed-RL's ``megatron_training``)."""

    tokenizer_name_or_path: str = option("", "HF tokenizer directory (local path; the hub is not contacted)")
    data_path: str = option("", "Prefix of the preprocessed prompt dataset (cli/preprocess_data.py output)")
    seed: int = option(1234, "Global random seed")
    global_batch_size: int = option(8, "Prompts per GRPO iteration (each gets n_samples_per_prompt responses)")
    train_iters: int = option(20, "Number of GRPO iterations")
    seq_length: int = option(1024, "Longest prompt + response the training engine handles")
    max_prompt_length: int = option(512, "Longest prompt in tokens (longer prompts were rejected by preprocessing)")
    save: str = option("", "Directory for run checkpoints (empty: no checkpoints)")
    save_interval: int = option(0, "Checkpoint every N iterations (0: only at the end when save is set)")
    load: str = option("", "Run checkpoint directory to resume from (empty: start fresh)")
    resume_override: bool = option(False, "Resume although keys that change the run differ from the checkpoint's config (logged)")
    resume_fallback: bool = option(False, "When the newest run checkpoint is damaged, resume from the newest intact one")
    log_dir: str = option("runs", "Directory for metrics JSONL, TensorBoard, samples and curves")
    log_interval: int = option(1, "Print the console line every N iterations (the JSONL / TensorBoard / wandb get every one)")
    wandb_project: str = option("", "Also log metrics to this wandb project (empty: off; needs `pip install wandb`)")
    # MindSpeed (Ascend) feature flags: written into sys.argv before mindspeed.megatron_adaptor is imported
    use_flash_attn: bool = option(False, "Ascend/MindSpeed: fused flash attention (--use-flash-attn)")
    use_fused_rmsnorm: bool = option(False, "Ascend/MindSpeed: fused RMSNorm kernel (--use-fused-rmsnorm)")
    use_fused_swiglu: bool = option(False, "Ascend/MindSpeed: fused SwiGLU kernel (--use-fused-swiglu)")
    use_fused_rotary_pos_emb: bool = option(False, "Ascend/MindSpeed: fused RoPE kernel (--use-fused-rotary-pos-emb)")


@dataclass
class WorkerConfig:
    """A Megatron worker group (MindSpeed-RL's ``actor_config`` / ``ref_config``)."""

    tensor_model_parallel_size: int = option(1, "Tensor-parallel size")
    pipeline_model_parallel_size: int = option(1, "Pipeline-parallel size")
    num_layer_list: Optional[list] = option(None, "Layers per pipeline stage, e.g. [15, 17]; empty: even split")
    micro_batch_size: int = option(1, "Sequences per micro-batch (forward and update)")
    max_tokens_per_micro_batch: int = option(
        0, "Dynamic batch size for the update: micro-batches cut by this budget of padded tokens "
           "(rows x longest row), each padded only to its own longest row; 0: micro_batch_size rows")
    log_prob_max_tokens_per_micro_batch: int = option(
        0, "The same token budget for the forward-only log-prob passes (old and reference log-probs); 0: off")
    mini_batch_size: int = option(0, "Prompts per optimizer step (0: the whole global batch, one step)")
    epochs: int = option(1, "Passes over the iteration's experience per GRPO iteration")
    lr: float = option(1e-6, "Peak learning rate (actor)")
    min_lr: float = option(0.0, "Final learning rate of the decay")
    lr_decay_style: Literal["constant", "linear", "cosine"] = option("constant", "Learning-rate schedule")
    lr_warmup_fraction: float = option(0.0, "Fraction of optimizer steps spent warming up")
    weight_decay: float = option(0.0, "AdamW weight decay")
    adam_beta1: float = option(0.9, "Adam beta1")
    adam_beta2: float = option(0.999, "Adam beta2")
    adam_eps: float = option(1e-8, "Adam epsilon")
    clip_grad: float = option(1.0, "Clip the global gradient norm to this (0: off)")
    params_dtype: Literal["fp32", "bf16", "fp16"] = option("bf16", "Parameter / compute dtype")
    use_distributed_optimizer: bool = option(True, "Shard optimizer state over data-parallel ranks (ZeRO-1)")
    recompute_activations: bool = option(False, "Recompute activations in backward (shorthand for recompute_granularity=full)")
    # kernels (engine.kernels): empty fusions take the platform's default (CPU: off; CUDA: on, TE's with TE)
    transformer_impl: Literal["auto", "local", "transformer_engine"] = option(
        "auto", "Layer spec: auto (Transformer Engine on CUDA when importable, else local), local, transformer_engine")
    attention_backend: Literal["auto", "flash", "fused", "unfused", "local", "sdpa"] = option(
        "auto", "megatron-core AttnBackend; flash/fused/unfused are TE's (CUDA); local spec: sdpa (torch's fused "
        "SDPA, the default off Ascend) or local (megatron's unfused DotProductAttention)")
    bias_activation_fusion: Optional[bool] = option(None, "Fused bias + SwiGLU (empty: platform default)")
    masked_softmax_fusion: Optional[bool] = option(None, "Fused scale-mask-softmax (empty: platform default)")
    bias_dropout_fusion: Optional[bool] = option(None, "Fused bias + dropout + add (empty: platform default)")
    apply_rope_fusion: Optional[bool] = option(None, "Fused RoPE, Transformer Engine's (empty: platform default)")
    persist_layer_norm: Optional[bool] = option(None, "Apex persistent layer norm (empty: off)")
    gradient_accumulation_fusion: Optional[bool] = option(
        None, "Fused weight-gradient accumulation into main_grad (TE or Apex; empty: on with TE)")
    recompute_granularity: Optional[Literal["full", "selective"]] = option(
        None, "Activation recompute: full or selective (empty: off, unless recompute_activations)")
    recompute_method: Optional[Literal["uniform", "block"]] = option(None, "Full recompute: uniform or block (empty: uniform)")
    recompute_num_layers: Optional[int] = option(None, "Full recompute: layers per unit (uniform) / recomputed (block); empty: 1")
    use_remove_padding: bool = option(
        False, "Packed (THD) sequences without padding tokens; needs Transformer Engine attention (CUDA)")
    sequence_parallel: bool = option(False, "Megatron sequence parallelism (needs TP > 1)")
    load: str = option("", "Megatron checkpoint to initialise from (tools/convert output)")
    offload_params: bool = option(False, "Park parameters in host memory while the rollout engine runs")
    offload_optimizer: bool = option(False, "Park optimizer state in host memory while the rollout engine runs")
    offload_grads: bool = option(False, "Park gradient buffers in host memory while the rollout engine runs")


@dataclass
class CriticWorkerConfig(WorkerConfig):
    """The critic's Megatron worker group (PPO, ``rl_config.advantage_estimator=gae``): the policy's
    architecture with a [hidden, 1] value head, its own TP/PP, optimiser and micro-batches."""

    cliprange_value: float = option(0.5, "Value clip: new values stay within old +- this in the value loss (verl: 0.5)")


@dataclass
class ResourceConfig:
    """Devices a worker group asks for (NPUs, GPUs or, on CPU, processes)."""

    num_devices: int = option(1, "Number of devices (ranks) for this worker group")


@dataclass
class RLConfig:
    """GRPO algorithm and placement (MindSpeed-RL's ``rl_config``)."""

    n_samples_per_prompt: int = option(8, "Responses sampled per prompt (GRPO group size, >= 2)")
    advantage_estimator: str = option(
        "grpo", "Advantage estimator by name (algorithms ADVANTAGE_ESTIMATORS): grpo (r - mean) / (std + eps), "
        "dr_grpo r - mean, rloo leave-one-out, or one you register")
    policy_loss: str = option(
        "vanilla", "Policy loss by name (algorithms POLICY_LOSSES): vanilla|clip (PPO/GRPO clip, clip-higher, "
        "dual clip), gspo (sequence-level ratio), or one you register")
    norm_adv_eps: float = option(1e-6, "Epsilon added to the group std")
    clip_ratio: float = option(0.2, "PPO clip range (symmetric, used when low/high unset)")
    clip_ratio_low: Optional[float] = option(None, "Lower clip range (DAPO clip-higher); default clip_ratio")
    clip_ratio_high: Optional[float] = option(None, "Upper clip range (DAPO clip-higher); default clip_ratio")
    clip_ratio_c: Optional[float] = option(None, "Dual-clip bound for negative advantages (e.g. 3.0); empty: off")
    kl_coef: float = option(0.001, "KL penalty coefficient")
    kl_estimator: str = option(
        "low_var_kl", "KL estimator by name (algorithms KL_ESTIMATORS): k1|kl, abs, k2|mse, k3|low_var_kl")
    use_kl_in_reward: bool = option(False, "Put the KL penalty in the reward instead of the loss")
    entropy_coeff: float = option(0.0, "Entropy bonus coefficient")
    loss_agg_mode: Literal[
        "token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"
    ] = option("token-mean", "How per-token losses are aggregated over the global batch")
    verifier_function: list = option(["acc", "strict_format"], "Reward functions by name (mindspeed_rl.rewards registry)")
    verifier_weight: list = option([1.0, 1.0], "Weights of the reward functions, same length")
    verifier_num_workers: int = option(2, "Scorer processes")
    verifier_timeout: float = option(10.0, "Hard per-sample scoring timeout in seconds")
    colocate_actor_ref: bool = option(True, "Reference shares the actor's devices (weights parked in host memory)")
    device_memory_gb: float = option(0.0, "Memory of one device in GB, for the --dry-run plan's verdict (0: not checked)")
    devices_per_node: int = option(0, "Devices per node, for the --dry-run placement (0: all on one node)")
    actor_resource: ResourceConfig = option(ResourceConfig, "Devices for the actor (and its rollout engines)")
    critic_resource: ResourceConfig = option(ResourceConfig, "Devices for the critic (PPO with critic_config)")
    # PPO with a critic (advantage_estimator=gae, critic_config set)
    gamma: float = option(1.0, "GAE discount (Open-Reasoner-Zero: 1.0)")
    lam: float = option(1.0, "GAE lambda (Open-Reasoner-Zero: 1.0)")
    whiten_advantages: bool = option(True, "GAE: normalise the advantages over the batch's valid tokens (verl, ORZ)")
    critic_warmup: int = option(0, "First N iterations train only the critic (the actor waits for useful values)")
    reference_resource: ResourceConfig = option(ResourceConfig, "Devices for the reference when not colocated")
    test_freq: int = option(0, "Validate every N iterations (0: off)")
    test_before_train: bool = option(False, "Validate once before the first iteration")
    val_datasets: list = option([], "Held-out sets for validation: EvalConfig mappings (dataset, n, sampling, ...)")
    save_samples_interval: int = option(5, "Save sample completions every N iterations")
    log_rollout_logprob_diff: bool = option(
        True, "On on-policy steps (1 mini-batch, 1 epoch) still recompute old log-probs, for rollout/logprob_diff "
        "(false skips that pass, which is then exactly redundant; never skipped with use_kl_in_reward)")
    # DAPO dynamic sampling (verl's algorithm.filter_groups, MindSpeed-RL's filter_groups_*)
    filter_groups_enable: bool = option(
        False, "Dynamic sampling: drop prompt groups whose filter metric is the same for all n samples and "
        "generate more prompt batches until global_batch_size prompts are kept")
    filter_groups_metric: str = option(
        "score", "Per-sample value a group must vary in: score (the total reward, after overlong shaping) "
        "or the name of one of verifier_function (its raw value, e.g. acc)")
    max_num_gen_batches: int = option(
        10, "Most prompt batches generated per iteration when filtering (<= 0: no limit); at the cap the "
        "iteration trains on the groups it kept, with a warning")
    # DAPO overlong reward shaping
    overlong_buffer_enable: bool = option(
        False, "Add DAPO's soft overlong penalty: linear from 0 to -overlong_penalty_factor over the last "
        "overlong_buffer_len tokens before sampling_config.max_tokens")
    overlong_buffer_len: int = option(4096, "Length of the overlong buffer in tokens (DAPO: 4096 of 20480)")
    overlong_penalty_factor: float = option(1.0, "Penalty at the length limit (DAPO: 1.0)")
    overlong_filter: bool = option(
        False, "Mask truncated responses (finish_reason length) out of the loss (DAPO's overlong filtering)")


@dataclass
class SamplingConfig:
    """Rollout sampling (MindSpeed-RL's ``generate_config.sampling_config``)."""

    max_tokens: int = option(512, "Most new tokens per response")
    temperature: float = option(1.0, "Sampling temperature")
    top_p: float = option(1.0, "Nucleus sampling mass")
    top_k: int = option(-1, "Top-k sampling (-1: off)")
    min_p: float = option(0.0, "Min-p sampling (0: off)")
    seed: Optional[int] = option(None, "Sampling seed (empty: derived from megatron_training.seed)")


@dataclass
class GenerateConfig:
    """Rollout engine (MindSpeed-RL's ``generate_config``)."""

    backend: Literal["vllm", "hf"] = option("vllm", "vllm on clusters, hf (transformers) on CPU / small runs")
    infer_tensor_parallel_size: int = option(1, "Tensor-parallel size of each inference replica")
    max_num_seqs: int = option(256, "Most sequences a vLLM engine batches at once")
    max_model_len: int = option(4096, "Longest prompt + response the rollout engine accepts")
    max_num_batched_tokens: int = option(8192, "vLLM scheduler token budget per step")
    gpu_memory_utilization: float = option(0.6, "Device memory fraction vLLM may take while awake (CPU: of host RAM)")
    kv_cache_memory_mb: Optional[int] = option(None, "vLLM: exact KV cache size in MiB (empty: from gpu_memory_utilization)")
    dtype: Literal["bfloat16", "float16", "float32"] = option("bfloat16", "Rollout dtype")
    enforce_eager: bool = option(False, "Disable graph capture in vLLM")
    enable_prefix_caching: bool = option(False, "vLLM prefix caching")
    weight_sync_bucket_mb: int = option(512, "Bucket size for actor -> rollout weight sync")
    sampling_config: SamplingConfig = option(SamplingConfig, "Sampling parameters")


@dataclass
class GRPOConfig:
    """A whole GRPO run."""

    model: ModelConfig = option(ModelConfig, "Policy architecture (configs/model/*.yaml)")
    megatron_training: MegatronTrainingConfig = option(MegatronTrainingConfig, "Run-wide training settings")
    actor_config: WorkerConfig = option(WorkerConfig, "Actor (trained policy) Megatron worker group")
    ref_config: WorkerConfig = option(WorkerConfig, "Reference (frozen policy) Megatron worker group")
    rl_config: RLConfig = option(RLConfig, "GRPO algorithm, rewards and placement")
    generate_config: GenerateConfig = option(GenerateConfig, "Rollout engine and sampling")
    critic_config: Optional[CriticWorkerConfig] = option(
        None, "PPO critic Megatron worker group (needs rl_config.advantage_estimator=gae); empty: no critic")

    @property
    def actor_data_parallel_size(self) -> int:
        a = self.actor_config
        return self.rl_config.actor_resource.num_devices // (a.tensor_model_parallel_size * a.pipeline_model_parallel_size)

    @property
    def ref_num_devices(self) -> int:
        rl = self.rl_config
        return rl.actor_resource.num_devices if rl.colocate_actor_ref else rl.reference_resource.num_devices

    @property
    def ref_data_parallel_size(self) -> int:
        r = self.ref_config
        return self.ref_num_devices // (r.tensor_model_parallel_size * r.pipeline_model_parallel_size)

    @property
    def critic_data_parallel_size(self) -> int:
        c = self.critic_config
        if c is None:
            return 0
        return self.rl_config.critic_resource.num_devices // (c.tensor_model_parallel_size * c.pipeline_model_parallel_size)

    @property
    def rollout_data_parallel_size(self) -> int:
        """Inference replicas: TP-only, tiling the actor's devices."""
        return self.rl_config.actor_resource.num_devices // self.generate_config.infer_tensor_parallel_size
