"""MegatronEngine: one rank of a Megatron (megatron-core) actor or reference model.

See ``mindspeed_rl.engine`` for the API contract. Loss math lives in ``mindspeed_rl.algorithms``,
parameter names and layouts in ``mindspeed_rl.models``, devices in ``mindspeed_rl.platform``.
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as dist

from mindspeed_rl.engine import batch as B
from mindspeed_rl.engine.config import EngineConfig
from mindspeed_rl.engine.offload import StorageParking, optimizer_state_tensors
from mindspeed_rl.engine.vocab_parallel import vocab_parallel_log_probs
from mindspeed_rl.utils.imports import require

LOSS_METRICS = ("pg_loss", "pg_clipfrac", "pg_clipfrac_lower", "ppo_kl", "kl_loss", "entropy")
OFFLOAD_KINDS = ("params", "grads", "optimizer")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The GPTModel inside DDP / Float16Module wrappers."""
    while hasattr(model, "module"):
        model = model.module
    return model


def _te_available() -> bool:
    """Real TE on CUDA only: MindSpeed registers a dummy ``transformer_engine`` on Ascend."""
    from mindspeed_rl.platform import current_platform

    return current_platform().use_transformer_engine()


class MegatronEngine:
    """A megatron-core GPTModel on this rank, with optimizer (actor) or forward-only (reference).

    Args:
        hf_config: transformers config, dict, or HF model directory (selects the ``models`` bridge).
        config: ``EngineConfig`` (``EngineConfig.from_worker_config(actor_config, ...)``).
        load: converted Megatron checkpoint (``tools/convert`` output) at this engine's TP/PP;
            None keeps Megatron's random initialisation (seeded by ``config.seed``).
    """

    def __init__(self, hf_config: Any, config: EngineConfig, load: Optional[str] = None):
        from mindspeed_rl.models import get_bridge
        from mindspeed_rl.platform import current_platform

        self.config = config
        self.platform = current_platform()
        self.platform.apply_megatron_adaptor()
        self.device = self.platform.device()
        self.bridge = get_bridge(hf_config)
        self.bridge.validate_parallelism(config.tensor_model_parallel_size, config.pipeline_model_parallel_size,
                                         config.num_layer_list)
        self._init_parallel()
        self.padded_vocab = self.bridge.padded_vocab_size(self.tp_size, config.make_vocab_size_divisible_by)
        if load:
            self.padded_vocab = self._check_checkpoint_layout(load)
        self.model = self._build_model()
        if load:
            from mindspeed_rl.models.mcore_checkpoint import load_rank_checkpoint

            load_rank_checkpoint(unwrap(self.model), load, self.tp_rank, self.pp_rank)
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
        self.ps = ps
        self.tp_size, self.pp_size = tp, pp
        self.tp_rank = ps.get_tensor_model_parallel_rank()
        self.pp_rank = ps.get_pipeline_model_parallel_rank()
        self.dp_size = ps.get_data_parallel_world_size()
        self.dp_rank = ps.get_data_parallel_rank()
        self.is_last_stage = ps.is_pipeline_last_stage()

    def _check_checkpoint_layout(self, load: str) -> int:
        from mindspeed_rl.models.mcore_checkpoint import read_meta

        meta = read_meta(load)
        want = (self.tp_size, self.pp_size)
        if (int(meta["tp"]), int(meta["pp"])) != want:
            raise ValueError(f"{load}: checkpoint has tp={meta['tp']} pp={meta['pp']}, the engine runs tp,pp={want}; "
                             "convert it again with tools/convert/convert_ckpt.py at this layout")
        if self.config.num_layer_list and list(meta["num_layer_list"]) != list(self.config.num_layer_list):
            raise ValueError(f"{load}: num_layer_list {meta['num_layer_list']} != engine {self.config.num_layer_list}")
        return int(meta["padded_vocab_size"])

    def _build_model(self) -> torch.nn.Module:
        from megatron.core.models.gpt import GPTModel

        c = self.config
        overrides = dict(c.transformer_overrides)
        if c.recompute_activations:
            overrides.update(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1)
        if c.sequence_parallel:
            overrides["sequence_parallel"] = True
        tcfg = self.bridge.transformer_config(self.tp_size, self.pp_size, params_dtype=c.torch_dtype,
                                              num_layer_list=c.num_layer_list, **overrides)
        if self.pp_size > 1 and (c.max_tokens_per_micro_batch or c.log_prob_max_tokens_per_micro_batch):
            # Token-budget micro-batches differ in shape, so pipeline stages send shapes before
            # tensors. Set after construction: TransformerConfig's check of this flag is about MoE
            # token dispatchers, which a dense model does not have.
            tcfg.variable_seq_lengths = True
        use_te = c.use_te if c.use_te is not None else _te_available()
        model = GPTModel(
            tcfg,
            self.bridge.layer_spec(use_te=use_te, config=tcfg),
            **self.bridge.gpt_model_kwargs(self.tp_size, padded_vocab=self.padded_vocab),
            pre_process=self.ps.is_pipeline_first_stage(),
            post_process=self.is_last_stage,
        )
        model.to(self.device)
        if c.torch_dtype != torch.float32:
            from megatron.core.transformer.module import Float16Module

            model = Float16Module(tcfg, model)  # bf16/fp16 compute, fp32 logits out of the last stage
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
        self.transformer_config.finalize_model_grads_func = finalize_model_grads
        self.transformer_config.grad_scale_func = self.optimizer.scale_loss

    # ------------------------------------------------------------------ forward
    def _token_log_probs(self, logits: torch.Tensor, mb: B.Batch, with_entropy: bool, temperature: bool = True):
        """[b, R] log-probs (and entropy) of the response tokens from [b, s, vocab/tp] logits,
        under ``softmax(logits / config.logit_temperature)`` unless ``temperature`` is False (SFT)."""
        pos = B.response_positions(mb["attention_mask"], mb["response_mask"]).to(logits.device)
        labels = mb["input_ids"].to(logits.device).gather(1, pos + 1)
        picked = logits.gather(1, pos.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        if temperature and self.config.logit_temperature != 1.0:
            picked = picked / self.config.logit_temperature
        vocab_local = logits.shape[-1]
        return vocab_parallel_log_probs(
            picked, labels, vocab_start=self.tp_rank * vocab_local, true_vocab=self.bridge.vocab_size,
            group=self.ps.get_tensor_model_parallel_group() if self.tp_size > 1 else None,
            with_entropy=with_entropy,
        )

    def _micro_batches(self, batch: B.Batch, max_tokens: int,
                       micro_batch_size: Optional[int]) -> Tuple[List[B.Batch], List[torch.Tensor]]:
        """Micro-batches of ``batch`` and the batch rows each holds: by token budget when
        ``max_tokens`` > 0, else ``micro_batch_size`` rows padded to the call's longest row."""
        seq_multiple = self._seq_multiple()
        if max_tokens > 0:
            return B.split_by_token_budget(batch, max_tokens, seq_multiple)
        n = batch["input_ids"].shape[0]
        mbs = micro_batch_size or self.config.micro_batch_size
        micro = B.split_micro_batches(B.trim_to_longest(batch, seq_multiple), mbs)
        index = [torch.arange(i * mbs, min((i + 1) * mbs, n)) for i in range(len(micro))]
        return micro, index

    def _run_schedule(self, micro: List[B.Batch], loss_fn, forward_only: bool) -> None:
        from megatron.core.pipeline_parallel import get_forward_backward_func

        device = self.device

        def forward_step(data_iterator, model):
            mb = next(data_iterator)
            tokens = mb["input_ids"].to(device)
            positions = torch.arange(tokens.shape[1], device=device).unsqueeze(0).expand_as(tokens)
            return model(tokens, positions, None), functools.partial(loss_fn, mb)

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
        dist.broadcast(t, src=self.ps.get_pipeline_model_parallel_last_rank(),
                       group=self.ps.get_pipeline_model_parallel_group())
        return t

    @torch.no_grad()
    def compute_log_probs(self, batch: B.Batch, with_entropy: bool = False,
                          micro_batch_size: Optional[int] = None) -> Dict[str, torch.Tensor]:
        """Forward-only ``{'log_probs': [B, R]}`` (+ ``'entropy'``), float32, 0 on masked positions.

        Every rank of the model-parallel group gets the result (it is computed on the last pipeline
        stage, identical on its TP ranks, and broadcast over the PP group); each DP rank returns
        its own rows. All ranks of a model-parallel group must pass the same batch.
        """
        B.check_batch(batch)
        n, r = batch["response_mask"].shape
        micro, index = self._micro_batches(batch, self.config.log_prob_max_tokens_per_micro_batch, micro_batch_size)
        outputs: List[Tuple[torch.Tensor, Optional[torch.Tensor]]] = []

        def loss_fn(mb, logits):
            lp, ent = self._token_log_probs(logits, mb, with_entropy)
            outputs.append((lp, ent))
            return logits.new_zeros(()), {}

        self.model.eval()
        self._run_schedule(micro, loss_fn, forward_only=True)
        mask = batch["response_mask"].to(self.device).bool()
        result = {}
        keys = ["log_probs"] + (["entropy"] if with_entropy else [])
        for i, key in enumerate(keys):
            value = None
            if self.is_last_stage:  # put each micro-batch's rows (and response width) back in place
                value = torch.zeros((n, r), dtype=torch.float32, device=self.device)
                for rows, out in zip(index, outputs):
                    value[rows.to(self.device), : out[i].shape[1]] = out[i][: len(rows)].float()
            value = self._broadcast_from_last_stage(value, (n, r))
            result[key] = torch.where(mask, value, torch.zeros((), device=value.device))
        return result

    def _seq_multiple(self) -> int:
        """Sequence parallelism splits the sequence over the TP ranks: lengths must divide by TP."""
        return self.tp_size if self.config.sequence_parallel else 1

    # ------------------------------------------------------------------ training
    def _require_optimizer(self, what: str) -> None:
        if self.optimizer is None:
            raise RuntimeError(f"{what} needs an optimizer; this engine was built forward_only (reference)")

    def _dp_all_reduce(self, t: torch.Tensor, op=dist.ReduceOp.SUM) -> torch.Tensor:
        if self.dp_size > 1:
            dist.all_reduce(t, op=op, group=self.ps.get_data_parallel_group())
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

    def _optimizer_step(self, micro: List[B.Batch], loss_fn) -> Tuple[float, float]:
        """Forward/backward over ``micro`` then one optimizer step; returns (grad_norm, lr used)."""
        self.onload()  # state parked for the rollout (or weight sync) comes back before training
        self.model.train()
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        self._run_schedule(micro, loss_fn, forward_only=False)
        lr = float(self.optimizer.param_groups[0]["lr"])
        ok, grad_norm, _ = self.optimizer.step()
        if ok:
            self.scheduler.step(increment=1)
            self.step += 1
        return float(grad_norm if grad_norm is not None else float("nan")), lr

    def update(self, batch: B.Batch, loss_config, *, num_mini_batches: int = 1, epochs: int = 1,
               shuffle: bool = False, micro_batch_size: Optional[int] = None) -> Dict[str, float]:
        """The GRPO actor update on this DP rank's rows; returns metrics reduced over all DP ranks.

        The local rows are cut into ``num_mini_batches`` consecutive chunks (the same count on every
        DP rank; global mini-batch k = chunk k of every rank, see ``batch.dp_shard_indices``), one
        optimizer step each, repeated ``epochs`` times (``shuffle``: a seeded permutation per epoch).
        With one mini-batch and one epoch the data is exactly on-policy: ``old_log_probs`` is
        ignored and the current log-probs (detached) are used, so the ratio is exactly 1.
        """
        self._require_optimizer("update")
        B.check_batch(batch, B.REQUIRED_KEYS + ("advantages",))
        if loss_config.use_kl_loss and batch.get("ref_log_probs") is None:
            raise KeyError("loss config has use_kl_loss=true but the batch has no 'ref_log_probs'")
        if num_mini_batches < 1 or epochs < 1:
            raise ValueError(f"num_mini_batches={num_mini_batches} and epochs={epochs} must be >= 1")
        on_policy = num_mini_batches == 1 and epochs == 1
        n = batch["input_ids"].shape[0]
        with_entropy = self.config.compute_entropy or loss_config.entropy_coeff != 0
        records, steps = [], []
        for epoch in range(epochs):
            gen = torch.Generator().manual_seed(self.config.seed * 1000003 + self.step * 101 + epoch) if shuffle else None
            for idx in B.mini_batch_indices(n, num_mini_batches, gen):
                mini = B.select_rows(batch, idx)
                norm = self._global_normalizers(mini["response_mask"], loss_config.loss_norm_length)
                micro, _ = self._micro_batches(mini, self.config.max_tokens_per_micro_batch, micro_batch_size)
                scale = float(len(micro) * self.dp_size)  # undo the schedule's 1/M and DDP's 1/dp
                loss_fn = functools.partial(self._grpo_loss, loss_config, norm, scale, on_policy, with_entropy,
                                            records)
                grad_norm, lr = self._optimizer_step(micro, loss_fn)
                steps.append({"grad_norm": grad_norm, "lr": lr})
        metrics = self._reduce_records(records, LOSS_METRICS)
        metrics["grad_norm"] = sum(s["grad_norm"] for s in steps) / len(steps)
        metrics["lr"] = steps[-1]["lr"]
        metrics["num_optimizer_steps"] = float(len(steps))
        return metrics

    def _grpo_loss(self, loss_config, norm, scale, on_policy, with_entropy, records, mb, logits):
        from mindspeed_rl.algorithms import compute_grpo_loss

        lp, ent = self._token_log_probs(logits, mb, with_entropy)
        dev = lp.device

        def get(key):
            v = mb.get(key)
            return None if v is None else v.to(dev)

        loss, metrics = compute_grpo_loss(
            lp, get("advantages"), get("response_mask"), loss_config,
            old_log_prob=None if on_policy else get("old_log_probs"), ref_log_prob=get("ref_log_probs"),
            entropy=ent, normalizers=norm, loss_scale=scale,
        )
        records.append(metrics)
        return loss, {}

    def sft_step(self, batch: B.Batch, micro_batch_size: Optional[int] = None) -> Dict[str, float]:
        """One supervised step: masked token-mean NLL of the response tokens over the global batch."""
        from mindspeed_rl.algorithms import WeightedMetric

        self._require_optimizer("sft_step")
        B.check_batch(batch)
        norm = self._global_normalizers(batch["response_mask"], None)
        micro, _ = self._micro_batches(batch, self.config.max_tokens_per_micro_batch, micro_batch_size)
        scale = float(len(micro) * self.dp_size)
        records: list = []

        def loss_fn(mb, logits):
            lp, _ = self._token_log_probs(logits, mb, False, temperature=False)
            mask = mb["response_mask"].to(lp.device).bool()
            nll = torch.where(mask, -lp, torch.zeros((), device=lp.device)).sum()
            records.append({"sft_loss": WeightedMetric.from_parts(nll, mask.sum())})
            return nll / max(norm.num_tokens, 1.0) * scale, {}

        grad_norm, lr = self._optimizer_step(micro, loss_fn)
        metrics = self._reduce_records(records, ("sft_loss",))
        metrics.update(grad_norm=grad_norm, lr=lr)
        return metrics

    def _reduce_records(self, records, names) -> Dict[str, float]:
        """Exact weighted reduction over micro-batches and DP ranks; the result is on every rank."""
        from mindspeed_rl.algorithms import finalize_metric_sums, metric_sums, pack_metric_sums, unpack_metric_sums

        owner = self.is_last_stage and self.tp_rank == 0  # one copy of each DP rank's metrics
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

        for bucket in iter_hf_weights(unwrap(self.model), self.bridge, self.padded_vocab, self.config.num_layer_list,
                                      bucket_bytes=bucket_bytes, dtype=self.config.torch_dtype):
            yield from bucket
