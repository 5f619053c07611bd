"""Agent benchmark: the node agent's own CPU per request, and its latency, under scrapes.

A real agent runs in a child process (`serve`, exactly what `fleetdeck agent` runs) over the NVML
fake with 8 H200s, telemetry interval 1 s; this process sends it `--requests` sequential
`GET /v1/snapshot` and as many `GET /metrics` on one keep-alive connection. It reports the
agent's CPU per request (psutil on the child: user + system), and the latency this client saw,
p50/p99. Sweeps happen once per interval whatever the request rate, so they are part of the
figure. Target: <= 0.25 ms of agent CPU per request.

    python bench/agent.py [--requests 1000] [--gpus 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402

TARGET_MS = 0.25
WARMUP_REQUESTS = 50
PATHS = ("/v1/snapshot", "/metrics")


def serve(gpus: int) -> int:
    """The child: an agent on a free loopback port over the NVML fake."""
    from console.agent.config import AgentConfig, Listen
    from console.agent.server import serve as serve_agent
    from tests.agent.fake_nvml import FakeNvml, h200

    config = AgentConfig(path=None, node="bench-node", listen=Listen("127.0.0.1", 0))
    nvml = FakeNvml([h200(index) for index in range(gpus)])
    return asyncio.run(serve_agent(config, None, None, nvml=nvml))


def start_agent(gpus: int) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--serve", "--gpus", str(gpus)]
    agent = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert agent.stdout is not None
    line = agent.stdout.readline()
    if not line.startswith("listening on "):
        agent.kill()
        raise SystemExit(f"the agent did not start (exit {agent.wait()})")
    return agent, line.removeprefix("listening on ").strip()


def agent_cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def measure(
    client: httpx.Client, url: str, process: psutil.Process, count: int
) -> dict[str, float]:
    latencies_ms = []
    size = 0
    cpu_before = agent_cpu_s(process)
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(url)
        latencies_ms.append((time.perf_counter() - started) * 1000.0)
        if response.status_code != 200:
            raise SystemExit(f"{url}: HTTP {response.status_code}")
        size = len(response.content)
    cpu_ms = (agent_cpu_s(process) - cpu_before) * 1000.0
    cuts = statistics.quantiles(latencies_ms, n=100)
    return {
        "cpu_ms_per_request": cpu_ms / count,
        "p50_ms": statistics.median(latencies_ms),
        "p99_ms": cuts[98],
        "bytes": size,
        "cpu_ms": cpu_ms,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="per path (default 1000)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs of the NVML fake (default 8)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.gpus)
    agent, base = start_agent(args.gpus)
    try:
        process = psutil.Process(agent.pid)
        with httpx.Client(timeout=5.0) as client:
            for path in PATHS:  # connection open, first sweep and renderings made
                for _ in range(WARMUP_REQUESTS):
                    client.get(base + path)
            results = {path: measure(client, base + path, process, args.requests) for path in PATHS}
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    print(
        f"agent: {args.gpus} GPUs (NVML fake), interval 1s, {args.requests} sequential "
        "requests per path on one keep-alive connection"
    )
    header = ("requests", "agent CPU ms/req", "p50 ms", "p99 ms", "bytes")
    print(f"{'path':<14} " + " ".join(f"{title:>{len(title) + 1}}" for title in header))
    for path, result in results.items():
        print(
            f"{path:<14} {args.requests:>9} {result['cpu_ms_per_request']:>17.3f} "
            f"{result['p50_ms']:>7.3f} {result['p99_ms']:>7.3f} {result['bytes']:>6.0f}"
        )
    total_ms = sum(result["cpu_ms"] for result in results.values())
    per_request = total_ms / (args.requests * len(PATHS))
    worst_p99 = max(result["p99_ms"] for result in results.values())
    print(f"worst p99 {worst_p99:.3f} ms")
    print(f"RESULT agent_cpu_ms_per_request={per_request:.3f} target={TARGET_MS:g}")
    return 0 if per_request <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
