"""Drive `POST /api/v1/predict` with Debian's compiled `wrk` (`apt-get install wrk`): a load generator
that costs the two shared cores little, so the server is measured rather than the client.

Used by `serve_load.py` (its default client when `wrk` is on PATH). wrk sends fixed bodies; a Lua
script loads the multipart bodies (one file per test image, encoded once) and rotates through them,
and its `done` hook prints one JSON line with the counts and latency percentiles wrk measured.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import tempfile
from pathlib import Path

LUA = r"""
local bodies, n, ctype = {}, 0, nil
function init(args)
  ctype = args[1]
  for i = 2, #args do
    local f = assert(io.open(args[i], "rb")); bodies[#bodies + 1] = f:read("*a"); f:close()
  end
end
function request()
  n = n + 1
  return wrk.format("POST", "/api/v1/predict", {["Content-Type"] = ctype}, bodies[(n % #bodies) + 1])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    url: str, bodies: list[tuple[bytes, str]], clients: int, seconds: float, threads: int = 2
) -> dict[str, float]:
    """`clients` keep-alive connections on `threads` wrk threads for `seconds`; the figures wrk
    measured, plus the CPU seconds wrk itself used (from the kernel's accounting of the child)."""
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "predict.lua"
        script.write_text(LUA)
        files = []
        for k, (body, _) in enumerate(bodies):
            files.append(Path(folder) / f"body{k}.bin")
            files[-1].write_bytes(body)
        command = ["wrk", f"-t{min(threads, clients)}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "60s"]
        command += ["-s", str(script), url, "--", bodies[0][1], *map(str, files)]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout[-500:]}")
    raw = json.loads(lines[-1])
    wall = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("connect", "read", "write", "status", "timeout"))
    ok = raw["requests"] - raw["status"]
    return {
        "client": "wrk",
        "clients": clients,
        "requests": raw["requests"],
        "ok": ok,
        "errors": errors,
        "seconds": round(wall, 2),
        "throughput_rps": round(ok / wall, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 1),
        "p90_ms": round(raw["p90_us"] / 1000, 1),
        "p99_ms": round(raw["p99_us"] / 1000, 1),
        "max_ms": round(raw["max_us"] / 1000, 1),
        "client_cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
    }
