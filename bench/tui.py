"""TUI benchmark: the fleet console at 1,000 nodes against DESIGN.md's targets.

A simulated fleet (`fleetdeck sim`: moving figures, 8 GPUs a node, pools of 50 behind a
two-replica gateway) runs in its own process; this process reads it through the real collector
(engine, agent and gateway targets, every second) and drives the real app headless
(`App.run_test`). A frame counts once Textual has composed it and encoded it for the terminal:
headless mode skips the encoding and the write, so the benchmark does the encoding itself and
a frame costs all a real terminal's would but the write.

1. apply: 100 snapshots recorded from the live collector, replayed one by one through the
   app's `publish` (what the feed calls: the event log's observe and the fleet screen's apply),
   timed from the call to the end of the first frame after it (the new figures on screen) and
   of the last frame it causes, at 160x48 and 80x24; then the app fed by the live collector,
   which polls on a thread of its own in this process, as `fleetdeck tui` runs it.
2. key to modal: `d` on the node under the cursor until the confirm modal is painted, declined
   with `n` between presses; on the replayed fleet, then live.
3. first frame: constructing the app on a 1,000-node snapshot (`StaticFeed`) until the first
   frame with node rows; and `fleetdeck tui -c FILE` in a pty against the live sim until its
   output shows a node row (Python start-up, imports and the first scrape round included).
4. RSS: a child process prefills a full hour of history in both tiers, runs the collector at
   1,000 nodes, then the app on it; RSS after each step.

Targets: apply <= 50 ms p95, key to modal <= 100 ms, first frame <= 1 s, RSS <= 200 MB.

    python bench/tui.py [--quick] [--nodes 1000] [--pools 20] [--trace-memory]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import fcntl
import gc
import itertools
import json
import os
import pickle
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from rich.console import RenderableType  # noqa: E402
from textual import events  # noqa: E402
from textual._compositor import CompositorUpdate  # noqa: E402
from textual.screen import Screen  # noqa: E402

from console.actions import Actions  # noqa: E402
from console.audit import AuditLog  # noqa: E402
from console.collector import Collector  # noqa: E402
from console.config import load_config  # noqa: E402
from console.fleet import FleetConfig  # noqa: E402
from console.headless import audit_overlay, plugins  # noqa: E402
from console.history import COARSE, FINE, History  # noqa: E402
from console.model import Snapshot  # noqa: E402
from console.tui.app import FleetdeckApp  # noqa: E402
from console.tui.confirm import ConfirmModal  # noqa: E402
from console.tui.feed import CollectorFeed, Feed, StaticFeed  # noqa: E402
from console.tui.fleet import FleetScreen  # noqa: E402
from console.tui.table import LiveTable  # noqa: E402
from console.tui.themes import DEFAULT_THEME, choose_theme, load_themes, theme_folders  # noqa: E402

SIZES = ((160, 48), (80, 24))
QUIET_S = 0.05  # no frame for this long after a snapshot: its frames are done
READ_S = 0.2  # between the modal taking keys and the answer
POLL_S = 0.005
WAIT_S = 10.0  # the longest any frame or reading is waited for
APP_S = 10.0  # the app on the live collector before its RSS is read
RATE_WINDOW_S = 12.0  # the collector keeps ~10 s of readings for its rates: run past that
NODE_ROW = re.compile(rb"node-\d{3,}")
FIRST_FRAME = re.compile(rb"waiting for the first reading|node-\d{3,}")


# --- the fleet ------------------------------------------------------------------------------


def start_sim(nodes: int, pools: int, folder: Path) -> tuple[subprocess.Popen[str], Path]:
    """A moving simulated fleet in its own process, and a fleet.yaml polling it every second."""
    config = folder / "fleet.yaml"
    command = [sys.executable, "-m", "console", "sim", "--nodes", str(nodes)]
    command += ["--pools", str(pools), "--gateway", "2", "--write-config", str(config)]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert sim.stdout is not None
    for line in sim.stdout:
        if line.startswith("ready"):
            break
    else:
        raise SystemExit(f"sim with {nodes} nodes did not start (exit {sim.wait()})")
    with config.open("a", encoding="utf-8") as handle:
        handle.write("refresh: {interval: 1s, timeout: 1s}\n")
    return sim, config


def build_collector(config: FleetConfig, audit: Path, history: History | None) -> Collector:
    """The collector as `fleetdeck tui` builds it."""
    return Collector(config, plugins(), overlay=audit_overlay(config, str(audit)), history=history)


def build_app(config: FleetConfig, feed: Feed, collector: Collector, audit: Path) -> FleetdeckApp:
    """The app as `fleetdeck tui` builds it (themes loaded, actions on the collector)."""
    actions = Actions(config, collector, AuditLog(audit))
    themes = load_themes(theme_folders())
    theme = choose_theme(themes, DEFAULT_THEME)
    return FleetdeckApp(feed, actions, commands=config.commands, themes=themes, theme=theme)


async def record(config: FleetConfig, audit: Path, count: int) -> list[bytes]:
    """`count` consecutive snapshots from the live collector, pickled: only the one being
    applied is a live object during the replay, as in the app."""
    collector = build_collector(config, audit, None)
    recorded: list[bytes] = []
    stream = collector.snapshots()
    async for snapshot in stream:
        recorded.append(pickle.dumps(snapshot, pickle.HIGHEST_PROTOCOL))
        if len(recorded) >= count:
            break
    await stream.aclose()
    await collector.aclose()
    return recorded


# --- what the app does, timed ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    end: float  # perf_counter() when the frame was composed and encoded
    screen: Screen[Any]
    rows: int  # node rows of the fleet screen when painted (0 on other screens)


@dataclass(frozen=True, slots=True)
class Applied:
    """One snapshot published to the app, in seconds from the start of `publish`."""

    call: float  # the call itself (the fleet screen's apply, synchronous)
    first: float  # to the end of the first frame after it: the new figures are on screen
    settled: float  # to the end of the last frame it caused


def any_frame(frame: Frame) -> bool:
    return True


def has_rows(frame: Frame) -> bool:
    return frame.rows > 0


def shows_modal(frame: Frame) -> bool:
    return isinstance(frame.screen, ConfirmModal)


def shows_fleet(frame: Frame) -> bool:
    return isinstance(frame.screen, FleetScreen)


@dataclass
class Recorder:
    """Wraps the app's `publish` (each snapshot it takes) and `_display` (each frame)."""

    app: FleetdeckApp
    frames: list[Frame] = field(default_factory=list)
    publishes: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    painted: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        display, publish = self.app._display, self.app.publish

        def timed_display(screen: Screen[Any], renderable: RenderableType | None) -> None:
            display(screen, renderable)
            if renderable is None or self.app._batch_count:
                return
            if self.app.is_headless:  # what a real driver does before its write
                console = self.app.console
                if isinstance(renderable, CompositorUpdate):
                    renderable.render_segments(console)
                else:
                    console._render_buffer(console.render(renderable))
            end = time.perf_counter()
            fleet = isinstance(screen, FleetScreen)
            rows = screen.query_one("#nodes", LiveTable).row_count if fleet else 0
            self.frames.append(Frame(end, screen, rows))
            self.painted.set()

        def timed_publish(snapshot: Snapshot) -> None:
            start = time.perf_counter()
            publish(snapshot)
            self.publishes.append((start, time.perf_counter()))

        self.app._display = timed_display  # type: ignore[method-assign]
        self.app.publish = timed_publish  # type: ignore[method-assign]

    async def frame(self, after: float, wanted: Callable[[Frame], bool] = any_frame) -> Frame:
        """The first frame painted after `after` that is `wanted`."""
        deadline = time.perf_counter() + WAIT_S
        while True:
            found = next((f for f in self.frames if f.end > after and wanted(f)), None)
            if found is not None:
                return found
            self.painted.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                raise SystemExit(f"no frame ({wanted.__name__}) painted within {WAIT_S:g} s")
            try:
                await asyncio.wait_for(self.painted.wait(), left)
            except TimeoutError:
                continue

    async def burst(self, after: float) -> tuple[float, float]:
        """When the first and the last frame of the burst that follows `after` ended."""
        first = await self.frame(after)
        while True:
            self.painted.clear()
            try:
                await asyncio.wait_for(self.painted.wait(), QUIET_S)
            except TimeoutError:
                return first.end, self.frames[-1].end

    def applied(self, since: float, until: float) -> tuple[list[Applied], int]:
        """The live snapshots published in [since, until] but the last, each timed to the
        frames painted before the next one came; and how many had none."""
        spans = [p for p in self.publishes if since <= p[0] <= until]
        timed, unpainted = [], 0
        for (start, end), (following, _) in itertools.pairwise(spans):
            ends = [f.end for f in self.frames if end < f.end < following]
            if ends:
                timed.append(Applied(end - start, ends[0] - start, ends[-1] - start))
            else:
                unpainted += 1
        return timed, unpainted


