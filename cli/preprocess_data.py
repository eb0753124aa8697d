#!/usr/bin/env python3
"""Preprocess a prompt dataset into a Megatron indexed dataset (Hydra over configs/datasets/).

    python cli/preprocess_data.py --config-name deepscaler
    python cli/preprocess_data.py --config-name deepscaler input=/data/deepscaler.json \
        map_keys.prompt=problem map_keys.response=answer tokenizer_name_or_path=/models/Qwen2.5-7B
"""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # runnable from a checkout without `pip install -e .`

import hydra  # noqa: E402
from hydra.core.config_store import ConfigStore  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from mindspeed_rl.data.preprocess import PreprocessConfig  # noqa: E402

CONFIG_DIR = ROOT / "configs" / "datasets"
ConfigStore.instance().store(name="preprocess_schema", node=PreprocessConfig)

# Hydra defaults a CLI user never wants here: a dated run dir, a .hydra copy, log files.
_HYDRA_DEFAULTS = {
    "hydra.run.dir": ".",
    "hydra.output_subdir": "null",
    "hydra/job_logging": "none",
    "hydra/hydra_logging": "none",
    "hydra/help": "preprocess_help",
}


def _prepare_argv(argv):
    argv = list(argv)
    for i, arg in enumerate(argv):  # accept --config-name deepscaler.yaml as well
        if arg == "--config-name" and i + 1 < len(argv) and argv[i + 1].endswith(".yaml"):
            argv[i + 1] = argv[i + 1][: -len(".yaml")]
        elif arg.startswith("--config-name=") and arg.endswith(".yaml"):
            argv[i] = arg[: -len(".yaml")]
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv[1:] if "=" in a}
    extra = [f"{k}={v}" for k, v in _HYDRA_DEFAULTS.items() if k not in given]
    is_help = any(a in ("--help", "-h", "--hydra-help") for a in argv[1:])
    has_name = any(a in ("--config-name", "-cn") or a.startswith("--config-name=") for a in argv[1:])
    if not has_name and not is_help:
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        sys.exit(f"error: pass --config-name <dataset config>; available in {CONFIG_DIR}: {names}")
    return argv + extra


@hydra.main(version_base=None, config_path=str(CONFIG_DIR), config_name=None)
def main(cfg) -> None:
    from mindspeed_rl.data.handlers import HandlerError
    from mindspeed_rl.data.preprocess import PreprocessError, preprocess
    from mindspeed_rl.data.readers import InputError
    from mindspeed_rl.data.templates import TemplateError
    from mindspeed_rl.utils.imports import MissingBackendError

    config: PreprocessConfig = OmegaConf.to_object(cfg)
    try:
        preprocess(config)
    except (InputError, PreprocessError, TemplateError, HandlerError, MissingBackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.argv = _prepare_argv(sys.argv)
    main()
