"""Progress bars for the long phases the driver waits on (validation, evaluation, conversion).

One rule for all of them: a bar is drawn on stderr only when stderr is a terminal, so logs and CI
output get no carriage-return noise; ``MINDSPEED_RL_PROGRESS=1`` forces bars on (e.g. under a
terminal multiplexer that hides the tty), ``MINDSPEED_RL_PROGRESS=0`` turns them off. Bars are not
left behind when done: the phase's one result line is what stays on the console.
"""
from __future__ import annotations

import os
import sys

ENV = "MINDSPEED_RL_PROGRESS"


def progress_enabled(stream=None) -> bool:
    """Whether a bar should be drawn on ``stream`` (stderr by default); see the module docstring."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True
    if forced in ("0", "false", "no", "off"):
        return False
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(total: int, desc: str, unit: str = "it", initial: int = 0, **kwargs):
    """A tqdm bar on stderr, disabled (a no-op object with the same methods) where bars are off."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, leave=False,
                dynamic_ncols=True, disable=not progress_enabled(), **kwargs)
