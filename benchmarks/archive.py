"""Scoring an archive: the local streaming job against the same job on a local Ray instance.

    python benchmarks/archive.py [--n 10000] [--distinct 300] [--images DIR] [--out-format parquet]
                                 [--num-actors 2] [--threads-per-actor 1] [--skip-ray]

Builds a folder of N realistic full-quality 600×450 JPEGs (predict_speed's files, ~250 KB:
`--distinct` of them, hard-linked under N names so the disk holds only the distinct ones), or
takes `--images`. Then runs, each as its own process, exactly what a user runs:
``dermalens predict FOLDER --out results.parquet --quiet`` and the same with
``--ray local --num-actors A --threads-per-actor T``. Prints, for each: wall time of the command,
the job's own images/s (from its summary line: scoring only, after start-up), and the peak
resident memory of the process (the driver, for Ray; its actors are other processes). Then the
ratio Ray / local. Targets (issue #19): Ray ≥ 0.8 × local on this machine, where it can only add
overhead; the local path ≤ 1 GB peak RSS for 10,000 images.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_folder(folder: Path, n: int, distinct: int, originals: Path) -> Path:
    spec = importlib.util.spec_from_file_location("predict_speed", ROOT / "benchmarks" / "predict_speed.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    originals.mkdir(parents=True, exist_ok=True)
    files = module.make_jpegs(originals, min(n, distinct))
    for i in range(n):
        target = folder / f"{i // 1000:02d}" / f"img{i:05d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(files[i % len(files)], target)
    return folder


def run(command: list[str]) -> tuple[float, float, int, str]:
    """(wall seconds, job images/s, peak RSS bytes of the process, its summary line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    line = next((x for x in done.stdout.splitlines() if "images scored in" in x), "")
    rate = re.search(r"\(([\d.]+) images/s\)", line)
    # ru_maxrss is the largest child so far (kB): valid for this one when it is the largest yet.
    return wall, float(rate.group(1)) if rate else float("nan"), max(peak, before) * 1024, line


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--distinct", type=int, default=300)
    parser.add_argument("--images", type=Path, help="score this folder instead of generated files")
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--out-format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--num-actors", type=int, default=2)
    parser.add_argument("--threads-per-actor", type=int, default=1)
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dermalens-archive-") as tmp:
        work = Path(tmp)
        folder = args.images or make_folder(work / "images", args.n, args.distinct, work / "distinct")
        n = sum(1 for _ in folder.rglob("*.jpg"))
        base = [sys.executable, "-m", "dermalens.cli", "predict", str(folder), "--quiet"]
        base += ["--model", args.model] if args.model else []
        print(f"{n} images in {folder} (cores: {os.cpu_count()})")
        results = {}
        local = work / f"local.{args.out_format}"
        results["local"] = run([*base, "--out", str(local)])
        if not args.skip_ray:
            remote = work / f"ray.{args.out_format}"
            ray_args = ["--ray", "local", "--num-actors", str(args.num_actors)]
            ray_args += ["--threads-per-actor", str(args.threads_per_actor)]
            results["ray"] = run([*base, "--out", str(remote), *ray_args])
        for name, (wall, rate, peak, line) in results.items():
            print(
                f"{name:<6} wall {wall:7.1f} s  {n / wall:6.1f} images/s end to end  job {rate:6.1f} images/s  "
                f"peak RSS {peak / 2**20:7.0f} MiB   [{line}]"
            )
        if "ray" in results:
            (lw, lr, _, _), (rw, rr, _, _) = results["local"], results["ray"]
            print(f"Ray / local: {rr / lr:.2f} (job images/s), {lw / rw:.2f} (end to end); target ≥ 0.8")
        print(
            f"local peak RSS for {n} images: {results['local'][2] / 2**30:.2f} GiB; target ≤ 1 GiB for 10,000"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
