"""Scoring an archive: the local streaming job against the same job on a local Ray instance.

    python benchmarks/archive.py [--n 10000] [--distinct 300] [--images DIR] [--out-format parquet]
                                 [--layouts 2x1,1x2] [--steady 100] [--skip-ray]

Builds a folder of N realistic full-quality 600×450 JPEGs (predict_speed's files, ~250 KB:
`--distinct` of them, hard-linked under N names so the disk holds only the distinct ones), or
takes `--images`. Then runs, each as its own process, exactly what a user runs:
``dermalens predict FOLDER --out results.parquet --quiet`` and the same with
``--ray local --num-actors A --threads-per-actor T``. Prints, for each: wall time of the command,
the job's own images/s (from its summary line: scoring only, after start-up), and the peak
resident memory of the process (the driver, for Ray; its actors are other processes). Then the
ratio Ray / local. Targets (issue #19): Ray ≥ 0.8 × local on this machine, where it can only add
overhead; the local path ≤ 1 GB peak RSS for 10,000 images.

`--layouts 2x1,1x2` runs Ray once per actor layout (actors × threads per actor). `--steady M` (issue
#32) also runs every command on the first M images and reports the steady-state rate
(N − M) / (wall(N) − wall(M)), in which start-up (Ray's processes, the model's load) cancels out;
the target there is Ray's best layout ≥ 0.7 × the local job.
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
    parser.add_argument("--layouts", default="2x1", help="Ray layouts, ACTORSxTHREADS, comma-separated")
    parser.add_argument("--steady", type=int, help="also run on this many images: steady-state rates")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dermalens-archive-") as tmp:
        work = Path(tmp)
        folder = args.images or make_folder(work / "images", args.n, args.distinct, work / "distinct")
        n = sum(1 for _ in folder.rglob("*.jpg"))
        small = (
            make_folder(work / "small", args.steady, args.distinct, work / "distinct")
            if args.steady
            else None
        )
        print(f"{n} images in {folder} (cores: {os.cpu_count()})")
        modes = {"local": []}
        if not args.skip_ray:
            for layout in args.layouts.split(","):
                actors, threads = layout.lower().split("x")
                modes[f"ray {layout}"] = [
                    "--ray",
                    "local",
                    "--num-actors",
                    actors,
                    "--threads-per-actor",
                    threads,
                ]
        results = {}
        for name, extra in modes.items():
            base = [sys.executable, "-m", "dermalens.cli", "predict", "--quiet", *extra]
            base += ["--model", args.model] if args.model else []
            out = work / f"{name.replace(' ', '-')}.{args.out_format}"
            results[name] = run([*base, str(folder), "--out", str(out)])
            if small is not None:
                results[name] += run(
                    [*base, str(small), "--out", str(out.with_suffix(".small" + out.suffix))]
                )[:1]
        report(results, n, args.steady)
    return 0


def report(results: dict[str, tuple], n: int, steady: int | None) -> None:
    for name, (wall, rate, peak, line, *small) in results.items():
        more = f"  steady {(n - steady) / (wall - small[0]):6.1f} images/s" if small and steady else ""
        print(
            f"{name:<9} wall {wall:7.1f} s  {n / wall:6.1f} images/s end to end  job {rate:6.1f} images/s"
            f"{more}  peak RSS {peak / 2**20:6.0f} MiB   [{line}]"
        )
    local = results["local"]
    for name, other in results.items():
        if name == "local":
            continue
        line = f"{name} / local: {other[1] / local[1]:.2f} (job images/s), {local[0] / other[0]:.2f} (end to end)"
        if steady:
            line += f", {(local[4] - local[0]) / (other[4] - other[0]):.2f} (steady state; target ≥ 0.7)"
        print(line)
    print(f"local peak RSS for {n} images: {local[2] / 2**30:.2f} GiB; target ≤ 1 GiB for 10,000")


if __name__ == "__main__":
    sys.exit(main())
