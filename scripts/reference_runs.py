"""Reference runs: digests of the final weights and the metrics of a fixed set of tiny runs, to show that a
change of the code leaves the numbers a run computes bitwise as they were.

    python scripts/reference_runs.py --out before.json        # on the code before the change
    python scripts/reference_runs.py --compare before.json    # after it: exit 1 on any difference

The runs cover both loaders (in memory and streamed), every lr schedule, the warm-up, both optimizers, the
shortcut options, a plain net, a resume in the middle of an epoch and two gloo workers. They train in this
process with one thread (the tests' setting), on the CPU, from generated data.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from clitools import TINY, compose_config  # noqa: E402
from imagetree import write_tree  # noqa: E402

from resnet_train.cli.train import run_job  # noqa: E402
from resnet_train.engine.checkpoint import load_checkpoint  # noqa: E402

BASE = [*TINY, "trainer.max_iters=24", "trainer.eval_every=12", "trainer.log_every=4",
        "trainer.checkpoint_every=10", "trainer.precision=fp32"]  # fmt: skip
STEPS = [*BASE, "sched.milestones=[16]"]  # sched=paper_cifar
STREAM = ["model=resnet18", "data=imagefolder", "data.num_classes=3", "data.image_size=16",
          "data.scale_range=[18,24]", "data.test_resize=18", "data.workers=0", "trainer.max_iters=6",
          "trainer.batch_size=4", "trainer.eval_every=3", "trainer.log_every=2", "trainer.device=cpu",
          "trainer.progress=false", "optim.lr=0.01"]  # fmt: skip

CASES: dict[str, list[str]] = {
    "memory_paper_cifar": STEPS,
    "step": [*BASE, "sched=step", "sched.step_every=10"],
    "cosine": [*BASE, "sched=cosine"],
    "plateau": [*BASE, "sched=paper_imagenet", "sched.patience=1", "trainer.eval_every=4"],
    "warmup": [*STEPS, "sched.warmup=on", "sched.warmup_until_train_error=0.9"],
    "adamw": [*BASE, "optim=adamw", "sched=cosine"],
    "shortcut_B": [*STEPS, "model.shortcut=B"],
    "shortcut_C": [*STEPS, "model.shortcut=C"],
    "plain": [*STEPS, "model=plain20", "model.depth=8"],
    "two_gloo_workers": [*STEPS, "trainer.devices=2"],
}
RESUMED = "resume_mid_epoch"  # STEPS stopped at 10 iterations (batch 2 of epoch 1), then run on to 24
STREAMED = "stream_paper_imagenet"

# What a run's metrics.json says about time and place, not numbers.
NOT_NUMBERS = ("seconds", "_s", "images_per_s", "date", "run_dir", "host", "torch", "version", "commit")


def weights_digest(run_dir: Path) -> str:
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def numbers(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {k: v for k, v in sorted(metrics.items()) if isinstance(v, (int, float)) and not any(
        part in k for part in NOT_NUMBERS)}  # fmt: skip


def train(run_dir: Path, *overrides: str) -> dict:
    run_job(compose_config(*overrides), run_dir)
    return {"weights": weights_digest(run_dir), "metrics": numbers(run_dir)}


def reference(work: Path) -> dict:
    torch.set_num_threads(1)
    results = {name: train(work / name, *overrides) for name, overrides in CASES.items()}
    resumed = work / RESUMED
    run_job(compose_config(*STEPS, "trainer.max_iters=10"), resumed)
    results[RESUMED] = train(resumed, *STEPS)
    tree = write_tree(work / "tree")
    results[STREAMED] = train(work / STREAMED, *STREAM, f"data.root={tree}", "sched=paper_imagenet")
    return results


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, help="write the digests here")
    parser.add_argument("--compare", type=Path, help="compare with digests written before")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        results = reference(Path(work))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differing = [name for name in before if before[name] != results.get(name)]
        for name in differing:
            print(f"{name}: before {before[name]}\n{' ' * len(name)}  after  {results.get(name)}")
        print(f"{len(before) - len(differing)} of {len(before)} reference runs bitwise equal")
        sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
