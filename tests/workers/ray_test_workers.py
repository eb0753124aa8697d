"""Worker classes used by the Ray tests (importable by Ray workers)."""
import os
import time

from mindspeed_rl.workers.worker_group import BaseWorker


class SumWorker(BaseWorker):
    def all_reduce_rank(self):
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(self.rank + 1)])
        dist.all_reduce(t)
        return float(t.item()), int(os.environ["LOCAL_RANK"])

    def die_after(self, seconds: float):
        """Rank 1 dies mid-call (as an OOM kill would); the others block in a collective."""
        import torch
        import torch.distributed as dist

        if self.rank == 1:
            time.sleep(seconds)
            os._exit(1)
        t = torch.zeros(1)
        dist.all_reduce(t)  # never completes: rank 1 is gone
        return True

    def raise_error(self):
        if self.rank == 0:
            raise ValueError("bad batch on rank 0")
        time.sleep(60)


class DevicePlatformWorker(BaseWorker):
    """A worker whose process detected ``platform`` (as on a GPU/NPU node), on a CPU-only box."""

    def __init__(self, group, rank, world_size, env, platform: str):
        from mindspeed_rl.platform import detect

        detect._current = detect.PLATFORMS[platform]
        super().__init__(group, rank, world_size, env)

    def accelerator_ids(self):
        import ray

        return {k: [str(i) for i in v] for k, v in ray.get_runtime_context().get_accelerator_ids().items() if v}
