"""Trainer overhead: one epoch of the project's Trainer against a bare PyTorch loop.

    python benchmarks/trainer_overhead.py            # LeNet, full MNIST, batch 64

Same model, batch size, in-memory data and thread count; the two are interleaved for several
rounds and the fastest epoch of each is compared (the least disturbed by other load).
Target: ratio <= 1.05. Records a row (default name MODEL-DATASET-batchN) in the ledger
benchmarks/results/trainer_overhead.json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import models  # noqa: E402
from benchmarks import ledger  # noqa: E402
from benchmarks.guard import guarded  # noqa: E402
from group_scissor.data import load_dataset  # noqa: E402
from group_scissor.train import TrainConfig, Trainer  # noqa: E402


def bare_epoch(model, x, y, cfg: TrainConfig, seed: int) -> float:
    """The loop a user would write: shuffle, forward, loss, backward, step, log the loss."""
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    start = time.perf_counter()
    for i in range(0, len(y), cfg.batch_size):
        idx = perm[i:i + cfg.batch_size]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
    return time.perf_counter() - start


def trainer_epoch(model, data, cfg: TrainConfig) -> float:
    """One epoch of Trainer.fit, without its evaluation pass (timed from its own record)."""
    res = Trainer(model, data, cfg, None, progress=False).fit()
    return res.history[0]["seconds"] - res.history[0].get("eval_seconds", 0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ledger.add_arguments(ap, "MODEL-DATASET-batchBATCH_SIZE")
    args = ap.parse_args()
    name = args.name or f"{args.model}-{args.dataset}-batch{args.batch_size}"
    ledger.refuse_existing("trainer_overhead", name, args.replace)
    data = load_dataset(args.dataset, args.data_dir)
    cfg = TrainConfig(epochs=1, batch_size=args.batch_size, lr=0.01, schedule="constant")
    bare, ours = [], []
    for r in range(args.rounds):
        torch.manual_seed(r)
        bare.append(bare_epoch(models.get(args.model), data.train.x, data.train.y, cfg, r))
        torch.manual_seed(r)
        ours.append(trainer_epoch(models.get(args.model), data, cfg))
        print(f"round {r}: bare {bare[-1]:.2f} s, trainer {ours[-1]:.2f} s")
    ratio = min(ours) / min(bare)
    config = {"model": args.model, "dataset": args.dataset, "batch_size": args.batch_size,
              "rounds": args.rounds, "train": cfg.__dict__}
    metrics = {
        "samples": len(data.train),
        "bare_epoch_seconds": [round(s, 3) for s in bare],
        "trainer_epoch_seconds": [round(s, 3) for s in ours],
        "ratio_min_over_min": round(ratio, 4), "target": 1.05, "meets_target": ratio <= 1.05,
    }
    print(json.dumps({"name": name, **metrics}, indent=1))
    ledger.record("trainer_overhead", ledger.make_row(name, args.model, config, metrics), args,
                  args.model)


if __name__ == "__main__":
    guarded(main)
