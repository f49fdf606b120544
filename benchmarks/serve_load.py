"""Load test of `POST /api/v1/predict` on loopback: N concurrent clients.

Starts its own server (`dermalens serve`, in a separate process so the clients do not share
its interpreter) on the bundled model, or `--model` artifacts, or uses `--url`. Each request
sends one JPEG (its multipart body encoded once per image, so that the clients, on the same cores,
spend little CPU): by default the realistic full-quality 600×450 files of `predict_speed.py`
(`--images DIR` for real files, `--synthetic` for the older smooth lesions). Unless `--url` is
given, it first measures the predictor itself on the same files (batches of 32, in this process,
before the server starts), and prints the server's throughput as a share of it and the p99 target
1.5 × clients / throughput. Prints throughput, p50/p90/p99 latency, the error count, and the CPU
seconds the server and the client each used; exits 1 when any request failed.

The client is Debian's compiled `wrk` when it is on PATH (`apt-get install wrk`; `wrk_load.py`:
16 keep-alive connections on 2 wrk threads for `--seconds`), else, or with `--client python`, a
Python client of `--requests` requests (it shares the server's two cores and its interpreter costs
CPU, so it measures the server low).

    apt-get install -y wrk && python benchmarks/serve_load.py   # 16 clients, 30 s, bundled model
    python benchmarks/serve_load.py --client python --requests 2000
    python benchmarks/serve_load.py --model runs/x/artifact --clients 32 --seconds 60 --json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import wrk_load
from PIL import Image


def lesion_jpeg(seed: int, size: tuple[int, int]) -> bytes:
    """A dark blob on skin-coloured noise: decodes and runs like a real dermoscopy photo."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    radius = rng.uniform(0.2, 0.35) * min(size)
    blob = np.exp(-(((yy - height / 2) ** 2 + (xx - width / 2) ** 2) / (2 * radius**2)))[..., None]
    image = np.array([205, 150, 130]) * (1 - blob) + np.array([90, 55, 40]) * blob
    image = image + rng.normal(0, 6, (height, width, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(args: argparse.Namespace, log_db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "dermalens.cli", "serve", "--port", str(port), "--log-db", str(log_db)]
    if args.model:
        command += ["--model", *args.model]
    if args.workers:
        command += ["--workers", str(args.workers)]
    env = {**os.environ}
    if args.max_batch:
        env["DERMALENS_MAX_BATCH"] = str(args.max_batch)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read().decode() if server.stderr else ''}")
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start within 120 s")


def multipart_body(image: bytes, name: str, heatmap: bool) -> tuple[bytes, str]:
    """One request's multipart body, encoded once: the clients share the server's two cores, and a
    load generator that re-encodes 250 KB per request in Python measures itself as much as the server."""
    boundary = "dermalensbench"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode() + image
    body += f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="heatmap"\r\n\r\n'.encode()
    body += f"{str(heatmap).lower()}\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def tree_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) of process `pid` and its descendants so far, from /proc (Linux)."""
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    if pid not in stats:
        return None
    family = {pid}
    for _ in range(4):  # uvicorn's workers are children of the server process
        family |= {p for p, (parent, _) in stats.items() if parent in family}
    total = sum(stats[p][1] for p in family)
    return total / os.sysconf("SC_CLK_TCK")


def request_bodies(images: list[bytes], heatmap: bool) -> list[tuple[bytes, str]]:
    """One multipart body per test image, for either client."""
    return [multipart_body(image, f"bench_{k}.jpg", heatmap) for k, image in enumerate(images)]


def run_load(url: str, images: list[bytes], clients: int, requests: int, heatmap: bool) -> dict[str, float]:
    """The Python client: `clients` threads share `requests` requests."""
    cpu_before = time.process_time()
    latencies: list[float] = []
    errors: list[str] = []
    counter = iter(range(requests))
    lock = threading.Lock()
    bodies = request_bodies(images, heatmap)

    def client(index: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while True:
                with lock:
                    number = next(counter, None)
                if number is None:
                    return
                body, content_type = bodies[number % len(bodies)]
                start = time.perf_counter()
                try:
                    response = http.post(
                        "/api/v1/predict", content=body, headers={"content-type": content_type}
                    )
                    ok = response.status_code == 200
                    problem = f"HTTP {response.status_code}: {response.text[:200]}"
                except httpx.HTTPError as err:
                    ok, problem = False, repr(err)
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed) if ok else errors.append(problem)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000 if latencies else np.array([np.nan])
    for problem in errors[:5]:
        print("error:", problem, file=sys.stderr)
    return {
        "client": "python",
        "clients": clients,
        "requests": requests,
        "ok": len(latencies),
        "errors": len(errors),
        "seconds": round(wall, 2),
        "throughput_rps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p90_ms": round(float(np.percentile(ms, 90)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
        "max_ms": round(float(ms.max()), 1),
        "client_cpu_s": round(time.process_time() - cpu_before, 2),
    }


def test_images(args: argparse.Namespace, folder: Path, size: tuple[int, int]) -> list[bytes]:
    """The JPEGs to send: real files, predict_speed's realistic ones (default), or smooth synthetic ones."""
    if args.synthetic:
        return [lesion_jpeg(seed, size) for seed in range(16)]
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from predict_speed import make_jpegs, real_images

    paths = real_images(args.images, 16) if args.images else make_jpegs(folder, 16)
    return [p.read_bytes() for p in paths]


def predictor_throughput(args: argparse.Namespace, images: list[bytes]) -> float:
    """The Python API's own batch throughput on `images` (what the server should keep up with)."""
    from dermalens import Classifier

    clf = Classifier.load(args.model)
    batch = [images[i % len(images)] for i in range(32)]
    clf.predict(list(batch))
    started, runs = time.perf_counter(), 4
    for _ in range(runs):
        clf.predict(list(batch))
    ips = runs * len(batch) / (time.perf_counter() - started)
    del clf  # its ONNX Runtime threads must not compete with the server's
    return ips


def measure(args: argparse.Namespace, images: list[bytes], folder: Path) -> tuple[dict[str, float], dict]:
    """Start the server (unless --url), warm it up, load it; the figures and the server's /model."""
    server = None
    try:
        if args.url:
            url = args.url.rstrip("/")
        else:
            server, url = start_server(args, folder / "predictions.db")
        model = httpx.get(url + "/api/v1/model", timeout=10).json()
        run_load(url, images, min(args.clients, 8), args.warmup, args.heatmap)
        cpu_before = tree_cpu_seconds(server.pid) if server else None
        if args.client == "wrk":
            result = wrk_load.run_wrk(url, request_bodies(images, args.heatmap), args.clients, args.seconds)
        else:
            result = run_load(url, images, args.clients, args.requests, args.heatmap)
        cpu_after = tree_cpu_seconds(server.pid) if server else None
        if cpu_before is not None and cpu_after is not None:
            result["server_cpu_s"] = round(cpu_after - cpu_before, 2)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
    return result, model


def report(args: argparse.Namespace, result: dict) -> str:
    lines = [
        f"model {result['model']} (input {result['input_size'][0]}×{result['input_size'][1]}), "
        f"{result['cpus']} CPUs, {args.clients} clients ({result['client']}), {result['requests']} "
        f"requests of one {args.size} JPEG",
        f"throughput {result['throughput_rps']} req/s over {result['seconds']} s; latency p50 "
        f"{result['p50_ms']} ms, p90 {result['p90_ms']} ms, p99 {result['p99_ms']} ms, max "
        f"{result['max_ms']} ms; errors {result['errors']}",
        f"CPU seconds: server {result.get('server_cpu_s', 'n/a')}, client {result['client_cpu_s']} "
        f"(of {result['cpus'] * result['seconds']:.0f} on {result['cpus']} cores)",
    ]
    if "ratio" in result:
        target = 1.5 * args.clients / result["throughput_rps"]
        lines.append(
            f"predictor on the same files, batches of 32: {result['predictor_ips']} images/s -> the "
            f"server does {result['ratio']} of it (target >= 0.8); p99 target 1.5 x {args.clients} / "
            f"throughput = {1000 * target:.0f} ms ({'met' if result['p99_ms'] <= 1000 * target else 'not met'})"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", nargs="+", help="artifact folder(s) (default: the bundled model)")
    parser.add_argument("--url", help="load an already running server instead of starting one")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--client",
        choices=("wrk", "python"),
        default="wrk" if wrk_load.available() else "python",
        help="load generator (default: wrk when installed)",
    )
    parser.add_argument("--seconds", type=float, default=30, help="wrk: how long the load lasts")
    parser.add_argument("--requests", type=int, default=2000, help="python client: requests sent")
    parser.add_argument("--warmup", type=int, default=32, help="requests sent first and not counted")
    parser.add_argument("--size", default="600x450", help="width×height of the --synthetic JPEGs")
    parser.add_argument("--images", type=Path, help="folder of real images to send")
    parser.add_argument("--synthetic", action="store_true", help="smooth synthetic lesions instead")
    parser.add_argument("--heatmap", action="store_true", help="ask for heatmaps too")
    parser.add_argument(
        "--workers",
        type=int,
        help="server processes (serve --workers N; each gets cores/N ONNX Runtime threads)",
    )
    parser.add_argument("--max-batch", type=int, help="server: most images per shared batch")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.client == "wrk" and not wrk_load.available():
        raise SystemExit("wrk is not installed: apt-get install wrk, or pass --client python")
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as folder:
        images = test_images(args, Path(folder), (width, height))
        predictor_ips = None if args.url else predictor_throughput(args, images)
        result, model = measure(args, images, Path(folder))
    result = {"model": model["model_id"], "input_size": model["input_size"], "cpus": os.cpu_count(), **result}
    if predictor_ips:
        result["predictor_ips"] = round(predictor_ips, 1)
        result["ratio"] = round(result["throughput_rps"] / predictor_ips, 2)
    print(json.dumps(result) if args.json else report(args, result))
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
