"""HF transformers rollout backend: our own KV-cached sampling loop over a causal LM.

Why not ``model.generate``: it cannot report the sampled tokens' log-probs under the
temperature-scaled, untruncated distribution (see ``base``), does not give one seeded generator
per call, and stops on the model's own EOS. The loop below uses the HF model with
``past_key_values`` exactly as ``generate`` does (prefill once, one token per step), and:

- left-pads batched prompts (attention mask + explicit position ids), so a prompt's result does
  not depend on the other prompts in its batch beyond floating-point noise;
- prefills each prompt ONCE and repeats its KV cache n times for the n samples;
- drops finished rows from the batch (and from the KV cache), so per-sequence stopping costs no
  compute for sequences already done.
"""
from __future__ import annotations

import gc
from typing import Iterable, Sequence

import torch

from mindspeed_rl.engine.rollout.base import RolloutEngine, RolloutOutput, SamplingParams
from mindspeed_rl.engine.rollout.sampling import sample_next_tokens


def _default_device() -> torch.device:
    from mindspeed_rl.platform import current_platform  # the platform room owns placement

    return current_platform().device()


def _empty_device_cache() -> None:
    from mindspeed_rl.platform import current_platform

    gc.collect()
    current_platform().empty_cache()


class HFRolloutEngine(RolloutEngine):
    """Rollout engine over a ``transformers`` causal LM (Qwen2 and any other decoder-only model).

    Args:
        model: an already built ``PreTrainedModel`` (e.g. ``Qwen2ForCausalLM(config)``), or
        model_path: a local HF checkpoint directory (never fetched from the Hub).
        dtype: dtype to load ``model_path`` in / cast ``model`` to (None keeps it).
        device: where to run (default: the platform's device, CPU without one).
        max_batch_size: upper bound on rows (prompts x n) decoded together.
    """

    def __init__(
        self,
        model=None,
        model_path: str | None = None,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str | None = None,
        max_batch_size: int = 64,
    ) -> None:
        if (model is None) == (model_path is None):
            raise ValueError("HFRolloutEngine needs exactly one of model= or model_path=")
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if model is None:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(
                model_path, dtype=dtype, local_files_only=True
            )
        elif dtype is not None:
            model = model.to(dtype)
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        self.max_batch_size = int(max_batch_size)
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        # name -> tensor to copy into (tied weights appear under both names, same storage).
        self._targets = dict(self.model.state_dict(keep_vars=True))
        self._asleep = False
        self._closed = False

    # ------------------------------------------------------------------ generation
    def generate(
        self, prompt_token_ids: Sequence[Sequence[int]], sampling: SamplingParams
    ) -> list[list[RolloutOutput]]:
        self._check_usable()
        prompts = [list(map(int, p)) for p in prompt_token_ids]
        for i, p in enumerate(prompts):
            if not p:
                raise ValueError(f"prompt {i} is empty: every prompt needs at least one token")
            bad = [t for t in p if not 0 <= t < self.vocab_size]
            if bad:
                raise ValueError(
                    f"prompt {i} has token ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}"
                )
        results: list[list[RolloutOutput]] = [[] for _ in prompts]
        if not prompts:
            return results
        generator = torch.Generator(device=self.device)
        # No seed: derive one from the process RNG so torch.manual_seed still controls the run.
        seed = sampling.seed if sampling.seed is not None else int(torch.randint(0, 2**62, ()).item())
        generator.manual_seed(seed)
        per_chunk = max(1, self.max_batch_size // sampling.n)
        with torch.inference_mode():
            for start in range(0, len(prompts), per_chunk):
                idx = list(range(start, min(start + per_chunk, len(prompts))))
                for out in self._generate_chunk([prompts[i] for i in idx], idx, sampling, generator):
                    results[out.prompt_index].append(out)
        for group in results:
            group.sort(key=lambda o: o.sample_index)
        return results

    def _generate_chunk(self, prompts, prompt_indices, sampling: SamplingParams, generator):
        n, dev = sampling.n, self.device
        lengths = [len(p) for p in prompts]
        width = max(lengths)
        input_ids = torch.zeros(len(prompts), width, dtype=torch.long)
        attention = torch.zeros(len(prompts), width, dtype=torch.long)
        for row, p in enumerate(prompts):  # left padding: the last column is every prompt's last token
            input_ids[row, width - len(p):] = torch.tensor(p)
            attention[row, width - len(p):] = 1
        input_ids, attention = input_ids.to(dev), attention.to(dev)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        cache = out.past_key_values
        logits = out.logits[:, -1, :]
        next_pos = positions[:, -1] + 1
        if n > 1:  # share the prefill among the n samples of each prompt
            cache.batch_repeat_interleave(n)
            logits = logits.repeat_interleave(n, 0)
            attention = attention.repeat_interleave(n, 0)
            next_pos = next_pos.repeat_interleave(n, 0)
        rows = [(pi, s) for pi in prompt_indices for s in range(n)]  # active row -> (prompt, sample)
        tokens_so_far: list[list[int]] = [[] for _ in rows]
        logprobs_so_far: list[list[float]] = [[] for _ in rows]
        row_ids = list(range(len(rows)))  # active row -> index into rows
        stop_ids = torch.tensor(sampling.stop_token_ids or [-1], device=dev)
        finished: list[RolloutOutput] = []
        for step in range(sampling.max_tokens):
            tokens, logprobs = sample_next_tokens(logits, sampling, generator)
            tok_list, lp_list = tokens.tolist(), logprobs.tolist()
            for a, r in enumerate(row_ids):
                tokens_so_far[r].append(tok_list[a])
                logprobs_so_far[r].append(lp_list[a])
            stopped = torch.isin(tokens, stop_ids)
            last_step = step == sampling.max_tokens - 1
            keep = []
            for a, r in enumerate(row_ids):
                if bool(stopped[a]) or last_step:
                    pi, s = rows[r]
                    finished.append(
                        RolloutOutput(
                            prompt_index=pi,
                            sample_index=s,
                            token_ids=tokens_so_far[r],
                            logprobs=logprobs_so_far[r] if sampling.logprobs else None,
                            finish_reason="stop" if bool(stopped[a]) else "length",
                        )
                    )
                else:
                    keep.append(a)
            if not keep:
                break
            if len(keep) < len(row_ids):  # drop finished rows from the batch and the KV cache
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                tokens, attention, next_pos = tokens[sel], attention[sel], next_pos[sel]
                row_ids = [row_ids[a] for a in keep]
            attention = torch.cat([attention, attention.new_ones(len(row_ids), 1)], dim=1)
            out = self.model(
                input_ids=tokens.unsqueeze(-1),
                attention_mask=attention,
                position_ids=next_pos.unsqueeze(-1),
                past_key_values=cache,
                use_cache=True,
            )
            cache = out.past_key_values
            logits = out.logits[:, -1, :]
            next_pos = next_pos + 1
        return finished

    # ------------------------------------------------------------------ weights
    def update_weights(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> int:
        """Copy HF-named tensors into the model's existing parameters, in place (no re-allocation,
        so optimiser-free references such as tied weights stay shared). Works asleep or awake."""
        self._check_open()
        count = 0
        with torch.no_grad():
            for name, tensor in named_tensors:
                target = self._targets.get(name)
                if target is None:
                    raise KeyError(
                        f"update_weights: {name!r} is not a parameter of the rollout model "
                        f"({type(self.model).__name__}); expected HF names such as "
                        f"{next(iter(self._targets))!r}"
                    )
                if tuple(target.shape) != tuple(tensor.shape):
                    raise ValueError(
                        f"update_weights: {name!r} has shape {tuple(tensor.shape)}, the rollout "
                        f"model expects {tuple(target.shape)}"
                    )
                target.copy_(tensor)
                count += 1
        return count

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's HF-named tensors (for checks and tests)."""
        return self.model.state_dict()

    # ------------------------------------------------------------------ memory
    def sleep(self) -> None:
        self._check_open()
        if self._asleep:
            return
        if self.device.type != "cpu":  # on the host already there is nothing to release
            self.model.to("cpu")
            self._targets = dict(self.model.state_dict(keep_vars=True))
            _empty_device_cache()
        self._asleep = True

    def wake_up(self, tags: Sequence[str] | None = None) -> None:
        # Only weights live on the device between calls (the KV cache is per generate call),
        # so every tag wakes the weights.
        self._check_open()
        if not self._asleep:
            return
        if self.device.type != "cpu":
            self.model.to(self.device)
            self._targets = dict(self.model.state_dict(keep_vars=True))
        self._asleep = False

    @property
    def is_sleeping(self) -> bool:
        return self._asleep

    def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._targets = {}
        self.model = None
        _empty_device_cache()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("rollout engine was shut down")

    def _check_usable(self) -> None:
        self._check_open()
        if self._asleep:
            raise RuntimeError("rollout engine is asleep: call wake_up() before generate()")
