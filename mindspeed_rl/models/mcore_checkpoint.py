"""The Megatron checkpoint format this project writes and loads (Megatron's legacy layout).

::

    SAVE_DIR/
      latest_checkpointed_iteration.txt       # "1"
      convert_meta.json                       # architecture, tp, pp, num_layer_list, padded vocab,
                                              # dtype, HF config (so mcore2hf is self-contained)
      hf_config/                              # config.json, generation_config.json, tokenizer files
      iter_0000001/
        mp_rank_{tp:02d}/model_optim_rng.pt           # when pp == 1
        mp_rank_{tp:02d}_{pp:03d}/model_optim_rng.pt  # when pp > 1

Each ``model_optim_rng.pt`` (``torch.load(..., weights_only=True)`` works) holds::

    {'model': state dict of the megatron-core GPTModel on that rank: canonical local-spec names
              (``decoder.layers.{local}.input_layernorm.weight`` ...), layer index local to the
              stage, tensors of the TP shard, no ``_extra_state`` entries,
     'checkpoint_version': 3.0, 'iteration': 1,
     'mindspeed_rl': {... convert_meta.json ..., 'tp_rank', 'pp_rank', 'layers': [first, stop)}}

A checkpoint written by MindSpeed-LLM / Megatron's own converter has the same ``iter_*/mp_rank_*``
layout but no ``convert_meta.json``: ``read_meta(root, hf_config=...)`` then infers the layout from
the rank files and takes the architecture from the given HF config (``infer_legacy_meta``); rank
files in TE names (``linear_qkv.layer_norm_weight``) with ``_extra_state`` and an ``args`` namespace
load too.

Rank files are written streaming: ``torch.save`` under ``torch.serialization.skip_data`` lays out
the zip with empty tensor records, then each shard's bytes are written in place as they are
produced and the zip CRCs are patched, so a rank file is never held in memory whole.
"""
from __future__ import annotations

import json
import os
import re
import struct
import zipfile
import zlib
from typing import Any, Optional

import torch

from mindspeed_rl.models import naming
from mindspeed_rl.models.errors import CheckpointError

from mindspeed_rl.utils.fs import TRACKER_FILE as TRACKER  # noqa: F401 - re-exported
from mindspeed_rl.utils.fs import TrackerError, tracker_path
from mindspeed_rl.utils.fs import read_tracker as _read_tracker_file

META = "convert_meta.json"
HF_CONFIG_DIR = "hf_config"
CHECKPOINT_VERSION = 3.0
RANK_FILE = "model_optim_rng.pt"


# The names convert_meta.json gives parameter dtypes (written by the converter, read back here).
DTYPE_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}
RELEASE = "release"  # Megatron's tracker text (and directory) for a converted, iteration-less checkpoint


def iteration_dir(root: str, iteration) -> str:
    return os.path.join(root, RELEASE if iteration == RELEASE else f"iter_{iteration:07d}")


def rank_file(root: str, iteration, tp_rank: int, pp_rank: int, pp: int) -> str:
    sub = f"mp_rank_{tp_rank:02d}" if pp == 1 else f"mp_rank_{tp_rank:02d}_{pp_rank:03d}"
    return os.path.join(iteration_dir(root, iteration), sub, RANK_FILE)


def read_tracker(root: str, allow_release: bool = False):
    if allow_release:
        try:
            if tracker_path(root).read_text(encoding="utf-8").strip() == RELEASE:
                return RELEASE
        except (OSError, UnicodeDecodeError):
            pass  # reported below, with the shared wording
    try:
        iteration = _read_tracker_file(root)
    except TrackerError as exc:
        raise CheckpointError(str(exc)) from None
    if iteration is None:
        raise CheckpointError(f"{tracker_path(root)}: missing; {root} is not a finished Megatron checkpoint")
    return iteration


def read_meta(root: str, hf_config=None) -> dict:
    """The checkpoint's ``convert_meta.json``; without one, the layout of a legacy Megatron checkpoint
    (MindSpeed-LLM's converter) inferred from its rank files, when ``hf_config`` (a dict or an HF
    directory) gives the architecture."""
    path = os.path.join(root, META)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged ({exc}); convert the checkpoint again") from None
    except OSError:
        pass
    if hf_config is None or not os.path.isfile(os.path.join(root, TRACKER)):
        raise CheckpointError(
            f"{path}: missing; was {root} written by tools/convert/convert_ckpt.py? A checkpoint converted by "
            "MindSpeed-LLM (iter_*/mp_rank_* without this file) loads when the model's HF config is given "
            "(training: model.hf_config_dir or megatron_training.tokenizer_name_or_path; mcore2hf: --hf-config-dir)")
    return infer_legacy_meta(root, hf_config)


