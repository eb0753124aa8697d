"""Run megatron-core on CPU with the gloo backend.

megatron-core assumes CUDA in a known, finite set of places. This adaptor redirects each of them:

* ``torch.cuda.current_device()`` (used as a ``device=`` argument all over) returns the CPU device;
* functions that create tensors with a literal ``"cuda"`` device, call ``.cuda()``, or compare
  ``tensor.type()`` against ``'torch.cuda.FloatTensor'``-style names are recompiled from their own
  source with those literals mapped to CPU (same code, same line numbers in tracebacks);
* the CUDA RNG tracker's state get/set use the CPU generator, so ``model_parallel_cuda_manual_seed``
  and ``get_cuda_rng_tracker().fork()`` keep their semantics (separate streams per TP region).

The audited modules are scanned after patching: any CUDA-only literal that this adaptor neither
rewrites nor knows to be off the CPU path raises ``UnsupportedMegatronError`` naming the file,
line and function, so a new megatron-core release fails loudly instead of half-working.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import textwrap
import warnings
from types import FunctionType

import torch

VERIFIED_MEGATRON_VERSION = "0.16.1"

# Modules on the engine's path (model, TP/PP, schedules, DDP, optimizer). Audited after patching.
AUDITED_MODULES = (
    "megatron.core.utils",
    "megatron.core.parallel_state",
    "megatron.core.tensor_parallel.layers",
    "megatron.core.tensor_parallel.mappings",
    "megatron.core.tensor_parallel.random",
    "megatron.core.tensor_parallel.utils",
    "megatron.core.tensor_parallel.cross_entropy",
    "megatron.core.tensor_parallel.data",
    "megatron.core.pipeline_parallel.schedules",
    "megatron.core.pipeline_parallel.p2p_communication",
    "megatron.core.pipeline_parallel.utils",
    "megatron.core.transformer.module",
    "megatron.core.transformer.utils",
    "megatron.core.transformer.attention",
    "megatron.core.transformer.dot_product_attention",
    "megatron.core.transformer.transformer_block",
    "megatron.core.transformer.transformer_layer",
    "megatron.core.transformer.mlp",
    "megatron.core.models.gpt.gpt_model",
    "megatron.core.models.common.language_module.language_module",
    "megatron.core.models.common.embeddings.rotary_pos_embedding",
    "megatron.core.models.common.embeddings.language_model_embedding",
    "megatron.core.distributed.distributed_data_parallel",
    "megatron.core.distributed.param_and_grad_buffer",
    "megatron.core.distributed.finalize_model_grads",
    "megatron.core.optimizer",
    "megatron.core.optimizer.optimizer",
    "megatron.core.optimizer.distrib_optimizer",
    "megatron.core.optimizer.clip_grads",
    "megatron.core.optimizer.grad_scaler",
    "megatron.core.optimizer_param_scheduler",
    "megatron.core.rerun_state_machine",
    "megatron.core.dist_checkpointing.exchange_utils",
    "megatron.core.dist_checkpointing.strategies.torch",
    "megatron.core.dist_checkpointing.strategies.filesystem_async",
    "megatron.core.dist_checkpointing.serialization",
)

# Functions recompiled with CUDA literals mapped to CPU: (module, qualified name).
REWRITTEN = (
    ("megatron.core.utils", "local_multi_tensor_l2_norm"),
    ("megatron.core.utils", "check_param_hashes_across_dp_replicas"),
    ("megatron.core.dist_checkpointing.exchange_utils", "_get_empty_tensor_for_exchange"),
    ("megatron.core.dist_checkpointing.exchange_utils", "exchange_loaded_tensors_gather_rounds"),
    ("megatron.core.dist_checkpointing.exchange_utils", "exchange_loaded_tensors_broadcast"),
    ("megatron.core.tensor_parallel.data", "_build_key_size_numel_dictionaries"),
    ("megatron.core.tensor_parallel.data", "broadcast_data"),
    ("megatron.core.pipeline_parallel.schedules", "forward_step"),
    ("megatron.core.pipeline_parallel.schedules", "forward_backward_no_pipelining"),
    ("megatron.core.pipeline_parallel.schedules", "forward_backward_pipelining_with_interleaving"),
    ("megatron.core.pipeline_parallel.schedules", "forward_backward_pipelining_without_interleaving"),
    ("megatron.core.transformer.utils", "get_default_causal_mask"),
    ("megatron.core.transformer.utils", "get_sliding_window_causal_mask"),
    ("megatron.core.models.common.language_module.language_module", "LanguageModule.setup_embeddings_and_output_layer"),
    ("megatron.core.distributed.param_and_grad_buffer", "_ParamAndGradBuffer.__init__"),
    ("megatron.core.optimizer.optimizer", "MegatronOptimizer.restore_from_cpu"),
    ("megatron.core.optimizer.optimizer", "MixedPrecisionOptimizer.__init__"),
    ("megatron.core.optimizer.optimizer", "Float16OptimizerWithFloat16Params.__init__"),
    ("megatron.core.optimizer.optimizer", "FP32Optimizer.__init__"),
    ("megatron.core.optimizer.distrib_optimizer", "DistributedOptimizer._build_model_and_main_param_groups"),
    ("megatron.core.optimizer.distrib_optimizer", "DistributedOptimizer.__init__"),
    ("megatron.core.optimizer.clip_grads", "get_grad_norm_fp32"),
    ("megatron.core.optimizer.clip_grads", "clip_grad_by_total_norm_fp32"),
    ("megatron.core.optimizer.clip_grads", "count_zeros_fp32"),
    ("megatron.core.optimizer.grad_scaler", "MegatronGradScaler.__init__"),
    ("megatron.core.optimizer.grad_scaler", "DynamicGradScaler.__init__"),
    ("megatron.core.optimizer.grad_scaler", "DynamicGradScaler.load_state_dict"),
    ("megatron.core.rerun_state_machine", "RerunStateMachine._reduce_any"),
)

# CUDA literals that are off the CPU path (replaced wholesale below, or only reached with
# CUDA-only features such as overlapping communication streams). Listed so the audit accepts them.
KNOWN_OFF_PATH = {
    ("megatron.core.utils", "GlobalSymmetricMemoryBuffer"),  # NVSHMEM symmetric memory
    ("megatron.core.utils", "get_batch_on_this_hybrid_cp_rank"),  # hybrid context parallel
    ("megatron.core.tensor_parallel.layers", "<module>"),  # custom_fwd/bwd device_type, no-op on CPU
    ("megatron.core.tensor_parallel.random", "_get_cuda_rng_state"),  # replaced with CPU RNG
    ("megatron.core.tensor_parallel.random", "_set_cuda_rng_state"),  # replaced with CPU RNG
    ("megatron.core.pipeline_parallel.utils", "set_streams"),  # comm streams: overlap only
    ("megatron.core.optimizer.distrib_optimizer", "DistributedOptimizer.load_parameter_state_from_dp_zero"),
    ("megatron.core.optimizer.distrib_optimizer", "DistributedOptimizer.get_parameter_state_dp_zero"),
}

_CUDA_TENSOR_TYPE = re.compile(r"^torch\.cuda\.(\w+Tensor)$")


class UnsupportedMegatronError(RuntimeError):
    """megatron-core has a CUDA-only call on the CPU path that this adaptor does not handle."""


class _CudaToCpu(ast.NodeTransformer):
    """Map CUDA literals to CPU: 'cuda' -> 'cpu', 'torch.cuda.XTensor' -> 'torch.XTensor', .cuda() -> .cpu()."""

    def __init__(self):
        self.changes = 0

    def visit_Constant(self, node):
        if node.value == "cuda":
            self.changes += 1
            return ast.copy_location(ast.Constant("cpu"), node)
        if isinstance(node.value, str) and _CUDA_TENSOR_TYPE.match(node.value):
            self.changes += 1
            return ast.copy_location(ast.Constant(_CUDA_TENSOR_TYPE.sub(r"torch.\1", node.value)), node)
        return node

    def visit_Attribute(self, node):
        self.generic_visit(node)
        if node.attr == "cuda" and not (isinstance(node.value, ast.Name) and node.value.id == "torch"):
            self.changes += 1
            node.attr = "cpu"
        return node


def _resolve(module, qualname):
    owner, obj = None, module
    for part in qualname.split("."):
        owner, obj = obj, getattr(obj, part)
    return owner, obj


def _recompile(module, qualname: str) -> None:
    owner, func = _resolve(module, qualname)
    func = inspect.unwrap(func) if not isinstance(func, FunctionType) else func
    source_lines, first_line = inspect.getsourcelines(func)
    tree = ast.parse(textwrap.dedent("".join(source_lines)))
    ast.increment_lineno(tree, first_line - 1)
    transformer = _CudaToCpu()
    tree = transformer.visit(tree)
    if transformer.changes == 0:
        raise UnsupportedMegatronError(
            f"CPU adaptor expected CUDA-only calls in {module.__name__}.{qualname} but found none: "
            f"megatron-core changed; the adaptor is verified with megatron-core=={VERIFIED_MEGATRON_VERSION}"
        )
    func_def = tree.body[0]
    # Wrap in a factory whose parameter is named __class__ so zero-argument super() still works.
    factory = ast.FunctionDef(
        name="_make",
        args=ast.arguments(
            posonlyargs=[], args=[ast.arg("__class__")], kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=[func_def, ast.Return(ast.Name(func_def.name, ast.Load()))],
        decorator_list=[],
        returns=None,
        type_params=[],
    )
    wrapper = ast.Module(body=[factory], type_ignores=[])
    ast.fix_missing_locations(wrapper)
    code = compile(wrapper, inspect.getsourcefile(func), "exec")
    namespace: dict = {}
    exec(code, module.__dict__, namespace)  # noqa: S102 - megatron's own source, CUDA literals remapped
    new_func = namespace["_make"](owner if inspect.isclass(owner) else None)
    old = getattr(owner, func_def.name)
    setattr(owner, func_def.name, new_func)
    # Re-point names that other modules imported with `from x import f`.
    for mod in list(sys.modules.values()):
        if mod is None or not getattr(mod, "__name__", "").startswith("megatron"):
            continue
        for name, value in list(vars(mod).items()):
            if value is old:
                setattr(mod, name, new_func)


def _cpu_rng_get(device="cuda", clone=False, graph_safe=False):
    state = torch.get_rng_state()
    return state.clone() if clone else state


def _cpu_rng_set(new_state, device=-1, graph_safe=False):
    torch.set_rng_state(new_state)


def _no_cuda_work(*args, **kwargs):
    return None


def _cpu_current_device():
    return torch.device("cpu")


class _CudaSeedOnCpu:
    """``torch.cuda`` as the RNG tracker sees it: seeding and RNG state act on the CPU generator."""

    _ON_CPU = {
        "manual_seed": torch.manual_seed,
        "get_rng_state": torch.get_rng_state,
        "set_rng_state": torch.set_rng_state,
    }

    def __getattr__(self, name):
        return self._ON_CPU.get(name) or getattr(torch.cuda, name)


class _TorchForRngTracker:
    """``torch`` as megatron's random module sees it (only ``torch.cuda`` differs)."""

    cuda = _CudaSeedOnCpu()

    def __getattr__(self, name):
        return getattr(torch, name)