def press(app: FleetdeckApp, key: str) -> None:
    """What the terminal driver does with a key typed (Pilot.press adds idle waits)."""
    event = events.Key(key, key)
    event.set_sender(app)
    app.post_message(event)


async def modal_latency(
    recorder: Recorder, presses: int, gap: float
) -> tuple[list[float], list[float]]:
    """`d` until the confirm modal is painted, and until it takes `y`/`n` (Textual first
    focuses its reason field, where a `y` or `n` would be typed; the modal takes the focus back
    after its first frame); then `n` until the fleet screen is back."""
    painted, answerable = [], []
    app = recorder.app
    for _ in range(presses):
        start = time.perf_counter()
        press(app, "d")
        shown = await recorder.frame(start, shows_modal)
        painted.append(shown.end - start)
        while app.screen.focused is not None:
            if time.perf_counter() - start > WAIT_S:
                raise SystemExit(f"the confirm modal kept {app.screen.focused} focused")
            await asyncio.sleep(POLL_S)
        answerable.append(time.perf_counter() - start)
        await asyncio.sleep(READ_S)
        declined = time.perf_counter()
        press(app, "n")
        await recorder.frame(declined, shows_fleet)
        await asyncio.sleep(gap)
    return painted, answerable


# --- 1 and 2: replayed and live -------------------------------------------------------------