MP_RANK_RE = _MP_RANK = re.compile(r"^mp_rank_(\d{2})(?:_(\d{3}))?$")


def load_legacy_rank(path: str, mmap: bool = True) -> dict:
    """A rank file written by Megatron: weights only, but its ``args`` is an argparse.Namespace
    (allowed through ``torch.serialization.safe_globals``; any other object is refused, naming the file)."""
    import argparse

    with torch.serialization.safe_globals([argparse.Namespace]):
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as exc:  # noqa: BLE001 - an unpickling error names the global it refused
            raise CheckpointError(f"{path}: cannot be read as weights only ({str(exc).splitlines()[0]}); "
                                  "re-save it with tensors and plain values only") from None


def canonical_state_dict(model_sd: dict) -> dict:
    """Canonical local-spec names, without TE ``_extra_state`` entries."""
    return {naming.from_te_name(k): v for k, v in model_sd.items()
            if not naming.is_extra_state(k) and isinstance(v, torch.Tensor)}


def infer_legacy_meta(root: str, hf_config, iteration=None) -> dict:
    """tp, pp, num_layer_list, padded vocab and dtype of a legacy checkpoint, read from its rank files
    (at ``iteration``, an int or ``"release"``; default: the tracker's)."""
    from mindspeed_rl.models import get_bridge

    if iteration is None:
        iteration = read_tracker(root, allow_release=True)
    it_dir = iteration_dir(root, iteration)
    ranks = [m for m in (_MP_RANK.match(d) for d in (os.listdir(it_dir) if os.path.isdir(it_dir) else [])) if m]
    if not ranks:
        raise CheckpointError(f"{it_dir}: no mp_rank_* directories; not a Megatron checkpoint")
    tp = len({m.group(1) for m in ranks})
    pp = len({m.group(2) for m in ranks}) if ranks[0].group(2) is not None else 1
    counts, padded, dtype = [], None, None
    for pp_rank in range(pp):
        path = rank_file(root, iteration, 0, pp_rank, pp)
        if not os.path.isfile(path):
            raise CheckpointError(f"{path}: missing rank file (the checkpoint has tp={tp} pp={pp})")
        sd = canonical_state_dict(load_legacy_rank(path).get("model", {}))
        counts.append(len({naming.layer_index(k) for k in sd if naming.layer_index(k) is not None}))
        emb = sd.get("embedding.word_embeddings.weight")
        if emb is not None:
            padded, dtype = int(emb.shape[0]) * tp, emb.dtype
    if padded is None:
        raise CheckpointError(f"{root}: no embedding.word_embeddings.weight on the first stage")
    bridge = get_bridge(hf_config)  # a transformers config, dict or HF directory

    return {"format": "megatron-legacy", "architecture": type(bridge).architectures[0], "tp": tp, "pp": pp,
            "num_layer_list": counts, "padded_vocab_size": padded, "params_dtype": DTYPE_NAMES.get(dtype, str(dtype)),
            "iteration": iteration, "layer_numbering": "local", "hf_config": bridge.hf_config, "inferred": True}


