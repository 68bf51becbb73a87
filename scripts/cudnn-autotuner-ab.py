"""On a GPU: the paper configuration's pre-training and fine-tuning step times with cuDNN's
autotuner (torch.backends.cudnn.benchmark) off and on, side by side in one process, two rounds.
Run from the repository root: python3 scripts/cudnn-autotuner-ab.py"""

import sys

import torch

sys.path.insert(0, "src")
from asdflow import train  # noqa: E402
from asdflow import workflow as plan  # noqa: E402
from asdflow.bench import hours as bench_hours  # noqa: E402

config = plan.load_config(["config/config.yaml", "config/dcase2025.yaml"])
device = train.pick_device()
pre = plan.pretrain_settings(config, "dap")
ft = plan.finetune_settings(config, 0)
for rep in range(2):
    for flag in (False, True):
        torch.backends.cudnn.benchmark = flag
        p, _ = bench_hours.time_pretrain_step("eat_base", pre, 1024, device, 3, 20)
        f, _ = bench_hours.time_finetune_step("eat_base", ft, 1024, 100, device, 3, 20)
        print(f"round {rep} cudnn.benchmark={flag}: pretrain {p:.4f} s/step, ", end="")
        print(f"finetune {f:.4f} s/step")
