"""MegatronEngine: one rank of a Megatron (megatron-core) actor or reference model.

See ``mindspeed_rl.engine`` for the API contract. The engine takes its loss as a function
(``algorithms.losses.Loss``) and owns only what is the same for every loss: mini/micro-batching,
the global normalisers, the gradient-averaging factors and the exact metric reduction. Parameter
names and layouts live in ``mindspeed_rl.models``, devices in ``mindspeed_rl.platform``.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

from mindspeed_rl.engine import batch as engine_batch
from mindspeed_rl.engine import fast_paths
from mindspeed_rl.engine import packing as engine_packing
from mindspeed_rl.engine.config import MegatronEngineConfig
from mindspeed_rl.engine.layout import EngineLayout
from mindspeed_rl.engine.offload import StorageParking, optimizer_state_tensors
from mindspeed_rl.engine.response_logits import RESPONSE_LOGITS, ResponseLogits, flat_positions
from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_prob_stats
from mindspeed_rl.engine.wrappers import unwrap  # noqa: F401 - re-exported
from mindspeed_rl.utils.imports import require

OFFLOAD_KINDS = ("params", "grads", "optimizer")


def _te_available() -> bool:
    """Real TE on CUDA only: MindSpeed registers a dummy ``transformer_engine`` on Ascend."""
    from mindspeed_rl.platform import current_platform

    return current_platform().use_transformer_engine()


def mark_tensor_parallel_weights(model: torch.nn.Module) -> int:
    """Give the local spec's TP-sharded weights their ``tensor_model_parallel`` marks; returns how
    many were missing. megatron-core 0.16 sets them inside its init functions only, so with
    ``perform_initialization=False`` the sharded weights of ColumnParallelLinear, RowParallelLinear
    and VocabParallelEmbedding look replicated: the grad norm then counts TP rank 0's shard alone
    and clipping (hence the update) depends on TP. TE's layers mark their own weights."""
    from megatron.core.tensor_parallel.layers import (ColumnParallelLinear, RowParallelLinear, VocabParallelEmbedding,
                                                      set_tensor_model_parallel_attributes)

    marked = 0
    for module in model.modules():
        if isinstance(module, (ColumnParallelLinear, VocabParallelEmbedding)):
            dim = 0
        elif isinstance(module, RowParallelLinear):
            dim = 1
        else:
            continue
        weight = getattr(module, "weight", None)
        if weight is None or hasattr(weight, "tensor_model_parallel"):
            continue
        set_tensor_model_parallel_attributes(weight, True, dim, 1)
        marked += 1
    return marked


def finalize_is_dp_only(model: torch.nn.Module, config, tp_size: int, pp_size: int) -> bool:
    """Whether megatron's ``finalize_model_grads`` would do nothing but the DP gradient sync for
    this model: one pipeline stage (no embedding / conditional-embedder sync across stages), no
    tensor-parallel grad all-reduce (TP1, or no sequence parallel, no qk layernorm and no
    ``average_gradients_across_tp_domain`` parameter), no MoE router state, no timers."""
    if pp_size != 1 or config.timers is not None or config.moe_router_enable_expert_bias:
        return False
    if tp_size > 1 and (config.sequence_parallel or config.qk_layernorm or any(
            getattr(p, "average_gradients_across_tp_domain", False) for p in model.parameters())):
        return False
    # reset_model_temporary_tensors touches MoE routers only
    return not any(hasattr(m, "expert_bias") or hasattr(m, "reset_global_aux_loss_tracker") for m in model.modules())


def finalize_dp_only(model: List[torch.nn.Module], num_tokens: Optional[torch.Tensor] = None, pg_collection=None,
                     force_all_reduce: bool = False) -> None:
    """megatron's ``finalize_model_grads`` for a model where ``finalize_is_dp_only``: the DP
    all-reduce alone, without the per-update walks over every module and parameter (whose
    collectives are skipped there for groups of one). Per-token loss scaling takes megatron's."""
    if num_tokens is not None:
        from megatron.core.distributed import finalize_model_grads

        return finalize_model_grads(model, num_tokens, pg_collection=pg_collection, force_all_reduce=force_all_reduce)
    for chunk in model:
        chunk.finish_grad_sync(force_all_reduce=force_all_reduce)


