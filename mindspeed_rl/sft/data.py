"""SFT rows -> token ids with a loss mask on the assistant's tokens only.

Two row shapes (keys from ``SFTDataConfig``):

* ``{prompt, response}``: the prompt (text, or chat messages) is rendered with the template and
  its generation prompt, exactly as a rollout sees it; the response is learned, plus the
  template's end-of-turn token (the rollout stops on it, so the model must learn to emit it).
  ``cli/generate.py`` writes this shape.
* ``{messages: [{role, content}, ...]}``: a whole conversation; every assistant turn's content
  and end-of-turn token are learned, the system/user turns and the assistant turn headers are not.

Each turn is tokenised on its own (as the rollout tokenises the prompt, then emits the response's
ids), so the prompt ids are the ones generation conditions on. The engine's response span starts
at the first learned token and runs to the row's end (``response_mask``, contiguous: it locates
the span); ``loss_mask`` marks the learned tokens inside it.

A row longer than ``seq_length`` is refused, naming its file and row (and how many others are too
long), unless ``truncate`` cuts it at the end.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from mindspeed_rl.data.templates import PLACEHOLDER, ChatTemplate, load_template


class SFTDataError(ValueError):
    """A data row cannot be trained on; the message names the file, the row and the fix."""


@dataclass(frozen=True)
class SFTExample:
    prompt_ids: List[int]  # conditioned on, never learned
    response_ids: List[int]  # from the first learned token to the end of the row
    loss_mask: List[int]  # 1 on the learned (assistant) tokens of response_ids
    where: str  # "file row N", for messages

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.response_ids)


def end_of_turn(template: ChatTemplate, tokenizer) -> str:
    """The text that ends an assistant turn: the template's first stop word that is one token of
    the tokenizer (Qwen: ``<|im_end|>``), else the tokenizer's EOS."""
    for word in template.stop_words:
        if len(tokenizer.encode(word, add_special_tokens=False)) == 1:
            return word
    if tokenizer.eos_token is None:
        raise SFTDataError(f"template {template.name!r} has no single-token stop word and the tokenizer no EOS: "
                           "an SFT response could not end")
    return tokenizer.eos_token


def _assistant_parts(template: ChatTemplate, content: str) -> Tuple[str, str, str]:
    """(header, learned, trailer) of one assistant turn: the format's text before ``{content}``,
    the content plus the turn's end (the trailer's text up to trailing whitespace), the rest."""
    head, tail = template.assistant_format.split(PLACEHOLDER, 1)
    end = tail.rstrip()
    return head, content + end, tail[len(end):]


def conversation_segments(template: ChatTemplate, messages: Sequence[Dict[str, Any]],
                          system: Optional[str] = None) -> List[Tuple[str, bool]]:
    """``[(text, learned)]`` whose texts concatenate to ``template.render(messages,
    add_generation_prompt=False)``; ``learned`` on each assistant turn's content and end."""
    turns = list(messages)
    if turns and turns[0].get("role") == "system":
        system, turns = turns[0].get("content"), turns[1:]
    elif system is None:
        system = template.default_system
    out: List[Tuple[str, bool]] = []
    if system is not None:
        out.append((template.system_format.replace(PLACEHOLDER, system), False))
    first_user = True
    for i, turn in enumerate(turns):
        role, content = turn.get("role"), turn.get("content")
        if not isinstance(content, str):
            raise SFTDataError(f"message {i} content is {type(content).__name__}, not str")
        if role == "user":
            if first_user:
                content, first_user = template.user_prefix + content + template.user_suffix, False
            out.append((template.user_format.replace(PLACEHOLDER, content), False))
        elif role == "assistant":
            head, learned, trailer = _assistant_parts(template, content)
            out += [(head, False), (learned, True), (trailer, False)]
        else:
            raise SFTDataError(f"message {i} has role {role!r}; expected user or assistant "
                               "(a system message may only come first)")
    return [(text, learned) for text, learned in out if text]


def _encode(tokenizer, text: str) -> List[int]:
    return list(tokenizer.encode(text, add_special_tokens=False)) if text else []


def encode_row(row: Dict[str, Any], cfg, template: ChatTemplate, tokenizer, where: str) -> SFTExample:
    """One row as an ``SFTExample`` (not yet length-checked)."""
    if isinstance(row.get(cfg.messages_key), list):
        segments = conversation_segments(template, row[cfg.messages_key], cfg.system)
        if not any(learned for _, learned in segments):
            raise SFTDataError(f"{where}: the conversation has no assistant turn to learn")
        prompt: List[int] = []
        response: List[int] = []
        mask: List[int] = []
        for text, learned in segments:
            ids = _encode(tokenizer, text)
            if not learned and not response:
                prompt += ids
            else:
                response += ids
                mask += [int(learned)] * len(ids)
        return SFTExample(prompt, response, mask, where)
    missing = [k for k in (cfg.prompt_key, cfg.response_key) if row.get(k) is None]
    if missing:
        raise SFTDataError(f"{where}: no {missing} and no {cfg.messages_key!r} list; rows need "
                           f"{{{cfg.prompt_key}, {cfg.response_key}}} or {{{cfg.messages_key}: [...]}} "
                           "(set data.prompt_key / data.response_key / data.messages_key)")
    response_text = row[cfg.response_key]
    if not isinstance(response_text, str):
        raise SFTDataError(f"{where}: {cfg.response_key} is {type(response_text).__name__}, not str")
    end = end_of_turn(template, tokenizer)
    if not response_text.endswith(end):
        response_text += end
    prompt_ids = _encode(tokenizer, template.render(row[cfg.prompt_key], system=cfg.system))
    response_ids = _encode(tokenizer, response_text)
    return SFTExample(prompt_ids, response_ids, [1] * len(response_ids), where)


