"""The shared atomic writers of ``mindspeed_rl.utils.fs``: a reader sees the old file or directory
or the new one, never a half-written one; a failed write leaves no temp file; ``fsync`` reaches
the disk before the rename; the checkpoint tracker is read and written in one place."""
import json
import os

import pytest

from mindspeed_rl.utils import fs
from tests.reliability.world import dead_pid


def test_text_json_and_lines_replace_the_file_and_leave_no_temp(tmp_path):
    path = tmp_path / "out.json"
    path.write_text("old")
    fs.atomic_write_json(path, {"b": "é", "a": [1, 2]}, ensure_ascii=False, sort_keys=True)
    assert path.read_text(encoding="utf-8") == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": "é"\n}\n'
    fs.atomic_write_lines(tmp_path / "rows.jsonl", [{"i": 0}, {"i": 1}])
    assert [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()] == [{"i": 0}, {"i": 1}]
    fs.atomic_write_bytes(tmp_path / "raw.bin", b"\0\1")
    assert (tmp_path / "raw.bin").read_bytes() == b"\0\1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "raw.bin", "rows.jsonl"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temp(tmp_path):
    path = tmp_path / "report.json"
    path.write_text("the old report")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with fs.atomic_open(path) as f:
            f.write("half of a new rep")
            raise RuntimeError("disk on fire")
    assert path.read_text() == "the old report"
    assert os.listdir(tmp_path) == ["report.json"]


def test_fsync_happens_before_the_rename(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(fs.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(fs.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    fs.atomic_write_text(tmp_path / "a.txt", "x", fsync=True)
    fs.atomic_write_text(tmp_path / "b.txt", "y")
    assert events == ["fsync", "replace", "replace"]


def test_temp_files_of_a_killed_writer_are_found_as_stale(tmp_path):
    pid = dead_pid()
    stale = tmp_path / os.path.basename(fs.temp_name(tmp_path / "ds_meta.json")).replace(f"-{os.getpid()}", f"-{pid}")
    stale.write_text("{")
    mine = tmp_path / os.path.basename(fs.temp_name(tmp_path / "ds_meta.json"))
    mine.write_text("{")  # this process is alive: its temp file is in use
    assert fs.stale_temp_entries(tmp_path, "ds") == [stale]


def test_atomic_dir_replaces_the_whole_directory_or_nothing(tmp_path):
    target = tmp_path / "ckpt"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with fs.atomic_dir(target) as tmp:
            open(os.path.join(tmp, "new.txt"), "w").close()
            raise KeyboardInterrupt
    assert sorted(os.listdir(target)) == ["old.txt"]
    assert os.listdir(tmp_path) == ["ckpt"]
    with fs.atomic_dir(target) as tmp:
        open(os.path.join(tmp, "new.txt"), "w").close()
    assert sorted(os.listdir(target)) == ["new.txt"]
    assert os.listdir(tmp_path) == ["ckpt"]  # the old copy was moved aside, then removed


def test_tracker_round_trip_and_damage_named(tmp_path):
    assert fs.read_tracker(tmp_path) is None
    fs.write_tracker(tmp_path, 12)
    assert (tmp_path / fs.TRACKER_FILE).read_text() == "12"
    assert fs.read_tracker(tmp_path) == 12
    (tmp_path / fs.TRACKER_FILE).write_text("twelve\n")
    with pytest.raises(fs.TrackerError, match=r"latest_checkpointed_iteration\.txt: expected an iteration number, found 'twelve'"):
        fs.read_tracker(tmp_path)

