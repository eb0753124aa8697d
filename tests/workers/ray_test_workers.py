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
