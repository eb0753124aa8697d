"""Streaming HF <-> Megatron checkpoint conversion (the engine of tools/convert/convert_ckpt.py).

Both directions validate everything first (files, shapes, architecture, parallel sizes), then
write into a temporary sibling directory that is renamed into place at the end, so an
interrupted run leaves nothing that looks finished. Memory stays near one TP shard (hf2mcore) or
one tensor (mcore2hf): tensors are read by row range and written in place as they are produced.
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from typing import Iterator, Optional, Sequence

import torch

from mindspeed_rl.models import get_bridge
from mindspeed_rl.models import mcore_checkpoint as mc
from mindspeed_rl.models.background_writer import BackgroundWriter
from mindspeed_rl.models.errors import CheckpointError
from mindspeed_rl.models.hf_checkpoint import (
    INDEX_NAME,
    HFCheckpointReader,
    SafetensorsStreamWriter,
    dtype_from_str,
    materialize,
)
from mindspeed_rl.models.sources import SIDE_DIR, open_megatron_checkpoint
from mindspeed_rl.utils.fs import atomic_dir, check_output_dir, remove_stale_temp, write_tracker

# Read/write granularity for big tensors. Above glibc's largest dynamic mmap threshold (32 MiB),
# so each chunk is its own mapping and goes back to the OS when freed instead of staying in the heap.
CHUNK_BYTES = 48 * 2**20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")
DTYPE_NAMES = mc.DTYPE_NAMES


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024, disable=quiet,
                dynamic_ncols=True)


@contextmanager
def atomic_output_dir(target: str, overwrite: bool) -> Iterator[str]:
    """Yield a temporary directory that becomes ``target`` only if the block finishes."""
    target = os.path.abspath(target)
    if os.path.exists(target):
        if not os.path.isdir(target):
            raise CheckpointError(f"{target}: exists and is not a directory")
        if os.listdir(target) and not overwrite:
            raise CheckpointError(f"{target}: not empty; pass --overwrite to replace it")
    parent = os.path.dirname(target)
    unwritable = check_output_dir(parent, "output directory")
    if unwritable:
        raise CheckpointError(f"{unwritable}; choose a writable place for {target}")
    remove_stale_temp(parent, os.path.basename(target))  # a killed conversion's half-written copy
    with atomic_dir(target) as tmp:
        yield tmp


def copy_side_files(src: str, dst: str) -> list[str]:
    """config.json, generation config, tokenizer files: everything small that is not weights."""
    copied = []
    os.makedirs(dst, exist_ok=True)
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name)
        if not os.path.isfile(path) or name.endswith(WEIGHT_SUFFIXES) or name == INDEX_NAME:
            continue
        if name.startswith(".") or os.path.getsize(path) > 256 * 2**20:
            continue
        shutil.copy2(path, os.path.join(dst, name))
        copied.append(name)
    return copied


def hf_to_mcore(
    load_dir: str,
    save_dir: str,
    tp: int = 1,
    pp: int = 1,
    num_layer_list: Optional[Sequence[int]] = None,
    params_dtype: Optional[str] = None,
    make_vocab_size_divisible_by: int = 128,
    iteration: int = 1,
    overwrite: bool = False,
    quiet: bool = False,
) -> dict:
    """Convert a HF safetensors checkpoint into Megatron rank files; returns the metadata."""
    num_layer_list = list(num_layer_list) if num_layer_list else None
    bridge = get_bridge(load_dir)
    bridge.validate_parallelism(tp, pp, num_layer_list)
    reader = HFCheckpointReader(load_dir)
    reader.check_against(bridge.hf_shapes())
    src_dtype = reader.entries["model.embed_tokens.weight"].dtype
    dtype = dtype_from_str(params_dtype) if params_dtype else src_dtype
    padded = bridge.padded_vocab_size(tp, make_vocab_size_divisible_by)
    counts = bridge.layer_partition(pp, num_layer_list)
    meta = {
        "format": "megatron-legacy",
        "architecture": type(bridge).architectures[0],
        "tp": tp,
        "pp": pp,
        "num_layer_list": counts,
        "padded_vocab_size": padded,
        "make_vocab_size_divisible_by": make_vocab_size_divisible_by,
        "params_dtype": DTYPE_NAMES.get(dtype, str(dtype)),
        "iteration": iteration,
        "layer_numbering": "local",
        "converted_from": os.path.abspath(load_dir),
        "hf_config": bridge.hf_config,
    }
    plans = [bridge.stage_params(p, pp, padded, num_layer_list) for p in range(pp)]
    total = sum(
        int(torch.Size(s.layout.local_shape([reader.entries[n].shape for n in s.hf_names], tp)).numel())
        * dtype.itemsize * tp
        for plan in plans for s in plan
    )
    with reader, atomic_output_dir(save_dir, overwrite) as tmp, _progress(total, "hf2mcore", quiet) as bar, \
            BackgroundWriter() as bg:
        for pp_rank, plan in enumerate(plans):
            layers = bridge.layers_for_stage(pp_rank, pp, num_layer_list)
            shapes = {
                s.mcore_name: (s.layout.local_shape([reader.entries[n].shape for n in s.hf_names], tp), dtype)
                for s in plan
            }
            files = [
                mc.StreamingRankFile(
                    mc.rank_file(tmp, iteration, r, pp_rank, pp),
                    shapes,
                    {
                        "checkpoint_version": mc.CHECKPOINT_VERSION,
                        "iteration": iteration,
                        "mindspeed_rl": {**meta, "tp_rank": r, "pp_rank": pp_rank,
                                         "layers": [layers.start, layers.stop]},
                    },
                )
                for r in range(tp)
            ]
            for spec in plan:
                cache: dict[str, torch.Tensor] = {}  # whole tensors needed by every rank (row-parallel)

                def read(i, rows, spec=spec, cache=cache):
                    name = spec.hf_names[i]
                    if rows is not None:
                        return reader.lazy(name, rows)
                    if name not in cache:
                        cache[name] = reader.read(name)
                    return cache[name]

                for r in range(tp):
                    pieces = (p if p.dtype == dtype else materialize(p).to(dtype)
                              for p in spec.layout.read_local_pieces(read, tp, r, CHUNK_BYTES))
                    nbytes = files[r].nbytes(spec.mcore_name)
                    if nbytes <= CHUNK_BYTES:
                        pieces = list(pieces)  # produce here, write on the writer thread
                    bg.submit(files[r].write, spec.mcore_name, pieces, nbytes=nbytes)
                    bg.submit(bar.update, nbytes)
                    del pieces
                cache.clear()
            bg.drain()
            for f in files:
                f.close()
        with open(os.path.join(tmp, mc.META), "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=2)
        copy_side_files(load_dir, os.path.join(tmp, mc.HF_CONFIG_DIR))
        write_tracker(tmp, iteration)
    return meta


def _madvise_dontneed():
    try:
        import ctypes
        import mmap

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        return madvise, mmap.PAGESIZE, getattr(mmap, "MADV_DONTNEED", 4)
    except (OSError, AttributeError):  # not Linux/glibc: pages are simply kept until re-open
        return None


_MADVISE = _madvise_dontneed()


class _StageFiles:
    """The TP rank files of one pipeline stage, mmap-loaded and re-opened every ``budget`` bytes.

    Pages touched through an mmap stay resident until it is unmapped: ``drop`` hands the pages of
    tensors already written back to the kernel (they are clean private file pages, so reading
    them again would simply fault them back in from the file), and re-opening bounds the rest.
    """

    def __init__(self, source, pp_rank: int, budget: int):
        self.paths = [source.rank_path(r, pp_rank) for r in range(int(source.meta["tp"]))]
        self.load = source.load_model_state
        self.budget = budget
        self._sds = None
        self._touched = 0

    def check(self, expected: Sequence[str]) -> None:
        for path in self.paths:
            if not os.path.isfile(path):
                raise CheckpointError(f"{path}: missing rank file")
            try:
                sd = self.load(path)
            except CheckpointError:
                raise
            except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
                raise CheckpointError(f"{path}: unreadable Megatron rank file ({exc})") from None
            absent = [n for n in expected if n not in sd]
            if absent:
                raise CheckpointError(f"{path}: tensors missing: {absent[:5]} ({len(absent)} in all)")
            del sd

    def shards(self, name: str) -> list[torch.Tensor]:
        if self._sds is None or self._touched > self.budget:
            self._sds = None
            self._sds = [self.load(p) for p in self.paths]
            self._touched = 0
        out = [sd[name] for sd in self._sds]
        self._touched += sum(t.nbytes for t in out)
        return out

    def release(self) -> None:
        self._sds = None

    @staticmethod
    def drop(tensors) -> None:
        """Release the resident pages of mmap-backed ``tensors`` (only ever call on tensors from ``shards``)."""
        if _MADVISE is None:
            return
        madvise, page, flag = _MADVISE
        for t in tensors:
            start = t.data_ptr()
            a, b = -(-start // page) * page, (start + t.nbytes) // page * page  # whole pages only
            if b > a:
                madvise(a, b - a, flag)


def _row_chunks(t: torch.Tensor, max_bytes: int) -> list[torch.Tensor]:
    if t.dim() == 0 or t.nbytes <= max_bytes:
        return [t]
    rows = max(1, max_bytes // max(1, t[0].nbytes))
    return list(t.split(rows, dim=0))


def _plan_shards(entries: list[tuple[str, torch.dtype, tuple[int, ...]]], max_shard_bytes: int):
    shards, current, size = [], [], 0
    for e in entries:
        n = int(torch.Size(e[2]).numel()) * e[1].itemsize
        if current and size + n > max_shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append(e)
        size += n
    if current:
        shards.append(current)
    return shards


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "B": 1}
    t = text.strip().upper()
    for u in sorted(units, key=len, reverse=True):
        if t.endswith(u):
            return int(float(t[: -len(u)]) * units[u])
    return int(t)


def mcore_to_hf(
    load_dir: str,
    save_dir: str,
    hf_config_dir: Optional[str] = None,
    dtype: Optional[str] = None,
    max_shard_size: str = "5GB",
    iteration: Optional[int] = None,
    overwrite: bool = False,
    quiet: bool = False,
    read_budget: int = 256 * 2**20,
) -> dict:
    """Convert Megatron weights to HF safetensors: a converted checkpoint (``hf_to_mcore``), a GRPO
    run's save directory or one of its ``iter_N`` directories (``iteration`` picks one; default: the
    latest), or a legacy MindSpeed-LLM / Megatron checkpoint (needs ``hf_config_dir``), at the TP/PP
    layout they were written with."""
    source = open_megatron_checkpoint(load_dir, iteration, log=lambda *a: None if quiet else print(*a),
                                      hf_config=hf_config_dir)
    meta = source.meta
    side_dir = hf_config_dir or source.side_dir
    if source.kind == "run" and side_dir is None:
        raise CheckpointError(
            f"{source.weights_dir}: this run checkpoint has no {SIDE_DIR}/ with the tokenizer (saved before run "
            "checkpoints carried it); pass --hf-config-dir <the HF model / tokenizer directory the run trained from>")
    bridge = get_bridge(hf_config_dir if hf_config_dir else meta["hf_config"])
    tp, pp = int(meta["tp"]), int(meta["pp"])
    counts = meta.get("num_layer_list")
    bridge.validate_parallelism(tp, pp, counts)
    padded = int(meta["padded_vocab_size"])
    out_dtype = dtype_from_str(dtype) if dtype else dtype_from_str(meta["params_dtype"])
    plans = [[s for s in bridge.stage_params(p, pp, padded, counts)
              if not s.is_tied_copy]
             for p in range(pp)]
    stages = [_StageFiles(source, p, read_budget) for p in range(pp)]
    for stage, plan in zip(stages, plans):
        stage.check([s.mcore_name for s in plan])
    hf_shapes = bridge.hf_shapes()
    order = [(n, out_dtype, hf_shapes[n]) for plan in plans for s in plan for n in s.hf_names]
    shard_plan = _plan_shards(order, parse_size(max_shard_size))
    nshards = len(shard_plan)
    fname = (["model.safetensors"] if nshards == 1
             else [f"model-{i + 1:05d}-of-{nshards:05d}.safetensors" for i in range(nshards)])
    weight_map = {n: fname[i] for i, shard in enumerate(shard_plan) for n, _, _ in shard}
    total = sum(int(torch.Size(s).numel()) * d.itemsize for _, d, s in order)
    with atomic_output_dir(save_dir, overwrite) as tmp, _progress(total, "mcore2hf", quiet) as bar:
        shard_i, writer, left = -1, None, 0
        for stage, plan in zip(stages, plans):
            for spec in plan:
                shards = stage.shards(spec.mcore_name)
                tensors = spec.layout.hf_pieces(shards)
                for name, pieces in zip(spec.hf_names, tensors):
                    # ~32 MiB views, each released right after it is written: resident memory
                    # stays near one chunk even for the embedding.
                    pieces = [c for p in pieces for c in _row_chunks(p, 32 * 2**20)]
                    if left == 0:
                        if writer:
                            writer.close()
                        shard_i += 1
                        writer = SafetensorsStreamWriter(os.path.join(tmp, fname[shard_i]), shard_plan[shard_i],
                                                         {"format": "pt"})
                        left = len(shard_plan[shard_i])
                    writer.write(name, pieces, cast=out_dtype,
                                 on_written=lambda i, pieces=pieces: stage.drop([pieces[i]]))
                    left -= 1
                    bar.update(sum(p.numel() for p in pieces) * out_dtype.itemsize)
                stage.drop(shards)
                del tensors, shards
            stage.release()
        writer.close()
        if nshards > 1:
            with open(os.path.join(tmp, INDEX_NAME), "w", encoding="utf-8") as f:
                json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        copied = copy_side_files(side_dir, tmp) if side_dir and os.path.isdir(side_dir) else []
        if "config.json" not in copied:
            cfg = dict(meta["hf_config"])
            with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
                json.dump(cfg, f, indent=2)
        _set_config_dtype(os.path.join(tmp, "config.json"), out_dtype)
        if source.kind == "run":
            write_generation_config(tmp, meta["hf_config"], source.export.get("stop_token_ids") or [])
    return {"shards": nshards, "bytes": total, "dtype": DTYPE_NAMES[out_dtype], "side_files": copied,
            "source": source.describe()}


def _set_config_dtype(path: str, dtype: torch.dtype) -> None:
    with open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    name = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[dtype]
    key = "dtype" if "dtype" in cfg else "torch_dtype"
    cfg[key] = name
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")



def write_generation_config(hf_dir: str, hf_config: dict, stop_token_ids) -> None:
    """Make ``generation_config.json`` stop where the run's rollouts stopped: the config's EOS plus
    the template's stop tokens the run recorded (kept as is when they are already listed)."""
    path = os.path.join(hf_dir, "generation_config.json")
    gen = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            gen = json.load(f)
    eos = gen.get("eos_token_id", hf_config.get("eos_token_id"))
    eos = [] if eos is None else (list(eos) if isinstance(eos, (list, tuple)) else [eos])
    for t in stop_token_ids:
        if int(t) not in eos:
            eos.append(int(t))
    if eos:
        gen["eos_token_id"] = eos[0] if len(eos) == 1 else eos
    for key in ("bos_token_id", "pad_token_id"):
        if key not in gen and hf_config.get(key) is not None:
            gen[key] = hf_config[key]
    gen.setdefault("transformers_version", hf_config.get("transformers_version", ""))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