def fit_length(ex: SFTExample, seq_length: int, truncate: bool) -> SFTExample:
    """``ex`` when it fits; cut at the end when ``truncate``; else ``SFTDataError``."""
    if len(ex) <= seq_length:
        return ex
    if not truncate:
        raise SFTDataError(f"{ex.where}: {len(ex)} tokens (prompt {len(ex.prompt_ids)}, response "
                           f"{len(ex.response_ids)}) > data.seq_length={seq_length}")
    keep = seq_length - len(ex.prompt_ids)
    mask = ex.loss_mask[:max(keep, 0)]
    if keep < 1 or not any(mask):
        raise SFTDataError(f"{ex.where}: the prompt alone is {len(ex.prompt_ids)} tokens, no learned token fits "
                           f"data.seq_length={seq_length} even with data.truncate=true; raise data.seq_length "
                           "or drop the row")
    return SFTExample(ex.prompt_ids, ex.response_ids[:keep], mask, ex.where)


def read_rows(path: str, fmt: str = "auto", max_rows: int = 0) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """``("<file> row <n>", row)`` for every row of ``path`` (a file or a glob)."""
    from mindspeed_rl.data.readers import expand_inputs, iter_rows

    for raw in iter_rows(expand_inputs(path), fmt, limit=max_rows or None):
        where = f"{raw.file} row {raw.row_in_file}"
        if raw.data is None:
            raise SFTDataError(f"{where}: {raw.error or 'unreadable row'}")
        yield where, raw.data


def load_examples(path: str, cfg, tokenizer, template: Optional[ChatTemplate] = None) -> List[SFTExample]:
    """Every row of ``path`` encoded and length-checked. Rows that are too long are all counted
    and the first few named in one error (``data.truncate=true`` cuts them instead)."""
    template = template or load_template(cfg.template, cfg.templates_path)
    examples, too_long = [], []
    for where, row in read_rows(path, cfg.format, getattr(cfg, "max_rows", 0)):
        ex = encode_row(row, cfg, template, tokenizer, where)
        try:
            examples.append(fit_length(ex, cfg.seq_length, cfg.truncate))
        except SFTDataError as exc:
            if cfg.truncate:
                raise
            too_long.append(str(exc))
    if too_long:
        shown = "\n  ".join(too_long[:5])
        raise SFTDataError(f"{len(too_long)} row(s) of {path} exceed data.seq_length={cfg.seq_length}:\n  {shown}\n"
                           "Fix: set data.truncate=true to cut them at the end, raise data.seq_length, "
                           "or filter the rows")
    if not examples:
        raise SFTDataError(f"{path}: no rows")
    return examples


def collate(examples: Sequence[SFTExample], pad_id: int) -> Dict[str, torch.Tensor]:
    """The engine's batch (``engine.batch``) plus ``loss_mask``, right-padded to the longest row."""
    n = len(examples)
    seq = max([len(e) for e in examples] + [2])
    width = max([len(e.response_ids) for e in examples] + [1])
    input_ids = torch.full((n, seq), int(pad_id), dtype=torch.long)
    attention = torch.zeros((n, seq), dtype=torch.long)
    response_mask = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.long)
    for i, e in enumerate(examples):
        ids = e.prompt_ids + e.response_ids
        input_ids[i, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, :len(ids)] = 1
        response_mask[i, :len(e.response_ids)] = 1
        loss_mask[i, :len(e.loss_mask)] = torch.tensor(e.loss_mask, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "response_mask": response_mask, "loss_mask": loss_mask}


def epoch_order(num_rows: int, seed: int, epoch: int) -> List[int]:
    """The rows of one epoch in a seeded order (the same on every rank; resuming recomputes it)."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    return torch.randperm(num_rows, generator=g).tolist()


def step_rows(num_rows: int, global_batch_size: int, seed: int, step: int) -> List[int]:
    """Row indices of optimizer step ``step`` (0-based): consecutive slices of the concatenated
    seeded epochs, so a step's rows depend only on (seed, step) and a resumed run sees the rest."""
    start = step * global_batch_size
    out: List[int] = []
    while len(out) < global_batch_size:
        epoch, offset = divmod(start + len(out), num_rows)
        order = epoch_order(num_rows, seed, epoch)
        out += order[offset:offset + global_batch_size - len(out)]
    return out

