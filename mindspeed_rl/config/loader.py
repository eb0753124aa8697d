"""Compose ``configs/<name>.yaml`` through Hydra (defaults list + ``key=value`` overrides)."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from mindspeed_rl.config.errors import ConfigError, Problem
from mindspeed_rl.config.architecture import resolve_architecture
from mindspeed_rl.config.mindspeed_compat import translate
from mindspeed_rl.config.schema import GRPOConfig
from mindspeed_rl.config.structured import from_dict
from mindspeed_rl.config.validate import validate

# The repository's configs/ (an installed package still finds a checkout via MINDSPEED_RL_CONFIG_DIR).
CONFIG_DIR = Path(os.environ.get("MINDSPEED_RL_CONFIG_DIR", Path(__file__).resolve().parents[2] / "configs"))


def _config_name(name: str) -> str:
    return name[: -len(".yaml")] if name.endswith(".yaml") else name


def compose_dict(config_name: str, overrides: list[str] | None = None, config_dir: str | Path | None = None) -> dict:
    """Hydra-compose a config into a plain dict (interpolations resolved)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    config_dir = Path(config_dir or CONFIG_DIR).resolve()
    name = _config_name(config_name)
    if not (config_dir / f"{name}.yaml").is_file():
        available = sorted(p.stem for p in config_dir.glob("*.yaml"))
        raise ConfigError([Problem("--config-name", config_name, f"no {config_dir / (name + '.yaml')}",
                                   f"use one of {available}")])
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"), warnings.catch_warnings():
            # MindSpeed-RL's run YAMLs leave `_self_` out of their defaults; Hydra's order is the one they mean
            warnings.filterwarnings("ignore", message=".*Defaults list is missing `_self_`.*")
            cfg = compose(config_name=name, overrides=_force_schema_keys(overrides or []))
    except HydraException as exc:
        raise ConfigError([_override_problem(exc, overrides or [])]) from exc
    return OmegaConf.to_container(cfg, resolve=True)


def _force_schema_keys(overrides: list[str]) -> list[str]:
    """A schema key may be absent from the YAML (it has a default): let ``key=value`` add it.

    Hydra's struct mode would reject it; ``++`` means add-or-override. Unknown keys are left as
    they are, so Hydra still rejects them and ``_override_problem`` names the closest valid key.
    """
    from mindspeed_rl.config.structured import field_docs

    known = {k for k, _, _ in field_docs(GRPOConfig)}
    out = []
    for item in overrides:
        key = item.split("=", 1)[0]
        out.append(f"++{item}" if "=" in item and key in known else item)
    return out


def _override_problem(exc: Exception, overrides: list[str]) -> Problem:
    """Turn Hydra's 'Could not override' into the key, a did-you-mean and the fix."""
    import difflib
    import re

    from mindspeed_rl.config.structured import field_docs

    message = str(exc).splitlines()[0]
    match = re.search(r"Could not override '([^']+)'", message)
    if not match:
        return Problem("overrides", list(overrides), message, "write overrides as section.key=value")
    key = match.group(1)
    value = next((o.split("=", 1)[1] for o in overrides if o.split("=", 1)[0].lstrip("+~") == key), None)
    known = [k for k, _, _ in field_docs(GRPOConfig)]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    fix = f"did you mean '{close[0]}'?" if close else "see `python cli/train_grpo.py --help` for the valid keys"
    return Problem(key, value, "unknown config key", fix)


log = logging.getLogger("mindspeed_rl.config")


def load_config(config_name: str, overrides: list[str] | None = None, config_dir: str | Path | None = None,
                check: bool = True, notes: list[str] | None = None) -> GRPOConfig:
    """Compose, type-check and validate a GRPO run config.

    MindSpeed-RL's keys are translated first (``mindspeed_compat``): each rename or ignored key is
    logged once as a warning and appended to ``notes`` when given."""
    data = compose_dict(config_name, overrides, config_dir)
    found = translate(data) + resolve_architecture(data)
    for note in found:
        log.warning("config: %s", note)
    if notes is not None:
        notes.extend(found)
    cfg = from_dict(GRPOConfig, data, source=f"config '{_config_name(config_name)}'")
    return validate(cfg) if check else cfg