async def replay(
    config: FleetConfig, audit: Path, recorded: list[bytes], size: tuple[int, int], presses: int
) -> dict[str, Any]:
    """Replay every recorded snapshot but the first (the app starts on it), then the keys."""
    collector = build_collector(config, audit, None)
    await collector.read_gateways()  # the drain plan sees the gateway as it is
    app = build_app(config, StaticFeed(pickle.loads(recorded[0])), collector, audit)
    recorder = Recorder(app)
    timed = []
    async with app.run_test(size=size) as pilot:
        await recorder.frame(0.0, has_rows)
        for blob in recorded[1:]:
            snapshot = pickle.loads(blob)
            await pilot.pause()
            start = time.perf_counter()
            app.publish(snapshot)
            first, settled = await recorder.burst(start)
            call = recorder.publishes[-1][1] - start
            timed.append(Applied(call, first - start, settled - start))
            del snapshot
        modal, answerable = await modal_latency(recorder, presses, 0.1)
    await collector.aclose()
    return {"applied": timed, "modal": modal, "answerable": answerable}


async def live(config: FleetConfig, audit: Path, seconds: float, presses: int) -> dict[str, Any]:
    """The app fed by the collector on its thread: snapshots for `seconds`, then keys."""
    collector = build_collector(config, audit, History())
    app = build_app(config, CollectorFeed(collector), collector, audit)
    recorder = Recorder(app)
    cpu = psutil.Process()
    async with app.run_test(size=SIZES[0]):
        await recorder.frame(0.0, has_rows)
        since, cpu_before = time.perf_counter(), sum(cpu.cpu_times()[:2])
        await asyncio.sleep(seconds)
        until = time.perf_counter()
        cores = (sum(cpu.cpu_times()[:2]) - cpu_before) / (until - since)
        # a stride that is no divisor of the 1 s tick samples every phase of the cycle
        modal, answerable = await modal_latency(recorder, presses, 0.37)
    timed, unpainted = recorder.applied(since, until)
    return {
        "applied": timed,
        "unpainted": unpainted,
        "modal": modal,
        "answerable": answerable,
        "cores": cores,
        "cycles": list(collector.cycle_times),
    }