class _CudaLiteralFinder(ast.NodeVisitor):
    def __init__(self):
        self.stack: list[str] = []
        self.hits: list[tuple[str, int, str]] = []

    def _scoped(self, node):
        self.stack.append(node.name)
        self.generic_visit(node)
        self.stack.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Constant(self, node):
        if node.value == "cuda" or (isinstance(node.value, str) and _CUDA_TENSOR_TYPE.match(node.value)):
            self.hits.append((".".join(self.stack) or "<module>", node.lineno, repr(node.value)))

    def visit_Call(self, node):
        if isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
            self.hits.append((".".join(self.stack) or "<module>", node.lineno, ".cuda()"))
        self.generic_visit(node)


def audit() -> list[str]:
    """CUDA-only call sites on the audited path that the adaptor does not handle."""
    handled = set(REWRITTEN) | KNOWN_OFF_PATH
    problems = []
    for name in AUDITED_MODULES:
        module = importlib.import_module(name)
        path = inspect.getsourcefile(module)
        finder = _CudaLiteralFinder()
        finder.visit(ast.parse(inspect.getsource(module)))
        for qualname, line, what in finder.hits:
            # a nested function is handled when its enclosing function is
            if not any((name, q) in handled for q in _prefixes(qualname)):
                problems.append(f"{path}:{line} {name}.{qualname}: {what}")
    return problems


