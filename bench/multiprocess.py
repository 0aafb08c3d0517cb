#!/usr/bin/env python
"""Generation time of one ES run as 1 process x 8 devices versus 2 processes x 4 devices on this machine.

    python bench/multiprocess.py                  # `vsml` on digits, 12 generations each
    python bench/multiprocess.py --generations 20 --population 256

Both layouts do the same work on 8 fake CPU devices sharing this machine's cores; the 2 x 4 one adds the
cross-process all-gather of the fitness scalars (gloo over loopback) and process coordination. The
communication share is (t_2x4 - t_1x8) / t_2x4 of the median generation time (first 2 generations, which
include compilation, are dropped). Prints a table and writes bench/results/multiprocess.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(layout: str, args: argparse.Namespace, run_dir: Path) -> list[float]:
    common = ["--run-dir", str(run_dir), "--learner", args.learner, "--generations", str(args.generations),
              "--population", str(args.population), "--eval-every", str(args.generations), "--checkpoint-every",
              str(args.generations), "--no-progress"]
    if layout == "1x8":
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
        cmd = [sys.executable, str(ROOT / "launch" / "meta_train.py"), "--devices", "8", *common]
    else:
        env = dict(os.environ)
        cmd = [sys.executable, str(ROOT / "launch" / "local_cluster.py"), "--processes", "2",
               "--devices-per-process", "4", "--", *common]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["seconds"] for line in lines]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generations", type=int, default=12)
    p.add_argument("--population", type=int, default=128)
    p.add_argument("--learner", default="vsml", help="learner spec; 'vsml' is the one the recorded figures measured")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "multiprocess.json")
    args = p.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout in ("1x8", "2x4"):
            seconds = run(layout, args, Path(tmp) / layout)[2:]
            results[layout] = {"median_seconds_per_generation": statistics.median(seconds), "seconds": seconds}
    t18, t24 = (results[k]["median_seconds_per_generation"] for k in ("1x8", "2x4"))
    results["communication_share"] = (t24 - t18) / t24
    results["config"] = {"population": args.population, "generations": args.generations, "cpu_count": os.cpu_count()}
    print(f"population {args.population}, {os.cpu_count()} CPU cores, median seconds per generation:")
    print(f"  1 process x 8 devices   {t18:.3f}")
    print(f"  2 processes x 4 devices {t24:.3f}   communication share {results['communication_share']:.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
