import os
import subprocess
import sys

from tests.paths import FIXTURES, ROOT

CLI = str(ROOT / "cli" / "preprocess_data.py")

# makes `import megatron` fail in the child, as on a machine without megatron-core
NO_MEGATRON = "import sys; sys.modules['megatron'] = None; sys.modules['megatron.core'] = None\n"


def _run(args, tmp_path, block_megatron=False):
    env = dict(os.environ)
    if block_megatron:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(NO_MEGATRON)
        env["PYTHONPATH"] = f"{site}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return subprocess.run([sys.executable, CLI, *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)


def test_help_without_megatron(tmp_path):
    r = _run(["--help"], tmp_path, block_megatron=True)
    assert r.returncode == 0, r.stderr
    assert "--config-name" in r.stdout and "map_keys" in r.stdout
    r = _run(["--config-name", "deepscaler.yaml", "--help"], tmp_path, block_megatron=True)
    assert r.returncode == 0 and "reward_model.ground_truth" in r.stdout


def test_cli_runs_config_with_overrides(tmp_path):
    args = ["--config-name", "deepscaler", f"input={FIXTURES / 'data' / 'deepscaler_flat20.json'}",
            "map_keys.prompt=problem", "map_keys.response=answer", f"tokenizer_name_or_path={FIXTURES / 'qwen2_tokenizer'}",
            "output_prefix=out/flat", "workers=1", "progress=false"]
    r = _run(args, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "written: 20" in r.stdout
    assert (tmp_path / "out" / "flat_meta.json").exists() and not (tmp_path / "outputs").exists()
    bad = _run(["--config-name", "deepscaler", "template=nope"] + args[2:], tmp_path)
    assert bad.returncode == 1 and "available:" in bad.stderr and "Traceback" not in bad.stderr
    missing = _run([], tmp_path)
    assert missing.returncode != 0 and "deepscaler" in missing.stderr