def _prefixes(qualname: str):
    parts = qualname.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


_applied = False


def apply() -> None:
    global _applied
    if _applied:
        return
    import megatron.core

    version = getattr(megatron.core, "__version__", "unknown")
    if version != VERIFIED_MEGATRON_VERSION:
        warnings.warn(
            f"CPU adaptor is verified with megatron-core=={VERIFIED_MEGATRON_VERSION}, found {version}; "
            "it will refuse to run if it meets a CUDA-only call it does not know",
            stacklevel=2,
        )
    torch.cuda.current_device = _cpu_current_device
    # Nothing to wait for without a GPU (dist_checkpointing and DDP call this unconditionally).
    torch.cuda.synchronize = _no_cuda_work
    modules = {name: importlib.import_module(name) for name in AUDITED_MODULES}
    random_mod = modules["megatron.core.tensor_parallel.random"]
    random_mod._get_cuda_rng_state = _cpu_rng_get
    random_mod._set_cuda_rng_state = _cpu_rng_set
    # Without this, tracker.add() would capture the unseeded CPU state: torch.cuda.manual_seed is
    # a silent no-op on a CPU-only build.
    random_mod.torch = _TorchForRngTracker()
    try:
        for module_name, qualname in REWRITTEN:
            _recompile(modules[module_name], qualname)
    except AttributeError as exc:
        raise UnsupportedMegatronError(
            f"CPU adaptor could not find a megatron-core function it patches ({exc}); verified with "
            f"megatron-core=={VERIFIED_MEGATRON_VERSION}, found {version}"
        ) from exc
    problems = audit()
    if problems:
        raise UnsupportedMegatronError(
            "megatron-core has CUDA-only calls the CPU adaptor does not handle (verified with "
            f"megatron-core=={VERIFIED_MEGATRON_VERSION}, found {version}):\n  " + "\n  ".join(problems)
        )
    _applied = True
