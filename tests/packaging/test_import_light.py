"""The package and every CLI's --help work without megatron-core, Ray, vLLM or torch_npu;
a command that needs a missing backend says so in one line."""
import glob
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = '''
import importlib.abc, importlib.machinery, sys
BLOCKED = ("megatron", "ray", "vllm", "torch_npu", "mindspeed")

class _Block(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Behaves as if these packages were not installed."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            return importlib.machinery.ModuleSpec(name, self)
        return None
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (blocked by test)", name=spec.name)
    def exec_module(self, module):
        pass

sys.meta_path.insert(0, _Block())
'''


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(BLOCKER)
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    return e


def _run(args, env, **kw):
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, **kw)


def test_blocker_really_blocks(env):
    r = _run(["-c", "import megatron.core"], env)
    assert r.returncode != 0 and "blocked by test" in r.stderr


def test_import_package_and_rooms_without_backends(env):
    code = (
        "import importlib, pkgutil, mindspeed_rl\n"
        "light = ['mindspeed_rl.config', 'mindspeed_rl.platform', 'mindspeed_rl.utils.imports', 'mindspeed_rl.trainer']\n"
        "for name in light: importlib.import_module(name)\n"
        "for m in pkgutil.iter_modules(mindspeed_rl.__path__): importlib.import_module('mindspeed_rl.' + m.name)\n"
        "from mindspeed_rl.platform import current_platform\n"
        "print(current_platform().name)\n"
    )
    r = _run(["-c", code], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() in {"cpu", "cuda", "npu"}


@pytest.mark.parametrize("cli", sorted(os.path.basename(p) for p in glob.glob(str(ROOT / "cli" / "*.py"))))
def test_every_cli_help_without_backends(env, cli):
    r = _run([f"cli/{cli}", "--help"], env)
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()


def test_missing_megatron_is_one_clear_line(env):
    r = _run(["cli/train_grpo.py", "--config-name", "grpo_tiny_cpu"], env)
    assert r.returncode == 1
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    assert "megatron" in lines[0] and "pip install" in lines[0]


def test_adaptor_needs_megatron_one_line(env):
    r = _run(["-c", "from mindspeed_rl.platform import current_platform\n"
                    "try:\n    current_platform().apply_megatron_adaptor()\n"
                    "except ImportError as e:\n    print(e)\n"], env)
    assert r.returncode == 0 and "megatron-core==0.16.1" in r.stdout
