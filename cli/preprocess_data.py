#!/usr/bin/env python3
"""Preprocess a prompt dataset into a Megatron indexed dataset (Hydra over configs/datasets/).

    python cli/preprocess_data.py --config-name deepscaler
    python cli/preprocess_data.py deepscaler            # the config name as the first argument works too
    python cli/preprocess_data.py path/to/mindspeed_rl/configs/datasets/deepscaler.yaml   # a MindSpeed-RL file
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


def _positional_config(argv):
    """``preprocess_data.py deepscaler`` (MindSpeed-RL's usage) or ``preprocess_data.py some/dir/x.yaml``."""
    if len(argv) < 2 or argv[1].startswith("-") or "=" in argv[1]:
        return argv
    name, rest = argv[1], argv[2:]
    path = Path(name)
    if path.suffix == ".yaml" and path.is_file():
        # its folder replaces configs/datasets (a same-named config of ours must not win)
        return [argv[0], "--config-path", str(path.resolve().parent), "--config-name", path.stem, *rest]
    return [argv[0], "--config-name", name, *rest]


def _prepare_argv(argv):
    argv = _positional_config(list(argv))
    for i, arg in enumerate(argv):  # accept --config-name deepscaler.yaml as well
        if arg == "--config-name" and i + 1 < len(argv) and argv[i + 1].endswith(".yaml"):
            argv[i + 1] = argv[i + 1][: -len(".yaml")]
        elif arg.startswith("--config-name=") and arg.endswith(".yaml"):
            argv[i] = arg[: -len(".yaml")]
    given = {a.split("=", 1)[0].lstrip("+~") for a in argv[1:] if "=" in a}
    own_dir = "--config-path" in argv  # configs/datasets/hydra/help is not on that search path
    extra = [f"{k}={v}" for k, v in _HYDRA_DEFAULTS.items() if k not in given and not (own_dir and k == "hydra/help")]
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

    from mindspeed_rl.config.errors import ConfigError
    from mindspeed_rl.config.structured import from_dict
    from mindspeed_rl.data.mindspeed_dataset_config import translate

    data = OmegaConf.to_container(cfg, resolve=True)
    try:
        for note in translate(data):  # MindSpeed-RL's dataset YAML keys
            print(f"warning: {note}", file=sys.stderr)
        config = from_dict(PreprocessConfig, data, source="dataset config")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    try:
        preprocess(config)
    except (InputError, PreprocessError, TemplateError, HandlerError, MissingBackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    sys.argv = _prepare_argv(sys.argv)
    main()
