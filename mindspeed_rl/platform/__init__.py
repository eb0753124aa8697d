"""The one place that knows the hardware: NPU (torch_npu), CUDA or CPU.

Everything else asks ``current_platform()`` for the device, the collective backend, the Ray
resource name and the Megatron adaptor; nothing outside this package calls ``.cuda()``/``.npu()``
or checks which accelerator it runs on.
"""
from mindspeed_rl.platform.base import Platform
from mindspeed_rl.platform.detect import current_platform, detect_platform_name, reset_platform

__all__ = ["Platform", "current_platform", "detect_platform_name", "reset_platform"]
