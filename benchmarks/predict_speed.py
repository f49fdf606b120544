"""Prediction speed of an artifact on this machine: end-to-end latency, batch throughput, eager PyTorch ratio.

    python benchmarks/predict_speed.py [--model DIR] [--n 200]

Uses 600×450 JPEGs (the full HAM10000 resolution): the shared HAM10000 images
upscaled when present, else synthetic lesions. Prints p50/p95 latency for one image
end to end (decode + preprocess + model), folder throughput, and the same model in
eager PyTorch (needs the `train` extra) as ratios. Set MALLOC_MMAP_MAX_=0
MALLOC_TRIM_THRESHOLD_=68719476736 for steady timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HAM = ROOT.parent / "shared" / "data" / "ham10000" / "images"


def make_jpegs(folder: Path, n: int) -> list[Path]:
    sources = sorted(HAM.glob("*.jpg"))[:n] if HAM.is_dir() else []
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        if sources:
            image = (
                Image.open(sources[i % len(sources)])
                .convert("RGB")
                .resize((600, 450), Image.Resampling.BICUBIC)
            )
        else:
            image = Image.fromarray(rng.integers(0, 255, (450, 600, 3), dtype=np.uint8))
        path = folder / f"img{i:04d}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    return paths


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def stage_medians(clf, data: list[bytes], runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median ms of each step of one prediction: where the end-to-end time goes."""
    from dermalens.inference.ood import colour_score
    from dermalens.inference.preprocess import load_canonical, normalize

    member, spec = clf.members[0], clf.meta.preprocessing
    times: dict[str, list[float]] = {"decode + crop/resize + colour constancy": [], "normalise": []}
    times |= {"ONNX Runtime": [], "OOD gate (+ colour score)": []}
    for i in range(runs):
        t0 = time.perf_counter()
        canon = load_canonical(data[i % len(data)], spec)
        t1 = time.perf_counter()
        batch = normalize(canon, spec)[None]
        t2 = time.perf_counter()
        out = member.runtime.run(batch, None)
        t3 = time.perf_counter()
        if member.gate is not None:
            member.gate.score(out["features"], [colour_score(canon)], out.get("level_features"))
        t4 = time.perf_counter()
        for key, (a, b) in zip(times, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            times[key].append((b - a) * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--n", type=int, default=200, help="images for the throughput run")
    parser.add_argument("--latency-runs", type=int, default=200)
    args = parser.parse_args()

    from dermalens import Classifier

    clf = Classifier.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp), args.n)
        data = [p.read_bytes() for p in paths]
        for item in data[:10]:
            clf.predict(item)  # warm-up
        latency = []
        for i in range(args.latency_runs):
            started = time.perf_counter()
            clf.predict(data[i % len(data)])
            latency.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for start in range(0, len(paths), 32):
            clf.predict(list(paths[start : start + 32]))
        throughput = len(paths) / (time.perf_counter() - started)

        print(f"model: {clf.meta.name} ({clf.meta.architecture}, input {clf.meta.preprocessing.input_size})")
        print(
            f"ONNX Runtime, one 600x450 JPEG end to end: p50 {statistics.median(latency):.2f} ms, "
            f"p95 {percentile(latency, 95):.2f} ms  (n={len(latency)})"
        )
        print(f"ONNX Runtime, folder of {len(paths)} JPEGs in batches of 32: {throughput:.1f} images/s")
        steps = stage_medians(clf, data, args.latency_runs)
        print("  one image, median per step: " + ", ".join(f"{k} {v:.2f} ms" for k, v in steps.items()))
        try:
            torch_clf = Classifier.load(args.model, runtime="torch")
        except ImportError:
            print("eager PyTorch: not installed (pip install '.[train]') - ratio not measured")
            return 0
        for item in data[:5]:
            torch_clf.predict(item)
        torch_latency = []
        for i in range(min(60, args.latency_runs)):
            started = time.perf_counter()
            torch_clf.predict(data[i % len(data)])
            torch_latency.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        for start in range(0, min(len(paths), 96), 32):
            torch_clf.predict(list(paths[start : start + 32]))
        torch_throughput = min(len(paths), 96) / (time.perf_counter() - started)
        print(
            f"eager PyTorch, one image end to end: p50 {statistics.median(torch_latency):.2f} ms "
            f"-> ONNX Runtime is {statistics.median(torch_latency) / statistics.median(latency):.2f}x faster"
        )
        print(
            f"eager PyTorch, batches of 32: {torch_throughput:.1f} images/s "
            f"-> ONNX Runtime is {throughput / torch_throughput:.2f}x faster"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
