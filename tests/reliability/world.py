"""The reliability tests' inputs, shared by their fixtures (conftest.py) and the tests: prompt
rows (optionally with a non-UTF-8 line), the tiny model's shape, the pid of a finished process."""
import subprocess
from pathlib import Path

from mindspeed_rl.testing import tiny


def write_rows(path: Path, n: int = 6, bad_line: int | None = None) -> Path:
    import json

    lines = []
    for i in range(n):
        line = json.dumps({"problem": f"What is {i} + {i}?", "answer": str(2 * i)}).encode()
        if bad_line is not None and i + 1 == bad_line:
            line = line.replace(b"What", b"Wh\xe9t")  # a Latin-1 byte: not UTF-8
        lines.append(line)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


MODEL = dict(**tiny.SMALL, max_position_embeddings=512, tie_word_embeddings=True)


def dead_pid() -> int:
    """The pid of a process that has exited (as a killed writer's pid in a temp file name)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