class StreamingRankFile:
    """A ``model_optim_rng.pt`` whose tensors are filled in one at a time after the layout is saved."""

    def __init__(self, path: str, shapes: dict[str, tuple[tuple[int, ...], torch.dtype]], extra: dict[str, Any]):
        self.path = path
        # torch.empty is never touched here, so these allocations cost no resident memory.
        model = {name: torch.empty(shape, dtype=dtype) for name, (shape, dtype) in shapes.items()}
        obj = {"model": model, **extra}
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with torch.serialization.skip_data():
            torch.save(obj, path)
        # Storage records are keyed in pickling order, which is the insertion order of ``model``.
        with zipfile.ZipFile(path) as zf:
            self._cd_start = zf.start_dir
            infos = {i.filename.split("/data/", 1)[1]: i for i in zf.infolist() if "/data/" in i.filename}
        if len(infos) != len(model):
            raise RuntimeError(f"{path}: {len(infos)} storage records for {len(model)} tensors")
        self._slots: dict[str, tuple[int, int, str]] = {}
        with open(path, "rb") as f:
            for key, (name, t) in enumerate(model.items()):
                info = infos[str(key)]
                if info.file_size != t.nbytes:
                    raise RuntimeError(f"{path}: record {key} has {info.file_size} bytes, {name} needs {t.nbytes}")
                f.seek(info.header_offset + 26)
                n, m = struct.unpack("<HH", f.read(4))
                self._slots[name] = (info.header_offset + 30 + n + m, t.nbytes, info.filename)
        self._expected = {name: (tuple(t.shape), t.dtype) for name, t in model.items()}
        self._crcs: dict[str, int] = {}
        self._f = open(path, "r+b")

    def nbytes(self, name: str) -> int:
        return self._slots[name][1]

    def write(self, name: str, tensor) -> None:
        """Write tensor ``name``: one tensor of its shape, or pieces (any iterable, consumed lazily)
        whose bytes concatenate to it."""
        shape, dtype = self._expected[name]
        if isinstance(tensor, torch.Tensor):
            if tuple(tensor.shape) != shape:
                raise RuntimeError(f"{self.path}: {name} expects shape {shape}, got {tuple(tensor.shape)}")
            tensor = [tensor]
        offset, nbytes, fname = self._slots[name]
        self._f.seek(offset)
        crc, written = 0, 0
        for p in tensor:
            if p.dtype != dtype or written + p.nbytes > nbytes:
                raise RuntimeError(f"{self.path}: {name} expects {nbytes} bytes of {dtype}; got a piece of "
                                   f"{p.dtype} ending at byte {written + p.nbytes}")
            if hasattr(p, "copy_into"):  # a lazy byte range of the source file (hf_checkpoint.RowRange)
                crc = p.copy_into(self._f, crc)
            else:
                buf = memoryview(p.contiguous().reshape(-1).view(torch.uint8).numpy())
                self._f.write(buf)
                crc = zlib.crc32(buf, crc)
            written += p.nbytes
        if written != nbytes:
            raise RuntimeError(f"{self.path}: {name} expects {nbytes} bytes, got {written}")
        self._crcs[fname] = crc

    def close(self) -> None:
        """Patch the CRC of every record in its local header and in the central directory."""
        missing = [n for n, (_, _, fname) in self._slots.items() if fname not in self._crcs]
        if missing:
            self._f.close()
            raise RuntimeError(f"{self.path}: tensors never written: {missing[:5]}")
        f = self._f
        # local headers
        with zipfile.ZipFile(self.path) as zf:
            infos = {i.filename: i for i in zf.infolist()}
        for fname, crc in self._crcs.items():
            f.seek(infos[fname].header_offset + 14)
            f.write(struct.pack("<I", crc))
        # central directory entries
        f.seek(self._cd_start)
        pos = self._cd_start
        while True:
            f.seek(pos)
            head = f.read(46)
            if len(head) < 46 or head[:4] != b"PK\x01\x02":
                break
            n, m, k = struct.unpack("<HHH", head[28:34])
            fname = f.read(n).decode()
            if fname in self._crcs:
                f.seek(pos + 16)
                f.write(struct.pack("<I", self._crcs[fname]))
            pos += 46 + n + m + k
        f.close()


def load_rank_state_dict(root: str, tp_rank: int, pp_rank: int, iteration: Optional[int] = None,
                         mmap: bool = True, hf_config=None) -> tuple[dict[str, torch.Tensor], dict]:
    """(canonical state dict, metadata) of one rank of a converted checkpoint (``hf_config``: see
    ``read_meta``)."""
    meta = read_meta(root, hf_config)
    iteration = read_tracker(root, allow_release=True) if iteration is None else iteration
    path = rank_file(root, iteration, tp_rank, pp_rank, int(meta["pp"]))
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: missing rank file (checkpoint has tp={meta['tp']} pp={meta['pp']})")
    if meta.get("inferred"):
        return canonical_state_dict(load_legacy_rank(path, mmap)["model"]), meta
    obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    return obj["model"], obj.get("mindspeed_rl", meta)


def load_into_model(model: torch.nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Load a canonical state dict into a local-spec or TE-spec GPTModel; strict on weights."""
    own = model.state_dict()
    te = any(k.endswith("layer_norm_weight") for k in own)
    mapped = {(naming.to_te_name(k) if te else k): v for k, v in state_dict.items()}
    missing = [k for k in own if k not in mapped and not naming.is_extra_state(k)]
    unexpected = [k for k in mapped if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]} "
            "(wrong tp/pp/num_layer_list or model config?)"
        )
    model.load_state_dict(mapped, strict=False)  # only _extra_state entries can be missing here


def load_rank_checkpoint(model: torch.nn.Module, root: str, tp_rank: int, pp_rank: int,
                         iteration: Optional[int] = None, hf_config=None) -> dict:
    """Load this rank's shard of a converted checkpoint into ``model``; returns the metadata."""
    sd, meta = load_rank_state_dict(root, tp_rank, pp_rank, iteration, hf_config=hf_config)
    load_into_model(model, sd)
    return meta