# --- 3: first frame --------------------------------------------------------------------------


async def first_frame(config: FleetConfig, audit: Path, blob: bytes) -> float:
    """From constructing the app on a snapshot at hand to its first frame with node rows."""
    snapshot = pickle.loads(blob)
    collector = build_collector(config, audit, None)
    gc.collect()  # what the phases before left over: a console starts without it
    start = time.perf_counter()
    app = build_app(config, StaticFeed(snapshot), collector, audit)
    recorder = Recorder(app)
    async with app.run_test(size=SIZES[0]):
        shown = await recorder.frame(start, has_rows)
    await collector.aclose()
    return shown.end - start


def read_pty(primary: int, timeout: float) -> bytes | None:
    """What the console wrote within `timeout` (b"" for nothing); None once it closed the pty."""
    if not select.select([primary], [], [], timeout)[0]:
        return b""
    try:
        return os.read(primary, 1 << 16)
    except OSError as exc:
        if exc.errno == errno.EIO:  # no process holds the other end any more
            return None
        raise


def first_frame_pty(config_path: Path, folder: Path, size: tuple[int, int]) -> tuple[float, float]:
    """`fleetdeck tui -c FILE` in a pty: seconds to its first frame (the fleet screen waiting
    for data), and to the first frame with a node row. Answers `q` then, and waits for the
    console to quit."""
    columns, lines = size
    primary, secondary = os.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = os.environ | {"TERM": "xterm-256color", "XDG_STATE_HOME": str(folder / "state")}
    env.pop("NO_COLOR", None)
    command = [str(Path(sys.executable).with_name("fleetdeck")), "tui", "-c", str(config_path)]
    start = time.perf_counter()
    console = subprocess.Popen(
        command, stdin=secondary, stdout=secondary, stderr=secondary, env=env,
        start_new_session=True, cwd=folder,
    )  # fmt: skip
    os.close(secondary)
    seen, first_frame, first_row = b"", None, None
    try:
        while first_row is None and time.perf_counter() < start + WAIT_S * 6:
            chunk = read_pty(primary, 0.5)
            if chunk is None:
                break
            now = time.perf_counter()
            seen = seen[-64:] + chunk  # a word may straddle two reads
            if first_frame is None and FIRST_FRAME.search(seen):
                first_frame = now
            if NODE_ROW.search(seen):
                first_row = now
        if console.poll() is None:
            os.write(primary, b"q")
        quit_by = time.perf_counter() + WAIT_S
        while console.poll() is None and time.perf_counter() < quit_by:
            if read_pty(primary, 0.2) is None:  # keep reading: a full pty blocks its writes
                break
    finally:
        try:
            console.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            os.killpg(console.pid, signal.SIGKILL)
            console.wait()
        os.close(primary)
    if first_frame is None or first_row is None:
        raise SystemExit(
            f"fleetdeck tui showed no node row (exit {console.returncode}); "
            f"its last output: {seen[-160:]!r}"
        )
    return first_frame - start, first_row - start


# --- 4: memory, in a child process ---------------------------------------------------------


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 2**20)