class MegatronEngine:
    """A megatron-core GPTModel on this rank, with optimizer (actor) or forward-only (reference).

    Args:
        hf_config: transformers config, dict, or HF model directory (selects the ``models`` bridge).
        config: ``MegatronEngineConfig`` (from the run config:
            ``mindspeed_rl.config.components.megatron_engine_config(run, "actor")``).
        load: converted Megatron checkpoint (``tools/convert`` output) at this engine's TP/PP;
            None keeps Megatron's random initialisation (seeded by ``config.seed``).
    """

    def __init__(self, hf_config: Any, config: MegatronEngineConfig, load: Optional[str] = None):
        from mindspeed_rl.models import get_bridge
        from mindspeed_rl.platform import current_platform

        self.config = config
        self.platform = current_platform()
        self.platform.apply_megatron_adaptor()
        fast_paths.apply()  # torch's F.linear where megatron's TP-1 linear would do the same (see module)
        self.device = self.platform.device()
        self.bridge = get_bridge(hf_config)
        self.bridge.validate_parallelism(config.tensor_model_parallel_size, config.pipeline_model_parallel_size,
                                         config.num_layer_list)
        self._init_parallel()
        self.padded_vocab = self.bridge.padded_vocab_size(self.tp_size, config.make_vocab_size_divisible_by)
        if load:
            self.padded_vocab = self._check_checkpoint_layout(load, hf_config)
        self.model = self._build_model(loading_weights=bool(load))
        if load and self.values_output:  # a critic: the policy's backbone, a fresh value head
            from mindspeed_rl.engine.value_head import load_backbone

            load_backbone(unwrap(self.model), load, self.tp_rank, self.pp_rank, hf_config=hf_config)
        elif load:
            from mindspeed_rl.models.mcore_checkpoint import load_rank_checkpoint

            # hf_config: a checkpoint without convert_meta.json (MindSpeed-LLM's) is read by its layout
            load_rank_checkpoint(unwrap(self.model), load, self.tp_rank, self.pp_rank, hf_config=hf_config)
        self.optimizer = self.scheduler = None
        self.step = 0  # optimizer steps taken
        self._parked: Dict[str, StorageParking] = {}
        if not config.forward_only:
            self._build_ddp_and_optimizer()

    # ------------------------------------------------------------------ construction
    def _init_parallel(self) -> None:
        ps = require("megatron.core.parallel_state", purpose="the Megatron training engine")
        from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

        tp, pp = self.config.tensor_model_parallel_size, self.config.pipeline_model_parallel_size
        if not dist.is_initialized():
            raise RuntimeError("MegatronEngine needs torch.distributed initialised first "
                               "(platform.init_process_group(rank, world_size))")
        if ps.model_parallel_is_initialized():
            have = (ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size())
            if have != (tp, pp):
                raise RuntimeError(f"Megatron parallel state is already initialised with tp,pp={have} in this "
                                   f"process; an engine with tp,pp={(tp, pp)} cannot share it (megatron-core "
                                   "keeps one global layout per process: colocated engines need the same TP/PP)")
        else:
            ws = dist.get_world_size()
            if ws % (tp * pp):
                raise RuntimeError(f"world size {ws} is not a multiple of tp*pp={tp * pp}")
            ps.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
        self.platform.manual_seed(self.config.seed)
        model_parallel_cuda_manual_seed(self.config.seed)
        self._ps = ps  # Megatron's parallel state stays inside the engine: others read self.layout
        self.layout = EngineLayout(
            dp_rank=ps.get_data_parallel_rank(), dp_size=ps.get_data_parallel_world_size(),
            tp_rank=ps.get_tensor_model_parallel_rank(), tp_size=tp,
            pp_rank=ps.get_pipeline_model_parallel_rank(), pp_size=pp,
        )

    # The layout's coordinates, for the engine's own modules (checkpoint, weight export).
    tp_size = property(lambda self: self.layout.tp_size)
    pp_size = property(lambda self: self.layout.pp_size)
    dp_size = property(lambda self: self.layout.dp_size)
    tp_rank = property(lambda self: self.layout.tp_rank)
    pp_rank = property(lambda self: self.layout.pp_rank)
    dp_rank = property(lambda self: self.layout.dp_rank)
    is_last_stage = property(lambda self: self.layout.is_last_stage)
    # a critic (engine.value_head): the model ends in a [hidden, 1] head and returns values
    values_output = property(lambda self: self.config.output == "values")

    @property
    def dp_group(self):
        """The torch.distributed group of this rank's data-parallel peers (same TP/PP coordinates)."""
        return self._ps.get_data_parallel_group()

    def _check_checkpoint_layout(self, load: str, hf_config=None) -> int:
        from mindspeed_rl.models.mcore_checkpoint import read_meta

        meta = read_meta(load, hf_config)
        want = (self.tp_size, self.pp_size)
        if (int(meta["tp"]), int(meta["pp"])) != want:
            raise ValueError(f"{load}: checkpoint has tp={meta['tp']} pp={meta['pp']}, the engine runs tp,pp={want}; "
                             "convert it again with tools/convert/convert_ckpt.py at this layout")
        if self.config.num_layer_list and list(meta["num_layer_list"]) != list(self.config.num_layer_list):
            raise ValueError(f"{load}: num_layer_list {meta['num_layer_list']} != engine {self.config.num_layer_list}")
        return int(meta["padded_vocab_size"])

    def resolve_kernels(self, loading_weights: bool):
        """This rank's kernel choice (``engine.kernels``) for its platform; raises KernelError on a
        combination the platform cannot run."""
        from mindspeed_rl.engine.kernels import resolve_kernels

        c = self.config
        return resolve_kernels(c.kernels, self.platform.name, te_available=_te_available(),
                               recompute_activations=c.recompute_activations, loading_weights=loading_weights)

    def _build_model(self, loading_weights: bool = False) -> torch.nn.Module:
        from megatron.core.models.gpt import GPTModel

        from mindspeed_rl.engine.kernels import megatron_kwargs
        from mindspeed_rl.engine.sdpa_attention import core_attention_module

        c = self.config
        self.kernels = self.resolve_kernels(loading_weights)
        overrides = megatron_kwargs(self.kernels)
        overrides.update(c.transformer_overrides)  # the escape hatch wins
        if c.sequence_parallel:
            overrides["sequence_parallel"] = True
        tcfg = self.bridge.transformer_config(self.tp_size, self.pp_size, params_dtype=c.torch_dtype,
                                              num_layer_list=c.num_layer_list, **overrides)
        if self.pp_size > 1:
            # Micro-batches differ in shape (each is padded to its own longest row; token-budget and
            # packed ones in rows too), so pipeline stages send shapes before tensors. Set after
            # construction: TransformerConfig's check of this flag is about MoE token dispatchers,
            # which a dense model does not have.
            tcfg.variable_seq_lengths = True
        model_kwargs = self.bridge.gpt_model_kwargs(self.tp_size, padded_vocab=self.padded_vocab)
        if self.values_output:
            model_kwargs["share_embeddings_and_output_weights"] = False  # the value head is its own
        model = GPTModel(
            tcfg,
            self.bridge.layer_spec(use_te=self.kernels.layer_spec == "transformer_engine", config=tcfg,
                                   core_attention=core_attention_module(self.kernels.core_attention)),
            **model_kwargs,
            pre_process=self.layout.is_first_stage,
            post_process=self.is_last_stage,
        )
        if self.values_output:
            from mindspeed_rl.engine.value_head import attach_value_head

            attach_value_head(model, tcfg.hidden_size, c.torch_dtype, c.seed)
        # the policy's logits only where a response token is predicted (see engine.response_logits)
        self.response_logits = (ResponseLogits(model.output_layer)
                                if self.is_last_stage and not self.values_output else None)
        if loading_weights:
            mark_tensor_parallel_weights(model)
        model.to(self.device)
        self._half = c.torch_dtype != torch.float32
        if self._half:
            from megatron.core.transformer.module import Float16Module

            # bf16/fp16 compute; the forward asks for logits in that dtype (fp32_output=False): the
            # log-prob kernel accumulates in fp32 chunk by chunk, so no fp32 [b, s, vocab] copy is made
            model = Float16Module(tcfg, model)
        self.transformer_config = tcfg
        return model

    def _build_ddp_and_optimizer(self) -> None:
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
        from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

        c = self.config
        ddp_config = DistributedDataParallelConfig(grad_reduce_in_fp32=True, overlap_grad_reduce=False,
                                                   use_distributed_optimizer=c.use_distributed_optimizer)
        self.model = DistributedDataParallel(config=self.transformer_config, ddp_config=ddp_config, module=self.model)
        opt_config = OptimizerConfig(
            optimizer="adam", lr=c.lr, min_lr=c.min_lr, weight_decay=c.weight_decay,
            adam_beta1=c.adam_beta1, adam_beta2=c.adam_beta2, adam_eps=c.adam_eps, clip_grad=c.clip_grad,
            bf16=c.torch_dtype == torch.bfloat16, fp16=c.torch_dtype == torch.float16, params_dtype=c.torch_dtype,
            use_distributed_optimizer=c.use_distributed_optimizer,
        )
        self.optimizer = get_megatron_optimizer(opt_config, [self.model])
        decay_steps = max(c.lr_decay_steps, c.lr_warmup_steps + 1, 1)
        self.scheduler = OptimizerParamScheduler(
            self.optimizer, init_lr=0.0 if c.lr_warmup_steps else c.lr, max_lr=c.lr, min_lr=c.min_lr,
            lr_warmup_steps=c.lr_warmup_steps, lr_decay_steps=decay_steps, lr_decay_style=c.lr_decay_style,
            start_wd=c.weight_decay, end_wd=c.weight_decay, wd_incr_steps=decay_steps, wd_incr_style="constant",
        )
        # Megatron's training loop wiring: DP all-reduce + tied-embedding sync after backward, and the
        # loss scale (fp16) applied in the schedule's backward.
        self.transformer_config.finalize_model_grads_func = (
            finalize_dp_only if finalize_is_dp_only(self.model, self.transformer_config, self.tp_size, self.pp_size)
            else finalize_model_grads)
        self.transformer_config.grad_scale_func = self.optimizer.scale_loss

    # ------------------------------------------------------------------ forward
    def _token_log_probs(self, logits: torch.Tensor, mb: engine_batch.Batch, with_entropy: bool, temperature: bool = True):
        """[b, R] log-probs (and entropy) of the response tokens from [b, s, vocab/tp] logits,
        under ``softmax(logits / config.logit_temperature)`` unless ``temperature`` is False (SFT)."""
        # by the class, so that a stand-in ``self`` with the engine's attributes works too (tests)
        return MegatronEngine._token_log_prob_stats(self, logits, mb, with_entropy, temperature)[:2]

    def _token_log_prob_stats(self, logits: torch.Tensor, mb: engine_batch.Batch, with_entropy: bool,
                              temperature: bool = True, with_mean_log_prob: bool = False):
        """``_token_log_probs`` plus the mean log-prob over the true vocab (label smoothing) or None."""
        pos = engine_batch.response_positions(mb["attention_mask"], mb["response_mask"]).to(logits.device)
        labels = mb["input_ids"].to(logits.device).gather(1, pos + 1)
        # only the response positions, in the logits' dtype; the kernel upcasts chunk by chunk
        if mb.get(RESPONSE_LOGITS):  # the output layer projected only these rows: [1, b * R, V]
            picked = logits.view(*pos.shape, logits.shape[-1])
        elif "packed_rows" in mb:  # packed logits [1, T, V]: the response positions of each row in T
            flat = engine_packing.packed_index(mb["packed_rows"], pos.cpu()).to(logits.device)
            picked = logits[0].index_select(0, flat.reshape(-1)).view(*flat.shape, logits.shape[-1])
        else:
            picked = logits.gather(1, pos.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        vocab_local = logits.shape[-1]
        return vocab_parallel_log_prob_stats(
            picked, labels, vocab_start=self.tp_rank * vocab_local, true_vocab=self.bridge.vocab_size,
            group=self._ps.get_tensor_model_parallel_group() if self.tp_size > 1 else None,
            with_entropy=with_entropy, with_mean_log_prob=with_mean_log_prob,
            temperature=self.config.logit_temperature if temperature else 1.0,
        )

    @staticmethod
    def _response_rows(mb: engine_batch.Batch) -> torch.Tensor:
        """Rows of the output layer's flattened input ([s, b] or packed [T]) that predict a response
        token, in ``[b, R]`` order (what ``_token_log_prob_stats`` views the logits as)."""
        pos = engine_batch.response_positions(mb["attention_mask"], mb["response_mask"])
        if "packed_rows" in mb:
            return engine_packing.packed_index(mb["packed_rows"], pos).reshape(-1)
        return flat_positions(pos, mb["input_ids"].shape[0])

    def _micro_batches(self, batch: engine_batch.Batch, max_tokens: int,
                       micro_batch_size: Optional[int]) -> Tuple[List[engine_batch.Batch], List[torch.Tensor]]:
        """Micro-batches of ``batch`` and the batch rows each holds: by token budget when
        ``max_tokens`` > 0, else ``micro_batch_size`` rows in order, each padded to its own longest row."""
        seq_multiple = self._seq_multiple()
        if max_tokens > 0:
            return engine_batch.split_by_token_budget(batch, max_tokens, seq_multiple)
        n = batch["input_ids"].shape[0]
        mbs = micro_batch_size or self.config.micro_batch_size
        # each micro-batch padded to its own longest row and response, not the call's
        micro = [engine_batch.trim_micro_batch(mb, seq_multiple)
                 for mb in engine_batch.split_micro_batches(batch, mbs)]
        index = [torch.arange(i * mbs, min((i + 1) * mbs, n)) for i in range(len(micro))]
        return micro, index

    def _run_schedule(self, micro: List[engine_batch.Batch], loss_fn, forward_only: bool) -> None:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        device = self.device
        half = {"fp32_output": False} if self._half else {}  # logits in the compute dtype (see _build_model)

        packed = self.kernels.packed_sequences
        if packed:  # THD: each micro-batch's rows end to end, attention kept per row by cu_seqlens
            micro = [dict(mb, packed_rows=engine_packing.pack(mb["input_ids"], mb["attention_mask"],
                                                              self._seq_multiple())) for mb in micro]

        def forward_step(data_iterator, model):
            mb = next(data_iterator)
            if self.response_logits is not None:  # the last stage: project only the response rows
                self.response_logits.select(self._response_rows(mb).to(device))
                mb = dict(mb, **{RESPONSE_LOGITS: True})
            if packed:
                rows = mb["packed_rows"]
                out = model(rows.tokens.to(device), rows.position_ids.to(device), None,
                            packed_seq_params=engine_packing.packed_seq_params(rows, device), **half)
                return out, functools.partial(loss_fn, mb)
            tokens = mb["input_ids"].to(device)
            positions = torch.arange(tokens.shape[1], device=device).unsqueeze(0).expand_as(tokens)
            return model(tokens, positions, None, **half), functools.partial(loss_fn, mb)

        if packed:
            seq, mbs = micro[0]["packed_rows"].total, 1
        else:
            seq, mbs = micro[0]["input_ids"].shape[1], micro[0]["input_ids"].shape[0]
        get_forward_backward_func()(
            forward_step_func=forward_step, data_iterator=iter(micro), model=[self.model],
            num_microbatches=len(micro), seq_length=seq, micro_batch_size=mbs, forward_only=forward_only,
        )

    def _broadcast_from_last_stage(self, t: Optional[torch.Tensor], shape) -> torch.Tensor:
        if self.pp_size == 1:
            return t
        if t is None:
            t = torch.empty(shape, dtype=torch.float32, device=self.device)
        t = t.contiguous()
        dist.broadcast(t, src=self._ps.get_pipeline_model_parallel_last_rank(),
                       group=self._ps.get_pipeline_model_parallel_group())
        return t

    @torch.no_grad()
    def infer_batch(self, batch: engine_batch.Batch, with_entropy: bool = False,
                    micro_batch_size: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """Forward-only ``{'log_probs': [B, R]}`` (+ ``'entropy'``), float32, 0 on masked positions;
        a critic engine (``config.output="values"``) returns ``{'values': [B, R]}`` instead.

        Every rank of the model-parallel group gets the result (it is computed on the last pipeline
        stage, identical on its TP ranks, and broadcast over the PP group); each DP rank returns
        its own rows. All ranks of a model-parallel group must pass the same batch.
        """
        engine_batch.check_batch(batch)
        n, r = batch["response_mask"].shape
        micro, index = self._micro_batches(batch, self.config.log_prob_max_tokens_per_micro_batch, micro_batch_size)
        outputs: List[Tuple[torch.Tensor, Optional[torch.Tensor]]] = []

        def collect(mb, logits):
            if self.values_output:
                from mindspeed_rl.engine.value_head import token_values

                outputs.append((token_values(logits, mb),))
            else:
                outputs.append(self._token_log_probs(logits, mb, with_entropy))
            return logits.new_zeros(()), {}

        self._set_training(False)
        self._run_schedule(micro, collect, forward_only=True)
        mask = batch["response_mask"].to(self.device).bool()
        result = {}
        keys = ["values"] if self.values_output else ["log_probs"] + (["entropy"] if with_entropy else [])
        for i, key in enumerate(keys):
            value = None
            if self.is_last_stage:  # put each micro-batch's rows (and response width) back in place
                value = torch.zeros((n, r), dtype=torch.float32, device=self.device)
                for rows, out in zip(index, outputs):
                    value[rows.to(self.device), : out[i].shape[1]] = out[i][: len(rows)].float()
            value = self._broadcast_from_last_stage(value, (n, r))
            result[key] = torch.where(mask, value, torch.zeros((), device=value.device))
        return result

    def _set_training(self, training: bool) -> None:
        """``model.train(training)`` only when some module is in the other mode: the recursive call
        walks every module (hundreds) on each update otherwise."""
        modules = self.__dict__.get("_all_modules")
        if modules is None or modules[0] is not self.model:
            modules = self._all_modules = (self.model, list(self.model.modules()))
        if any(m.training != training for m in modules[1]):
            self.model.train(training)

    def _seq_multiple(self) -> int:
        """Sequence parallelism splits the sequence over the TP ranks: lengths must divide by TP."""
        return self.tp_size if self.config.sequence_parallel else 1

    # ------------------------------------------------------------------ training
    def _require_optimizer(self, what: str) -> None:
        if self.optimizer is None:
            raise RuntimeError(f"{what} needs an optimizer; this engine was built forward_only (reference)")

    def _dp_all_reduce(self, t: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        if self.dp_size > 1:
            dist.all_reduce(t, op=op, group=self.dp_group)
        return t

    def _global_normalizers(self, response_mask: torch.Tensor, norm_length: Optional[int]):
        from mindspeed_rl.algorithms import LossNormalizers, compute_loss_normalizers

        local = compute_loss_normalizers(response_mask) if response_mask.shape[0] else LossNormalizers(0.0, 0.0, 1.0)
        counts = self._dp_all_reduce(local.to_tensor(self.device))
        if norm_length is None:
            width = self._dp_all_reduce(torch.tensor([float(response_mask.shape[1])], device=self.device),
                                        dist.ReduceOp.MAX)
            norm_length = max(float(width.item()), 1.0)
        return LossNormalizers.from_tensor(counts.cpu(), norm_length)

    def _optimizer_step(self, micro: List[engine_batch.Batch], loss_fn) -> Tuple[float, float]:
        """Forward/backward over ``micro`` then one optimizer step; returns (grad_norm, lr used)."""
        self.onload()  # state parked for the rollout (or weight sync) comes back before training
        self._set_training(True)
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        self._run_schedule(micro, loss_fn, forward_only=False)
        lr = float(self.optimizer.param_groups[0]["lr"])
        ok, grad_norm, _ = self.optimizer.step()
        if ok:
            self.scheduler.step(increment=1)
            self.step += 1
        return float(grad_norm if grad_norm is not None else float("nan")), lr

    def train_batch(self, batch: engine_batch.Batch, loss, *, num_mini_batches: int = 1, epochs: int = 1,
                    shuffle: bool = False, micro_batch_size: Optional[int] = None) -> Dict[str, float]:
        """Minimise ``loss`` (an ``algorithms.losses.Loss``) on this DP rank's rows; returns its
        metrics reduced exactly over all micro-batches and DP ranks, the same on every rank.

        The local rows are cut into ``num_mini_batches`` consecutive chunks (the same count on every
        DP rank; global mini-batch k = chunk k of every rank, see ``batch.dp_shard_indices``), one
        optimizer step each, repeated ``epochs`` times (``shuffle``: a seeded permutation per epoch).
        Per mini-batch the engine counts the global normalisers once (all-reduced over DP) and
        scales each micro-batch's loss by ``num_microbatches x dp_size``, undoing the schedule's and
        DDP's averaging, so the step does not depend on micro-batch size, their number or DP size.
        ``inputs.on_policy`` tells the loss that one mini-batch and one epoch use fresh data.
        Besides the loss's metrics: grad_norm (mean over steps), lr (of the last step),
        num_optimizer_steps.
        """
        self._require_optimizer("train_batch")
        if getattr(loss, "output", "log_probs") != self.config.output:
            raise ValueError(f"the loss reads {getattr(loss, 'output', 'log_probs')!r} but this engine outputs "
                             f"{self.config.output!r} (a value loss needs a critic engine, output='values')")
        engine_batch.check_batch(batch, engine_batch.REQUIRED_KEYS + tuple(loss.required_keys))
        missing = [k for k in loss.required_keys if batch.get(k) is None]
        if missing:
            raise KeyError(f"the loss needs batch keys {missing}, which are None in this batch")
        if num_mini_batches < 1 or epochs < 1:
            raise ValueError(f"num_mini_batches={num_mini_batches} and epochs={epochs} must be >= 1")
        on_policy = num_mini_batches == 1 and epochs == 1
        n = batch["input_ids"].shape[0]
        records, steps = [], []
        for epoch in range(epochs):
            gen = torch.Generator().manual_seed(self.config.seed * 1000003 + self.step * 101 + epoch) if shuffle else None
            for idx in engine_batch.mini_batch_indices(n, num_mini_batches, gen):
                mini = engine_batch.select_rows(batch, idx)
                norm = self._global_normalizers(mini[loss.mask_key], loss.norm_length)
                micro, _ = self._micro_batches(mini, self.config.max_tokens_per_micro_batch, micro_batch_size)
                scale = float(len(micro) * self.dp_size)  # undo the schedule's 1/M and DDP's 1/dp
                step_fn = functools.partial(self._micro_batch_loss, loss, norm, scale, on_policy, records)
                grad_norm, lr = self._optimizer_step(micro, step_fn)
                steps.append({"grad_norm": grad_norm, "lr": lr})
        metrics = self._reduce_records(records, loss.metrics)
        metrics["grad_norm"] = sum(s["grad_norm"] for s in steps) / len(steps)
        metrics["lr"] = steps[-1]["lr"]
        metrics["num_optimizer_steps"] = float(len(steps))
        return metrics

    def _micro_batch_loss(self, loss, norm, scale, on_policy, records, mb, logits):
        """The schedule's loss hook: log-probs from this stage's logits, the loss, its scaling."""
        from mindspeed_rl.algorithms.losses import LossInputs

        if self.values_output:
            from mindspeed_rl.engine.value_head import token_values

            inputs = LossInputs(None, None, mb, norm, on_policy, values=token_values(logits, mb))
        else:
            lp, ent, mean_lp = self._token_log_prob_stats(logits, mb, loss.with_entropy,
                                                          temperature=loss.logit_temperature,
                                                          with_mean_log_prob=loss.with_mean_log_prob)
            inputs = LossInputs(lp, ent, mb, norm, on_policy, mean_log_prob=mean_lp)
        value, metrics = loss(inputs)
        unknown = set(metrics) - set(loss.metrics)
        if unknown:
            raise KeyError(f"the loss reported metrics {sorted(unknown)} it does not declare in Loss.metrics "
                           f"{list(loss.metrics)}; add them there (every rank all-reduces the same names)")
        records.append(metrics)
        return value * scale, {}

    def _reduce_records(self, records, names) -> Dict[str, float]:
        """Exact weighted reduction over micro-batches and DP ranks; the result is on every rank."""
        from mindspeed_rl.algorithms import finalize_metric_sums, metric_sums, pack_metric_sums, unpack_metric_sums

        owner = self.layout.returns_outputs  # one copy of each DP rank's metrics
        sums = metric_sums(records) if owner else {}
        packed = pack_metric_sums(sums, list(names), device=self.device)
        if dist.get_world_size() > 1:
            dist.all_reduce(packed)
        totals = unpack_metric_sums(packed.cpu(), list(names))
        return {k: v for k, v in finalize_metric_sums(totals).items() if totals[k][1] > 0}

    def current_lr(self) -> float:
        self._require_optimizer("current_lr")
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ offload
    def _tensors_of(self, kind: str) -> List[torch.Tensor]:
        if kind == "params":
            return [p.data for p in self.model.parameters()]
        if kind == "grads":
            out = [b.grad_data for b in getattr(self.model, "buffers", [])]
            out += [b.grad_data for b in getattr(self.model, "expert_parallel_buffers", [])]
            out += [getattr(p, "main_grad", None) for p in self.model.parameters()]
            return [t for t in out if t is not None]
        if kind == "optimizer":
            if self.optimizer is None:
                return []
            states, mains = optimizer_state_tensors(self.optimizer)
            return states + mains
        raise ValueError(f"unknown offload kind {kind!r}; choose from {OFFLOAD_KINDS}")

    def offload(self, params: bool = True, grads: bool = True, optimizer: bool = True) -> int:
        """Move the chosen state to host memory (views stay valid); returns bytes moved."""
        kinds = [k for k, on in zip(OFFLOAD_KINDS, (params, grads, optimizer)) if on and k not in self._parked]
        # fp32 main params of the optimizer are the model params themselves: those belong to
        # "params" only. Storages already parked have 0 bytes and are skipped by add().
        param_keys = {p.data.untyped_storage().data_ptr() for p in self.model.parameters()}
        for kind in kinds:
            # the fp32 grad buffer is zeroed before the next update: free it, do not copy it to host
            parking = StorageParking(kind, keep_data=kind != "grads")
            parking.add(self._tensors_of(kind), exclude=() if kind == "params" else param_keys)
            self._parked[kind] = parking
        moved = sum(self._parked[k].offload() for k in kinds)
        self.platform.empty_cache()
        return moved

    def onload(self) -> None:
        """Bring back everything ``offload`` moved."""
        for parking in self._parked.values():
            parking.onload()
        self._parked.clear()

    # ------------------------------------------------------------------ checkpoints / weights
    def save_checkpoint(self, save_dir: str, iteration: Optional[int] = None) -> str:
        from mindspeed_rl.engine.checkpoint import save_engine_checkpoint

        return save_engine_checkpoint(self, save_dir, self.step if iteration is None else iteration)

    def load_checkpoint(self, load_dir: str, iteration: Optional[int] = None) -> int:
        from mindspeed_rl.engine.checkpoint import load_engine_checkpoint

        return load_engine_checkpoint(self, load_dir, iteration)

    def export_hf_weights(self, bucket_bytes: int = 512 * 2**20) -> Iterator[Tuple[str, torch.Tensor]]:
        """(HF name, full tensor) for every HF weight, on every rank (TP gathered, PP broadcast).

        One implementation with the converter's layouts: ``models.weight_sync`` gathers bucket by
        bucket (about ``bucket_bytes`` of full tensors alive at a time).
        """
        from mindspeed_rl.models.weight_sync import iter_hf_weights

        if self.values_output:
            raise RuntimeError("a critic engine has no HF weights to export (its value head is not an HF layer)")
        for bucket in iter_hf_weights(unwrap(self.model), self.bridge, self.padded_vocab, self.config.num_layer_list,
                                      bucket_bytes=bucket_bytes, dtype=self.config.torch_dtype,
                                      tp_group=self._ps.get_tensor_model_parallel_group(),
                                      pp_group=self._ps.get_pipeline_model_parallel_group()):
            yield from bucket
