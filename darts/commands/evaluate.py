"""Error of saved weights: ours (weights.pt of `darts train`) or the official release's.

  darts evaluate cifar10  --genotype DARTS_V2 --weights cifar10_model.pt
  darts evaluate imagenet --genotype DARTS_V2 --weights imagenet_model.pt [--imagenet-root DIR]

The network is the one the params section train_cifar10 / train_imagenet describes, as training
built it: 20 cells, 36 channels / 14 cells, 48 channels at paper scale, with the auxiliary tower
when auxiliary_weight > 0 (the official weights have one). Weights load with strict key and shape
matching (a `module.` prefix is accepted); the CIFAR-10 test set or the ImageNet validation set is
evaluated once. Smoke-scale weights need --scale smoke, like the run that wrote them.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from darts.config import add_config_args, params_from_args
from darts.genotypes import load_genotype
from darts.io import write_json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage examples' lines
    parser.add_argument("dataset", choices=("cifar10", "imagenet"))
    parser.add_argument("--genotype", required=True,
                        help="a published name, a genotype.json, or a Genotype(...) string")
    parser.add_argument("--weights", type=Path, required=True, help="a state dict in the official layout")
    parser.add_argument("--data", type=Path, help="CIFAR-10 folder (default: <data.root>/cifar10)")
    parser.add_argument("--imagenet-root", type=Path,
                        help="ImageNet root (default: data.imagenet_root, else the recorded one)")
    parser.add_argument("--out", type=Path, help="also write the result to this JSON file")
    add_config_args(parser)


def run(args: argparse.Namespace) -> int:
    from darts import distributed, runtime
    from darts.train import cnn
    from darts.train.run import data_root

    params = params_from_args(args)
    task = cnn.Task(args.dataset)
    cfg = getattr(params, task.section)
    genotype = load_genotype(args.genotype, "cnn")
    root = data_root(task.dataset, params, args.imagenet_root if task.dataset == "imagenet" else args.data)
    device = runtime.setup(params.runtime, seed=0)
    eval_set, num_classes, _ = cnn.load_eval_data(task, params, root)
    model = cnn.load_trained(task, cfg, genotype, num_classes, args.weights).to(device)
    result = cnn.evaluate(model, eval_set, cfg, device, distributed.World(), params.runtime.num_workers)
    summary = {
        "dataset": task.dataset,
        "weights": str(args.weights),
        "genotype": args.genotype,
        "top1_error": round(100.0 - result.top1, 4),
        "top5_error": round(100.0 - result.top5, 4),
        "loss": result.loss,
        "images": result.images,
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        write_json(args.out, summary)
    return 0