def peak_rss_mb() -> float:
    """The process's high-water mark (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def prefill(history: History, snapshot: Snapshot, now: float) -> int:
    """A full hour before `now` in both tiers: 10 s steps, then 1 s steps for the fine tier's
    last 15 minutes. Returns how many snapshots were recorded."""
    fine_span = FINE[0] * FINE[1]
    coarse_span = COARSE[0] * COARSE[1]
    times = [now - coarse_span + step * COARSE[0] for step in range(COARSE[1])]
    times = [t for t in times if t < now - fine_span]
    times += [now - fine_span + step * FINE[0] for step in range(FINE[1])]
    for moment in times:
        history.record(dataclasses.replace(snapshot, time=moment))
    return len(times)


async def read_for(collector: Collector, seconds: float) -> None:
    """Poll for `seconds`; the collector keeps its targets and readings for the app."""
    stream = collector.snapshots()
    started = time.monotonic()
    async for _ in stream:
        if time.monotonic() - started >= seconds:
            break
    await stream.aclose()


async def memory_steps(config_path: Path, blob: bytes, seconds: float) -> dict[str, float]:
    """RSS after imports, after the history's hour, after the collector's window of readings,
    and with the app running on that collector for `seconds`."""
    figures = {"imports": rss_mb()}
    config = load_config(config_path)
    audit = config_path.parent / "audit-rss.jsonl"
    history = History()
    snapshot = pickle.loads(blob)
    figures["prefilled"] = prefill(history, snapshot, time.time() - 1.0)
    del snapshot
    gc.collect()
    figures["history"] = rss_mb()
    collector = build_collector(config, audit, history)
    feed = CollectorFeed(collector)
    await feed.call(read_for(collector, RATE_WINDOW_S))  # where the app's feed will poll
    figures["collector"] = rss_mb()
    app = build_app(config, feed, collector, audit)
    recorder = Recorder(app)
    async with app.run_test(size=SIZES[0]):
        await recorder.frame(0.0, has_rows)
        await asyncio.sleep(seconds)
        figures["app"] = rss_mb()
        figures["series"] = len(history.series)
    figures["peak"] = peak_rss_mb()
    return figures


def memory_child(args: argparse.Namespace) -> int:
    if args.trace_memory:
        tracemalloc.start()
    blob = Path(args.snapshot).read_bytes()
    figures = asyncio.run(memory_steps(Path(args.config), blob, args.seconds))
    if args.trace_memory:
        by_file = tracemalloc.take_snapshot().statistics("filename")
        top = [(str(s.traceback[0].filename), s.size / 2**20) for s in by_file[:12]]
        print("tracemalloc, largest live allocations by file:", file=sys.stderr)
        for filename, size in top:
            print(f"  {size:7.1f} MB  {filename}", file=sys.stderr)
    print(json.dumps(figures))
    return 0


def measure_memory(config_path: Path, blob: bytes, seconds: float, trace: bool) -> dict[str, float]:
    blob_path = config_path.parent / "snapshot.pickle"
    blob_path.write_bytes(blob)
    command = [sys.executable, __file__, "--memory-child", "--config", str(config_path)]
    command += ["--snapshot", str(blob_path), "--seconds", str(seconds)]
    command += ["--trace-memory"] if trace else []
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
    figures: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return figures


# --- the report ------------------------------------------------------------------------------


def quantiles(values: list[float], scale: float = 1000.0) -> tuple[float, float, float]:
    """p50, p95 and max of `values` times `scale` (seconds to ms by default)."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * scale, p95 * scale, ordered[-1] * scale


def row(label: str, values: list[float], target_ms: float | None = None) -> None:
    p50, p95, worst = quantiles(values)
    target = "-" if target_ms is None else f"{target_ms:g} ms"
    print(f"{label} | {len(values)} | {p50:.1f} | {p95:.1f} | {worst:.1f} | {target}", flush=True)


def applied_rows(what: str, timed: list[Applied]) -> None:
    row(f"apply, {what}: publish to the last frame", [t.settled for t in timed], 50)
    row(f"apply, {what}: publish to the first frame", [t.first for t in timed])
    row(f"apply, {what}: the publish call", [t.call for t in timed])


