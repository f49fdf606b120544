"""Prediction speed of an artifact on this machine: end-to-end latency, batch throughput, eager PyTorch ratio.

    python benchmarks/predict_speed.py [--model DIR] [--images DIR] [--n 200]

Images: real files with `--images DIR` (JPEGs of your camera: the honest figure), else a
realistic substitute: 600×450 full-quality JPEGs (quality 97, ~245 KB, near the ~270 KB of a real
dermoscopy photo) made from the shared HAM10000 images with real-photo grain and fine detail
added, so that decoding costs what a real photo costs (an upscaled 200×150 file is smoother,
smaller and decodes several times faster). Printed, all measured in this one run:
- one image end to end (decode + preprocessing + ONNX Runtime + calibration + OOD gate):
  p50/p95, and its ratio to decode + ONNX Runtime alone (the floor: what is left is ours);
- folder throughput in calls of 32 and in one call, and their ratio to the two-core bound
  1 / (1 / ONNX Runtime's batch images/s + decode-and-preprocess CPU seconds per image / 2),
  ONNX Runtime alone measured as one session on every core, batches of 32 (the engine itself runs
  one single-threaded session per lane: `inference.engine.Engine.load` says why);
- the same model in eager PyTorch (needs the `train` extra) as ratios.
Set MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=68719476736 for steady timings.
"""

from __future__ import annotations

import argparse
import os
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
    """Full-quality 600×450 JPEGs with real-photo detail: HAM10000 upscaled, plus sensor grain and
    fine skin texture (synthetic lesions when the shared data is absent)."""
    sources = sorted(HAM.glob("*.jpg"))[:n] if HAM.is_dir() else []
    paths = []
    rng = np.random.default_rng(0)
    for i in range(n):
        if sources:
            base = np.asarray(
                Image.open(sources[i % len(sources)])
                .convert("RGB")
                .resize((600, 450), Image.Resampling.BICUBIC),
                dtype=np.float32,
            )
        else:
            yy, xx = np.mgrid[0:450, 0:600]
            blob = np.exp(-(((yy - 225) ** 2 + (xx - 300) ** 2) / (2 * 90.0**2)))[..., None]
            base = np.array([205, 150, 130]) * (1 - blob) + np.array([90, 55, 40]) * blob
        texture = Image.fromarray(rng.integers(0, 256, (225, 300), dtype=np.uint8)).resize((600, 450))
        detail = 0.3 * (np.asarray(texture, dtype=np.float32)[..., None] - 128)
        grain = rng.normal(0, 16.0, base.shape)
        image = Image.fromarray(np.clip(base + detail + grain, 0, 255).astype(np.uint8))
        path = folder / f"img{i:04d}.jpg"
        image.save(path, quality=97)
        paths.append(path)
    return paths


