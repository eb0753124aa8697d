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
EXTRAS = {
    "train": TRAIN,
    "gpu": TRAIN + ["vllm>=0.10"],
    # torch-npu must match the installed CANN; MindSpeed itself is installed from source (README).
    "npu": TRAIN + ["torch-npu"],
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
    package_data={"mindspeed_rl": ["py.typed"]},
    python_requires=">=3.10",
    install_requires=BASE,
    extras_require=EXTRAS,
)
