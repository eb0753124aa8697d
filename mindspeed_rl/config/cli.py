"""Shared pieces of the Hydra-style command lines (``--config-name X key=value ...``)."""
from __future__ import annotations

import argparse
import sys

from mindspeed_rl.config.errors import ConfigError
from mindspeed_rl.utils.imports import MissingBackendError


def config_arg_parser(prog: str, description: str, default_config: str, epilog: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config-name", "-cn", default=default_config,
                        help=f"config under configs/ (with or without .yaml; default: {default_config})")
    parser.add_argument("--config-dir", "-cd", default=None, help="directory holding the configs (default: the repo's configs/)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: section.key=value (e.g. actor_config.lr=2e-6)")
    return parser


def run_cli(main) -> None:
    """Run ``main()``; config errors and missing backends become one clear message and exit 2 / 1."""
    try:
        code = main()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except MissingBackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code or 0)