def real_images(folder: Path, n: int) -> list[Path]:
    from dermalens.core.decode import IMAGE_SUFFIXES

    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not found:
        raise SystemExit(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return [found[i % len(found)] for i in range(n)]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def stage_medians(clf, data: list[bytes], runs: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Median ms of each step of one prediction, as the engine runs them: where the time goes. An
    ensemble decodes once (at its largest member's floor) and runs the other steps once per member:
    each step's time is summed over the members."""
    from dermalens.core.decode import decode_image
    from dermalens.core.preprocess import canonical, normalize
    from dermalens.models.ood import colour_score

    names = ("decode (draft mode)", "crop/resize + colour constancy", "normalise", "ONNX Runtime", "OOD gate")
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        t0 = time.perf_counter()
        rgb = decode_image(data[i % len(data)], min_size=clf.engine.decode_size())
        step = [time.perf_counter() - t0, 0.0, 0.0, 0.0, 0.0]
        for member in clf.members:
            spec = member.meta.preprocessing
            t1 = time.perf_counter()
            canon = canonical(rgb, spec)
            t2 = time.perf_counter()
            batch = normalize(canon, spec)[None]
            t3 = time.perf_counter()
            out = member.runtime.run(batch, None)
            t4 = time.perf_counter()
            if member.gate is not None:
                member.gate.score(out["features"], [colour_score(canon)], out.get("level_features"))
            t5 = time.perf_counter()
            for k, (start, end) in enumerate(((t1, t2), (t2, t3), (t3, t4), (t4, t5)), start=1):
                step[k] += end - start
        for key, seconds in zip(times, step, strict=True):
            times[key].append(seconds * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


def ort_batch_throughput(clf, data: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """ONNX Runtime alone on ready inputs, batches of 32, one session on every core (the engine's
    lanes run one thread each; the bound keeps the definition it had before them): images/s, with
    every member's network run once per image."""
    from dermalens.artifact.meta import ONNX_FILE
    from dermalens.core.preprocess import prepare
    from dermalens.inference.runtime import OnnxRuntime

    seconds = 0.0
    for member in clf.members:
        session = OnnxRuntime(member.folder / ONNX_FILE, os.cpu_count())
        batch = np.stack([prepare(d, member.meta.preprocessing) for d in data[:32]])
        session.run(batch, None)
        started, runs = time.perf_counter(), 4
        for _ in range(runs):
            session.run(batch, None)
        seconds += (time.perf_counter() - started) / (runs * len(batch))
    return 1 / seconds


def prep_cpu_seconds(clf, data: list[bytes]) -> float:  # type: ignore[no-untyped-def]
    """CPU seconds per image of one decode + each member's canonical view and normalisation (one
    thread, process CPU time)."""
    from dermalens.core.decode import decode_image
    from dermalens.core.preprocess import canonical, normalize

    specs = [member.meta.preprocessing for member in clf.members]
    started = time.process_time()
    for d in data:
        rgb = decode_image(d, min_size=clf.engine.decode_size())
        for spec in specs:
            normalize(canonical(rgb, spec), spec)
    return (time.process_time() - started) / len(data)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="artifact folder (default: bundled)")
    parser.add_argument("--n", type=int, default=200, help="images for the throughput run")
    parser.add_argument("--latency-runs", type=int, default=200)
    parser.add_argument("--images", type=Path, help="folder of real images to time (default: synthetic)")
    args = parser.parse_args()

    from dermalens import Classifier
    from dermalens.artifact.meta import ArtifactError

    clf = Classifier.load(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        paths = real_images(args.images, args.n) if args.images else make_jpegs(Path(tmp), args.n)
        data = [p.read_bytes() for p in paths]
        kind = f"real files from {args.images}" if args.images else "realistic synthetic 600x450 JPEGs"
        print(f"images: {len(paths)} {kind}, mean {np.mean([len(d) for d in data]) / 1024:.0f} KB")
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
        started = time.perf_counter()
        clf.predict(list(paths))
        folder_throughput = len(paths) / (time.perf_counter() - started)

        inputs = ", ".join(str(m.meta.preprocessing.input_size) for m in clf.members)
        print(
            f"model: {clf.meta.name} ({len(clf.members)} network(s) {clf.meta.architecture}, input {inputs})"
        )
        print(
            f"ONNX Runtime, one 600x450 JPEG end to end: p50 {statistics.median(latency):.2f} ms, "
            f"p95 {percentile(latency, 95):.2f} ms  (n={len(latency)})"
        )
        print(
            f"ONNX Runtime, folder of {len(paths)} JPEGs in calls of 32: {throughput:.1f} images/s; "
            f"in one call (what `dermalens predict FOLDER` does): {folder_throughput:.1f} images/s "
            f"({getattr(clf.engine, 'lanes', 1)} lanes)"
        )
        steps = stage_medians(clf, data, args.latency_runs)
        print("  one image, median per step: " + ", ".join(f"{k} {v:.2f} ms" for k, v in steps.items()))
        floor = steps["decode (draft mode)"] + steps["ONNX Runtime"]
        print(
            f"  end to end / (decode + ONNX Runtime alone, {floor:.2f} ms): "
            f"{statistics.median(latency) / floor:.2f} (target <= 1.10)"
        )
        ort_ips, prep = ort_batch_throughput(clf, data), prep_cpu_seconds(clf, data)
        bound = 1 / (1 / ort_ips + prep / 2)
        print(
            f"  two-core bound: ONNX Runtime alone {ort_ips:.1f} images/s in batches, decode+preprocess "
            f"{1000 * prep:.2f} CPU ms/image -> {bound:.1f} images/s; folder throughput is "
            f"{throughput / bound:.2f} of it in calls of 32, {folder_throughput / bound:.2f} in one call "
            "(target >= 0.85)"
        )
        try:
            torch_clf = Classifier.load(args.model, runtime="torch")
        except ImportError:
            print("eager PyTorch: not installed (pip install '.[train]') - ratio not measured")
            return 0
        except ArtifactError as err:  # an ensemble's members carry no weights.pt: ONNX Runtime only
            print(f"eager PyTorch: not measured ({err})")
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
