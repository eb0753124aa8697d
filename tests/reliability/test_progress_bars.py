"""Progress bars: drawn on stderr only where it is a terminal, or where MINDSPEED_RL_PROGRESS says."""
import io

import pytest

from mindspeed_rl.utils.progress import progress_bar, progress_enabled


class _Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("env, tty, expected", [
    ("", True, True), ("", False, False),
    ("1", False, True), ("on", False, True),
    ("0", True, False), ("off", True, False),
])
def test_progress_enabled_follows_tty_and_env(monkeypatch, env, tty, expected):
    monkeypatch.setenv("MINDSPEED_RL_PROGRESS", env)
    assert progress_enabled(_Tty() if tty else io.StringIO()) is expected


def test_disabled_bar_writes_nothing(monkeypatch, capsys):
    monkeypatch.setenv("MINDSPEED_RL_PROGRESS", "0")
    with progress_bar(5, "phase") as bar:
        bar.update(5)
    assert capsys.readouterr() == ("", "")


def test_enabled_bar_goes_to_stderr_not_stdout(monkeypatch, capsys):
    monkeypatch.setenv("MINDSPEED_RL_PROGRESS", "1")
    with progress_bar(4, "phase", unit="problem") as bar:
        bar.update(4)
    out, err = capsys.readouterr()
    assert out == "" and "phase" in err and "/4" in err
