"""A plan before launch: per-rank device memory of a GRPO run, phase by phase, from the config alone.

``plan_memory(cfg)`` needs no device, no model files and no Ray. It counts, for the busiest rank
(first and last pipeline stage, where the embedding and the output layer live):

* parameters of this rank's shard (exact counts from the architecture, TP/PP and vocab padding);
* the fp32 gradient buffer (Megatron DDP reduces in fp32), optimizer state (Adam m and v, plus
  fp32 main params when params are bf16/fp16), sharded over DP with the distributed optimizer;
* the colocated reference's parameters;
* activations kept for backward at the configured micro-batch and sequence length: every layer's
  saved tensors, or with full recompute each layer's input plus one layer's saved tensors, and
  Megatron's persistent attention-score buffer (local attention); for the forward-only log-prob
  passes, one layer's working set;
* logits of one micro-batch on the last stage (fp32, vocab-parallel, at the response positions
  only, with the copies the log-prob and entropy computation makes).

The activation and logit terms are what megatron-core 0.16's local spec and this engine keep,
measured tensor by tensor on CPU (``mindspeed_rl.planning.measure``, checked in
tests/planning/test_plan_calibration.py); ``use_flash_attn``, ``use_fused_rmsnorm``,
``use_fused_swiglu`` and sequence parallelism switch the terms those kernels change.
* the rollout engine: vLLM takes ``gpu_memory_utilization`` of the device's memory while awake
  (its weights, at inference TP, and the KV cache fill that share); the HF backend its weights.

Phases follow the hybrid worker: ``rollout`` (actor/reference parked as configured, rollout
awake), ``log_probs`` (reference and old-policy forward), ``update`` (forward+backward+step) and
``weight_sync`` (grads/optimizer parked as configured, rollout weights awake, one bucket in
flight). With ``rl_config.device_memory_gb`` set, a phase that does not fit is refused, naming the
phase and the knob to turn.
"""
from __future__ import annotations

from dataclasses import dataclass, field

GB = 1e9
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "float32": 4, "bfloat16": 2, "float16": 2}


@dataclass
class ParamCounts:
    embedding: int
    output_layer: int
    per_layer: int
    final_norm: int


@dataclass
class Phase:
    name: str
    parts: dict[str, float]  # bytes
    knob: str  # what to turn when it does not fit

    @property
    def total(self) -> float:
        return sum(self.parts.values())


@dataclass
class MemoryPlan:
    phases: list[Phase]
    device_memory: float | None  # bytes, None when not declared
    placement: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def peak(self) -> Phase:
        return max(self.phases, key=lambda p: p.total)

    def refusals(self) -> list[str]:
        if not self.device_memory:
            return []
        out = []
        for p in self.phases:
            if p.total > self.device_memory:
                out.append(f"phase '{p.name}' needs {p.total / GB:.1f} GB per rank, the device has "
                           f"{self.device_memory / GB:.1f} GB. Fix: {p.knob}")
        return out

    def verdict(self) -> str:
        peak = self.peak
        if not self.device_memory:
            return (f"no device memory declared (rl_config.device_memory_gb): peak {peak.total / GB:.2f} GB per rank "
                    f"in '{peak.name}', not checked")
        refused = self.refusals()
        if refused:
            return "REFUSED: " + "; ".join(refused)
        return (f"FITS: peak {peak.total / GB:.1f} GB per rank in '{peak.name}' of {self.device_memory / GB:.0f} GB "
                f"({100 * peak.total / self.device_memory:.0f}%)")

    def render(self) -> str:
        names = sorted({k for p in self.phases for k in p.parts}, key=_ORDER.index)
        width = max(len(n) for n in names + ["total"])
        lines = ["per-rank device memory (GB), busiest rank:", " " * width + "".join(f"{p.name:>13}" for p in self.phases)]
        for n in names:
            lines.append(f"{n:<{width}}" + "".join(f"{p.parts.get(n, 0.0) / GB:>13.3f}" for p in self.phases))
        lines.append(f"{'total':<{width}}" + "".join(f"{p.total / GB:>13.3f}" for p in self.phases))
        return "\n".join(lines + ["placement:"] + [f"  {p}" for p in self.placement]
                         + [f"note: {n}" for n in self.notes] + [f"verdict: {self.verdict()}"])


