"""Worker environment: forwarded by rule, platform defaults overridable, visible devices never copied."""
from mindspeed_rl.platform.runtime_env import PLATFORM_DEFAULTS, worker_env


def test_rule_forwards_by_prefix_and_keeps_ray_device_assignment():
    driver = {"HCCL_SOCKET_IFNAME": "eth0", "NCCL_DEBUG": "INFO", "GLOO_SOCKET_IFNAME": "eth0",
              "MINDSPEED_RL_NEW_KNOB": "1", "VLLM_LOGGING_LEVEL": "WARN", "HF_HUB_OFFLINE": "1",
              "CUDA_VISIBLE_DEVICES": "0,1,2,3", "ASCEND_RT_VISIBLE_DEVICES": "0", "HOME": "/root", "PATH": "/bin"}
    env = worker_env("npu", driver)
    for key in ("HCCL_SOCKET_IFNAME", "NCCL_DEBUG", "GLOO_SOCKET_IFNAME", "MINDSPEED_RL_NEW_KNOB", "VLLM_LOGGING_LEVEL",
                "HF_HUB_OFFLINE"):
        assert env[key] == driver[key]
    for key in ("CUDA_VISIBLE_DEVICES", "ASCEND_RT_VISIBLE_DEVICES", "HOME", "PATH"):
        assert key not in env


def test_ascend_defaults_and_overrides():
    env = worker_env("npu", {"HCCL_EXEC_TIMEOUT": "7200"})
    for key in ("PYTORCH_NPU_ALLOC_CONF", "HCCL_EXEC_TIMEOUT", "HCCL_IF_BASE_PORT", "HCCL_BUFFSIZE",
                "TASK_QUEUE_ENABLE", "CPU_AFFINITY_CONF", "HCCL_CONNECT_TIMEOUT"):
        assert key in env
    assert env["HCCL_EXEC_TIMEOUT"] == "7200"  # the driver's value wins
    assert env["PYTORCH_NPU_ALLOC_CONF"] == PLATFORM_DEFAULTS["npu"]["PYTORCH_NPU_ALLOC_CONF"]
    assert "HCCL_BUFFSIZE" not in worker_env("cpu", {})


def test_sequence_parallel_widths_are_padded_to_tp():
    import torch

    from mindspeed_rl.engine.batch import trim_to_longest

    mask = torch.zeros(2, 16, dtype=torch.long)
    mask[0, :7], mask[1, :5] = 1, 1
    batch = {"input_ids": torch.arange(32).view(2, 16) * mask, "attention_mask": mask,
             "response_mask": torch.ones(2, 2, dtype=torch.long)}
    assert trim_to_longest(batch)["input_ids"].shape == (2, 7)
    out = trim_to_longest(batch, seq_multiple=4)
    assert out["input_ids"].shape == (2, 8) and out["attention_mask"].shape == (2, 8)
    assert out["attention_mask"][:, 7].sum() == 0  # the added column is padding
    assert trim_to_longest({**batch, "attention_mask": mask[:, :7], "input_ids": batch["input_ids"][:, :7]},
                           seq_multiple=4)["input_ids"].shape == (2, 8)  # padded past the given width