def settled_p95(timed: list[Applied]) -> float:
    return quantiles([t.settled for t in timed])[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the simulated fleet")
    parser.add_argument("--pools", type=int, default=20, help="pools of consecutive nodes")
    parser.add_argument("--quick", action="store_true", help="fewer samples: 2 minutes, not 6")
    parser.add_argument(
        "--trace-memory", action="store_true", help="tracemalloc's largest files in step 4"
    )
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--snapshot", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=10.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        return memory_child(args)

    # (snapshots replayed, presses replayed, seconds and presses live, pty starts)
    snapshots, presses, live_s, live_presses, starts = (
        (20, 8, 10.0, 5, 1) if args.quick else (100, 20, 20.0, 10, 3)
    )
    print(
        f"{args.nodes} nodes in {args.pools} pools, 8 GPUs each, 2 gateway replicas, read every "
        f"1 s; {os.cpu_count()} cores; {snapshots} snapshots and {presses} presses replayed, "
        f"{live_s:g} s and {live_presses} presses live"
    )
    print("\nwhat | n | p50 ms | p95 ms | max ms | target")
    print("--- | --- | --- | --- | --- | ---", flush=True)
    with tempfile.TemporaryDirectory(prefix="fleetdeck-bench-tui-") as name:
        folder = Path(name)
        audit = folder / "audit.jsonl"
        sim, config_path = start_sim(args.nodes, args.pools, folder)
        try:
            config = load_config(config_path)
            recorded = asyncio.run(record(config, audit, snapshots + 1))
            replayed = {}
            for width, height in SIZES:
                size = f"{width}x{height}"
                figures = asyncio.run(replay(config, audit, recorded, (width, height), presses))
                replayed[size] = figures
                applied_rows(f"replayed, {size}", figures["applied"])
                row(f"key d to modal painted, replayed, {size}", figures["modal"], 100)
                row(f"key d to modal taking y/n, replayed, {size}", figures["answerable"])
            static = [asyncio.run(first_frame(config, audit, recorded[-1])) for _ in range(3)]
            row("first frame, StaticFeed, 160x48", static, 1000)
            sim_process = psutil.Process(sim.pid)
            sim_before, wall_before = sum(sim_process.cpu_times()[:2]), time.monotonic()
            fed = asyncio.run(live(config, audit, live_s, live_presses))
            sim_cores = (sum(sim_process.cpu_times()[:2]) - sim_before) / (
                time.monotonic() - wall_before
            )
            applied_rows("live collector, 160x48", fed["applied"])
            row("key d to modal painted, live collector, 160x48", fed["modal"], 100)
            row("key d to modal taking y/n, live collector, 160x48", fed["answerable"])
            launched = [first_frame_pty(config_path, folder, SIZES[0]) for _ in range(starts)]
            row("fleetdeck tui in a pty: first frame", [frame for frame, _ in launched])
            row("fleetdeck tui in a pty: first node row", [rows for _, rows in launched], 1000)
            memory = measure_memory(config_path, recorded[-1], APP_S, args.trace_memory)
        finally:
            sim.terminate()
            sim.wait(timeout=30)

    cycles = quantiles(fed["cycles"])
    print(
        f"\nlive: this process {fed['cores']:.2f} cores (collector and app), sim {sim_cores:.2f} "
        f"cores; collector cycle p50 {cycles[0]:.0f} ms, max {cycles[2]:.0f} ms; "
        f"{fed['unpainted']} snapshots not painted before the next"
    )
    print(
        f"RSS (MB): interpreter and imports {memory['imports']:.0f}; with the history's hour "
        f"({memory['series']:.0f} series, {memory['prefilled']:.0f} snapshots recorded) "
        f"{memory['history']:.0f}; with the collector's readings {memory['collector']:.0f}; "
        f"with the app running {memory['app']:.0f}; peak {memory['peak']:.0f}"
    )
    largest = "160x48"
    print(f"RESULT tui_apply_p95_ms={settled_p95(replayed[largest]['applied']):.1f} target=50")
    print(f"RESULT tui_apply_live_p95_ms={settled_p95(fed['applied']):.1f} target=50")
    modal = quantiles(replayed[largest]["modal"])[1]
    print(f"RESULT tui_key_to_modal_p95_ms={modal:.1f} target=100")
    print(f"RESULT tui_key_to_modal_live_p95_ms={quantiles(fed['modal'])[1]:.1f} target=100")
    print(f"RESULT tui_first_frame_s={statistics.median(static):.2f} target=1")
    pty_first = statistics.median(r for _, r in launched)
    print(f"RESULT tui_first_frame_pty_s={pty_first:.2f} target=1")
    print(f"RESULT tui_rss_mb={memory['app']:.0f} target=200")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