_ORDER = ["actor params", "actor grads", "optimizer state", "reference params", "activations", "logits",
          "rollout weights", "rollout KV cache + workspace", "sync bucket"]


def padded_vocab(vocab: int, divisible_by: int, tp: int) -> int:
    multiple = divisible_by * tp
    return -(-vocab // multiple) * multiple


def param_counts(m, tp: int, vocab_pad: int) -> ParamCounts:
    """Parameters of one TP shard (Qwen2: QKV bias, SwiGLU MLP, RMSNorm)."""
    h, heads, groups, ffn = m.hidden_size, m.num_attention_heads, m.num_query_groups, m.ffn_hidden_size
    head_dim = h // heads
    qkv_out = h + 2 * groups * head_dim
    per_layer = (h * qkv_out + (qkv_out if m.add_qkv_bias else 0) + h * h + 3 * h * ffn) // tp + 2 * h
    emb = vocab_pad * h // tp
    return ParamCounts(embedding=emb, output_layer=emb, per_layer=per_layer, final_norm=h)


@dataclass(frozen=True)
class Kernels:
    """Which kernels the engine runs, as far as they change what is kept for backward."""

    flash_attention: bool = False  # False: Megatron's local (unfused) attention, as on CPU
    fused_rmsnorm: bool = False  # False: torch RMSNorm (keeps input, normalised input, output)
    fused_swiglu: bool = False  # False: chunk + silu + mul (keeps 2 ffn-wide tensors besides fc1's output)
    sequence_parallel: bool = False  # norms and residual sharded over TP


def norm_saved_bytes(e: int, k: Kernels) -> float:
    """Bytes per hidden element one RMSNorm keeps for backward. torch's norm computes in fp32: it
    keeps the fp32 input (the input itself in fp32, an upcast copy otherwise), the fp32 normalised
    input and the output in the compute dtype (the next linear's input). Fused: input and output."""
    return 2 * e if k.fused_rmsnorm else 2 * 4 + e


def probs_bytes(e: int) -> float:
    """Bytes per score element local attention keeps: the softmax output in fp32
    (attention_softmax_in_fp32) and, in bf16/fp16, its copy in the compute dtype for the PV matmul."""
    return 4 + (e if e != 4 else 0)


def layer_activation_bytes(m, tp: int, tokens: int, seq: int, e: int, k: Kernels = Kernels()) -> float:
    """Bytes one transformer layer keeps for backward, as measured on megatron-core 0.16 (local
    spec) with torch's saved-tensor hooks: what each of the two norms keeps (``norm_saved_bytes``);
    q, k and v as attention reads them (local attention repeats k/v to every head; flash keeps the
    query groups), the attention output, the softmax probabilities [b, heads/tp, s, s] (local
    attention only, ``probs_bytes``); fc1's output (gate|up), and with the unfused SwiGLU
    silu(gate) and the product (megatron's ``x_linear + glu_linear_offset`` copy is not made:
    ``engine.fast_paths`` drops it at offset 0)."""
    h, heads, groups, ffn = m.hidden_size, m.num_attention_heads, m.num_query_groups, m.ffn_hidden_size
    kv = 2 * groups * (h // heads)
    h_sp = h / tp if k.sequence_parallel else h
    norms = 2 * norm_saved_bytes(e, k) * h_sp
    attention = ((2 * h + kv) if k.flash_attention else 4 * h) / tp * e  # q, k, v and the output
    mlp = (3 if k.fused_swiglu else 4) * ffn / tp * e
    probs = 0.0 if k.flash_attention else heads / tp * tokens * seq * probs_bytes(e)
    return (norms + attention + mlp) * tokens + probs


def forward_working_bytes(m, tp: int, tokens: int, seq: int, e: int, k: Kernels = Kernels()) -> float:
    """Peak bytes of one layer's forward without autograd (log-prob passes): at the local attention,
    the raw scores, their fp32 copy (bf16/fp16) and the fp32 probabilities [b, heads/tp, s, s] plus
    the layer's token tensors (residual, norm output, QKV output and rotated q/k, repeated k/v,
    attention output and its copy); at the MLP, fc1's output and the SwiGLU temporaries. Megatron's
    persistent score buffer is counted apart (``attention_buffer_bytes``)."""
    h, heads, groups, ffn = m.hidden_size, m.num_attention_heads, m.num_query_groups, m.ffn_hidden_size
    kv = 2 * groups * (h // heads)
    h_sp = h / tp if k.sequence_parallel else h
    attn_tokens = 2 * h_sp + 2 * (h + kv) / tp + (kv if k.flash_attention else 2 * h) / tp + 2 * h / tp
    scores = 0.0 if k.flash_attention else heads / tp * tokens * seq * (e + (4 if e != 4 else 0) + 4)
    attention = attn_tokens * tokens * e + scores
    # unfused: measured 5 ffn-wide tensors at the peak (6 before fast_paths dropped megatron's x_linear + 0 copy)
    mlp = (2 * h_sp + (3 if k.fused_swiglu else 5) * ffn / tp) * tokens * e
    return max(attention, mlp)


def attention_buffer_bytes(m, tp: int, tokens: int, seq: int, e: int, k: Kernels = Kernels()) -> float:
    """Megatron's local attention takes its [b*heads/tp, s, s] score tensor from a global buffer that
    stays allocated after the first forward."""
    return 0.0 if k.flash_attention else m.num_attention_heads / tp * tokens * seq * e


def update_logits_bytes(vocab_local: int, response_tokens: int) -> float:
    """The loss's fp32 logits at the peak of backward: 6 copies at the response positions (the
    logits, which the output layer projects only there, ``engine/response_logits.py``; the
    vocab-parallel log-softmax and entropy temporaries; their gradients)."""
    return 4.0 * vocab_local * 6 * response_tokens


def forward_logits_bytes(vocab_local: int, response_tokens: int, e: int) -> float:
    """Peak of the output layer and the log-probs without autograd: the response rows' logits in
    the compute dtype with megatron's [s, b] -> [b, s] contiguous copy of them (the first is freed
    when the model returns), or the logits and the float32 temporaries of one chunk of the
    vocab-parallel kernel (its copy, exp and one more row-sized buffer; ``engine/vocab_parallel.py``
    upcasts chunk by chunk, so no fp32 copy of the logits)."""
    from mindspeed_rl.engine.vocab_parallel import CHUNK_ELEMENTS

    chunk_rows = min(response_tokens, max(1, CHUNK_ELEMENTS // max(vocab_local, 1)))
    return vocab_local * max(2 * response_tokens * e, response_tokens * e + 3 * 4 * chunk_rows)


def _fused_attention(cfg) -> bool:
    """The actor's core attention keeps no [b, heads, s, s] probabilities: torch's SDPA in the local
    spec (its flash kernel saves the output and the log-sum-exp) or Transformer Engine's fused/flash
    backends, as the kernels resolve on this process's platform."""
    from mindspeed_rl.config.components import engine_kernels
    from mindspeed_rl.config.errors import ConfigError

    try:
        resolved = engine_kernels(cfg, "actor")
    except ConfigError:  # an invalid kernel setting is refused by validate(), naming the key; not here
        return False
    if resolved.layer_spec == "transformer_engine":
        return cfg.actor_config.attention_backend in ("auto", "flash", "fused")
    return resolved.core_attention == "sdpa"


def plan_memory(cfg) -> MemoryPlan:
    m, a, r, rl, gen, mt = cfg.model, cfg.actor_config, cfg.ref_config, cfg.rl_config, cfg.generate_config, cfg.megatron_training
    tp, pp = a.tensor_model_parallel_size, a.pipeline_model_parallel_size
    devices = rl.actor_resource.num_devices
    dp = max(1, devices // (tp * pp))
    vpad = padded_vocab(m.vocab_size, m.make_vocab_size_divisible_by, tp)
    counts = param_counts(m, tp, vpad)
    layers = list(a.num_layer_list) if a.num_layer_list else [m.num_layers // pp] * pp
    # the busiest rank: the biggest stage, plus the embedding (first) and output layer (last stage)
    stage_layers = max(layers)
    n_params = stage_layers * counts.per_layer + counts.embedding + counts.final_norm
    if not m.tie_word_embeddings or pp > 1:
        n_params += counts.output_layer  # untied, or a tied copy on the last stage
    e = DTYPE_BYTES[a.params_dtype]
    params = n_params * e
    grads = n_params * 4
    opt_per_param = 8 + (4 if e != 4 else 0)  # Adam m, v (+ fp32 main params)
    optimizer = n_params * opt_per_param / (dp if a.use_distributed_optimizer else 1)
    ref_params = n_params * DTYPE_BYTES[r.params_dtype] if rl.colocate_actor_ref else 0.0

    seq = mt.seq_length
    response = min(gen.sampling_config.max_tokens, seq)
    kernels = Kernels(flash_attention=mt.use_flash_attn or _fused_attention(cfg), fused_rmsnorm=mt.use_fused_rmsnorm,
                      fused_swiglu=mt.use_fused_swiglu, sequence_parallel=a.sequence_parallel and tp > 1)
    # tokens of one micro-batch: rows x seq, or the token budget (dynamic batch size)
    tokens = a.max_tokens_per_micro_batch or seq * a.micro_batch_size
    one_layer = layer_activation_bytes(m, tp, tokens, seq, e, kernels)
    h_sp = m.hidden_size / tp if kernels.sequence_parallel else m.hidden_size
    final_norm = norm_saved_bytes(e, kernels) * h_sp * tokens
    if a.recompute_activations:
        acts = stage_layers * tokens * h_sp * e + one_layer  # each layer's input, one layer recomputed
    else:
        acts = stage_layers * one_layer
    acts += final_norm
    # in flight: with PP, stage 0 holds up to pp micro-batches' activations (1F1B warm-up)
    n_micro = max(1, mt.global_batch_size * rl.n_samples_per_prompt // (dp * a.micro_batch_size))
    acts *= min(pp, n_micro) if pp > 1 else 1
    acts += attention_buffer_bytes(m, tp, tokens, seq, e, kernels)
    vocab_local = vpad // tp
    logits = update_logits_bytes(vocab_local, tokens * response // seq)
    fwd_tokens = r.log_prob_max_tokens_per_micro_batch or seq * r.micro_batch_size
    fe = DTYPE_BYTES[r.params_dtype]
    # without autograd a layer's temporaries and the logits are not alive together: the larger counts
    fwd_layer = forward_working_bytes(m, tp, fwd_tokens, seq, fe, kernels)
    fwd_logits = forward_logits_bytes(vocab_local, fwd_tokens * response // seq, fe)
    fwd_act = attention_buffer_bytes(m, tp, fwd_tokens, seq, fe, kernels) + (fwd_layer if fwd_layer > fwd_logits else 0.0)
    fwd_logits = fwd_logits if fwd_logits >= fwd_layer else 0.0

    full_params = (m.num_layers * counts.per_layer * tp + counts.embedding * tp
                   + (0 if m.tie_word_embeddings else counts.output_layer * tp))
    itp = gen.infer_tensor_parallel_size
    rollout_weights = full_params * DTYPE_BYTES[gen.dtype] / itp
    device_memory = rl.device_memory_gb * GB if rl.device_memory_gb else None
    notes = []
    if gen.backend == "vllm":
        kv_per_token = 2 * m.num_layers * m.num_query_groups * (m.hidden_size // m.num_attention_heads) \
            * DTYPE_BYTES[gen.dtype] / min(itp, m.num_query_groups)
        if device_memory:
            share = gen.gpu_memory_utilization * device_memory
            kv = max(0.0, share - rollout_weights)
            notes.append(f"vLLM KV cache ~{kv / GB:.1f} GB = {kv / kv_per_token:,.0f} tokens "
                         f"(max_num_seqs x max_model_len = {gen.max_num_seqs * gen.max_model_len:,})")
            if kv <= 0:
                notes.append("vLLM weights alone exceed gpu_memory_utilization: raise it or the inference TP")
        else:
            share = rollout_weights
            notes.append("vLLM takes gpu_memory_utilization of the device memory: declare rl_config.device_memory_gb")
        rollout_kv = share - rollout_weights
    else:
        rollout_kv = 0.0
    parked_p, parked_g, parked_o = a.offload_params, a.offload_grads, a.offload_optimizer
    any_parked = parked_p or parked_g or parked_o
    resident = {"actor params": 0.0 if parked_p else params, "actor grads": 0.0 if parked_g else grads,
                "optimizer state": 0.0 if parked_o else optimizer,
                "reference params": 0.0 if any_parked else ref_params}
    phases = [
        Phase("rollout", {**resident, "rollout weights": rollout_weights, "rollout KV cache + workspace": rollout_kv},
              "lower generate_config.gpu_memory_utilization, or set actor_config.offload_params/offload_grads/"
              "offload_optimizer=true, or raise generate_config.infer_tensor_parallel_size"),
        Phase("log_probs", {"actor params": params, "actor grads": grads, "optimizer state": optimizer,
                            "reference params": ref_params, "activations": fwd_act, "logits": fwd_logits},
              "lower ref_config.micro_batch_size, or raise actor_config.tensor_model_parallel_size/"
              "pipeline_model_parallel_size"),
        Phase("update", {"actor params": params, "actor grads": grads, "optimizer state": optimizer,
                         "reference params": ref_params, "activations": acts, "logits": logits},
              "lower actor_config.micro_batch_size, set actor_config.recompute_activations=true, set "
              "actor_config.use_distributed_optimizer=true, or raise tensor/pipeline parallel size"),
        Phase("weight_sync", {"actor params": params, "actor grads": 0.0 if parked_g else grads,
                              "optimizer state": 0.0 if parked_o else optimizer, "reference params": ref_params,
                              "rollout weights": rollout_weights,
                              "sync bucket": min(gen.weight_sync_bucket_mb * 2**20, rollout_weights)},
              "set actor_config.offload_grads/offload_optimizer=true, or lower generate_config.weight_sync_bucket_mb"),
    ]
    if getattr(cfg, "critic_config", None) is not None:
        notes.append(critic_note(cfg))
    return MemoryPlan(phases, device_memory, placement(cfg), notes)


def critic_note(cfg) -> str:
    """The PPO critic's resident state per rank, on its own devices (not in the actor's phases):
    the backbone without an LM head, its fp32 grads and Adam state; activations as in an update
    of the same micro-batch, but no logits (the head is [hidden, 1])."""
    m, c, rl = cfg.model, cfg.critic_config, cfg.rl_config
    tp, pp = c.tensor_model_parallel_size, c.pipeline_model_parallel_size
    dp = max(1, rl.critic_resource.num_devices // (tp * pp))
    counts = param_counts(m, tp, padded_vocab(m.vocab_size, m.make_vocab_size_divisible_by, tp))
    layers = list(c.num_layer_list) if c.num_layer_list else [m.num_layers // pp] * pp
    n = max(layers) * counts.per_layer + counts.embedding + counts.final_norm + m.hidden_size + 1
    e = DTYPE_BYTES[c.params_dtype]
    optimizer = n * (8 + (4 if e != 4 else 0)) / (dp if c.use_distributed_optimizer else 1)
    total = n * e + n * 4 + optimizer
    return (f"critic ({rl.critic_resource.num_devices} devices of its own, TP{tp} x PP{pp} x DP{dp}): "
            f"params + grads + optimizer ~{total / GB:.1f} GB per rank, plus update activations")


def placement(cfg) -> list[str]:
    """Where the ranks go on the declared nodes: actor TPxPPxDP, rollout replicas, reference."""
    rl, a, gen = cfg.rl_config, cfg.actor_config, cfg.generate_config
    devices = rl.actor_resource.num_devices
    per_node = rl.devices_per_node or devices
    nodes = -(-devices // per_node)
    tp, pp = a.tensor_model_parallel_size, a.pipeline_model_parallel_size
    out = [f"actor: {devices} ranks = TP{tp} x PP{pp} x DP{devices // (tp * pp)} on {nodes} node(s) x {per_node} devices"]
    for node in range(nodes):
        ranks = range(node * per_node, min(devices, (node + 1) * per_node))
        stages = sorted({(r // tp) % pp for r in ranks})
        out.append(f"  node {node}: ranks {ranks.start}-{ranks.stop - 1}, pipeline stage(s) {stages}")
    if tp > per_node:
        out.append(f"  WARNING: TP{tp} spans nodes ({per_node} devices per node): tensor parallel over the network")
    itp = gen.infer_tensor_parallel_size
    out.append(f"rollout ({gen.backend}): {devices // itp} replica(s) of TP{itp}, on the actor's devices")
    if rl.colocate_actor_ref:
        out.append("reference: colocated with the actor (same ranks, same TP x PP)")
    else:
        out.append(f"reference: {rl.reference_resource.num_devices} device(s) of its own")
    if getattr(cfg, "critic_config", None) is not None:
        out.append(f"critic: {rl.critic_resource.num_devices} device(s) of its own")
    return out
