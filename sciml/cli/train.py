"""sciml train CONFIG.yaml [--resume]: train any registered model family from a YAML config (docs/training.md).

Multi-GPU / multi-node: torchrun --nproc_per_node N -m sciml train CONFIG.yaml (rank 0 writes all files).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model from a YAML config (see docs/training.md)", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, help="YAML config: task, data, model, loss, optim, schedule, train, output")
    p.add_argument("--resume", action="store_true", help="continue exactly from <output.dir>/last.pt")
    p.add_argument("--device", help="override train.device (auto, cpu, cuda, cuda:N)")
    p.add_argument("-o", "--output", help="override output.dir")
    p.add_argument("--max-steps", type=int, help="override train.max_steps")
    p.add_argument("--max-epochs", type=int, help="override train.max_epochs")
    p.add_argument("--max-time", type=float, metavar="SECONDS",
                   help="override train.max_time_s: stop cleanly after this much training (resume later)")
    p.add_argument("--print-config", action="store_true",
                   help="validate the config, print it with every default filled in, and exit")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value (YAML syntax), e.g. --set optim.lr=3e-4; repeatable")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sciml.training.config import load_config
    from sciml.training.distributed import shutdown_distributed
    from sciml.training.trainer import Trainer

    overrides = list(args.overrides)
    for flag, key in ((args.device, "train.device"), (args.output, "output.dir"), (args.max_steps, "train.max_steps"),
                      (args.max_epochs, "train.max_epochs"), (args.max_time, "train.max_time_s")):
        if flag is not None:
            overrides.append(f"{key}={json.dumps(flag)}")  # JSON is YAML: values arrive as typed
    config = load_config(args.config, overrides)
    if args.print_config:
        import yaml

        print(yaml.safe_dump(config, sort_keys=False), end="")
        return 0
    try:
        Trainer(config, resume=args.resume).run()
    finally:
        shutdown_distributed()
    return 0
