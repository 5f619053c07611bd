"""One simulated node's state: the ground truth every page and snapshot is rendered from.

The background traffic (traffic.py) sets rates; `advance()` integrates them into counters
over the time since the last call, reading an injected clock, so a test can step time and
the same seed with the same clock readings gives the same pages; `settle_histograms()`
spreads that traffic over the histograms when a page is about to show them. Control pins
replace modelled figures: a pinned gauge is served exactly, a pinned rate drives its counter
as value_at_pin + rate x elapsed. Real completions (engine_server.py) add on top of the
background, pinned or not, so pinning the rates to 0 leaves only real traffic.

Behind the sim's gateway a node's `demand` is what the gateway routes to it, not its own load;
its running and waiting then follow a change of demand over about half a request's life (in
flight requests finish, queues build up) rather than at once.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from console.sim.engines.spec import EngineSpec
from console.sim.faults import Fault
from console.sim.gpus import GpuBoard, GpuReading
from console.sim.histogram import Histogram, lognormal_mean
from console.sim.load import LoadShape
from console.sim.pagetext import go_float
from console.sim.traffic import DRIVERS, ROLES, Conditions, Profile, conditions_at

Clock = Callable[[], float]

GAUGE_PINS = ("running", "waiting", "kv_cache_usage", "gpu_util")
RATE_PINS = ("requests_per_s", "error_rate", "tokens_per_s", "prompt_tokens_per_s")
PINS = GAUGE_PINS + RATE_PINS
PIN_LIMITS = {"kv_cache_usage": 1.0, "error_rate": 1.0, "gpu_util": 100.0}
REAL_FIRST_TOKEN_S = 0.01  # a real completion's time to first token, plus per prompt token:
REAL_PROMPT_TOKEN_S = 0.00002
REAL_TOKEN_S = 0.004  # and per generated token
REAL_ROLES = ("ttft", "queue", "e2e", "prompt_len", "gen_len")  # what a real completion observes
SETTLE_SHARE = 0.5  # gauges follow a routed node's demand with this share of a request's life
Demand = Callable[[float], float]  # requests/s offered at t seconds since the fleet started


@dataclass(frozen=True, slots=True)
class Feed:
    """How one histogram is fed, resolved once per node for `settle_histograms`."""

    histogram: Histogram
    role: str
    driver: int  # index into DRIVERS
    sigma: float
    mean_per_median: float
    tokens: str | None
    scale: float
    weight: float


class NodeModel:
    """The state of one node; pages, snapshots and the control API all read it."""

    def __init__(
        self,
        name: str,
        spec: EngineSpec,
        seed: int,
        index: int,
        gpus: int = 8,
        clock: Clock = time.monotonic,
        wall_start: float = 0.0,
        static: bool = False,
    ) -> None:
        self.name = name
        self.spec = spec
        self.model = spec.model
        self.static = static
        self.clock = clock
        rng = random.Random(f"fleetdeck-sim:{seed}:{index}")
        fleet_phase = random.Random(f"fleetdeck-sim:{seed}").random()
        self.profile = Profile.draw(rng)
        self.shape = LoadShape(rng.getrandbits(63), fleet_phase + rng.uniform(-0.03, 0.03))
        self.board = GpuBoard(gpus, rng, self.shape)
        self.completion_rng = random.Random(rng.getrandbits(63))
        self.epoch = clock()
        self.wall_start = wall_start
        self.engine_started = self.epoch - self.profile.age_s
        self.host_age_s = self.profile.age_s + rng.uniform(1.0, 40.0) * 86400.0
        self.pins: dict[str, float] = {}
        self.fault: Fault | None = None
        self.revisions = ["rev-1", "rev-2"]
        self.revision = "rev-2"
        self.accepting = True  # False between the agent's stop_accepting and resume hooks
        self.demand: Demand | None = None  # set by the gateway routing to this node
        self.settle_s = SETTLE_SHARE * (
            self.profile.ttft_s + self.profile.gen_mean * self.profile.tpot_s
        )
        self._in_flight: tuple[float, float] | None = None  # settling (running, waiting)
        self.queue_running = 0  # real completions being generated
        self.queue_waiting = 0  # real completions waiting for a slot
        self.version = 0  # bumped on every change a page could show
        self._build_histograms()
        # background traffic not yet in the histograms: DRIVERS, then prompt tokens
        self._pending: list[float] = []
        self._zero()
        self._last = self.epoch
        self.conditions = self._conditions()
        self._accumulate(self.conditions, self.profile.age_s * 0.62)  # a history before we came
        self.settle_histograms()
        self.created_wall = wall_start - self.profile.age_s
        self.created_text = go_float(self.created_wall)

    # -- time ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._last

    @property
    def wall_now(self) -> float:
        return self.wall_start + (self._last - self.epoch)

    @property
    def uptime_s(self) -> float:
        return self._last - self.engine_started

    def advance(self) -> None:
        """Bring counters and gauges up to the clock (a static node never moves)."""
        if self.static:
            return
        now = self.clock()
        elapsed = now - self._last
        if elapsed <= 0:
            return
        self._last = now
        self.conditions = self._conditions(elapsed)
        self._accumulate(self.conditions, elapsed)
        self.version += 1

    def _accumulate(self, conditions: Conditions, elapsed: float) -> None:
        """Add `elapsed` seconds of background traffic at `conditions`."""
        requests = conditions.requests_per_s * elapsed
        prompt = conditions.prompt_tokens_per_s * elapsed
        generation = conditions.tokens_per_s * elapsed
        steps = conditions.steps_per_s * elapsed
        self.requests_total += requests
        self.errors_total += conditions.error_rate * requests
        self.prompt_tokens_total += prompt
        self.generation_tokens_total += generation
        self.cached_tokens_total += prompt * self.profile.cache_hit
        self.preemptions_total += requests * 0.0004
        self.steps_total += steps
        medians = conditions.medians
        for role_name in ("e2e", "queue", "ttft"):
            self.latency_sums[role_name] += requests * lognormal_mean(
                medians[role_name], ROLES[role_name].sigma
            )
        pending = self._pending
        pending[0] += requests
        pending[1] += generation
        pending[2] += steps
        pending[3] += requests * 0.5
        pending[4] += prompt

    def settle_histograms(self) -> None:
        """Spread the traffic counted since the last call over the histograms, at the
        current medians. Only pages show histograms, so only pages pay for this."""
        requests, generation, steps, prefill_steps, prompt = self._pending
        if not (requests or generation or steps):
            return
        self._pending = [0.0] * 5
        drivers = (requests, generation, steps, prefill_steps)
        token_totals = {"prompt": prompt, "generation": generation, "step": prompt + generation}
        medians = self.conditions.medians
        for feed in self._feeds:
            count = drivers[feed.driver] * feed.weight
            if count <= 0:
                continue
            median = medians[feed.role] * feed.scale
            if feed.tokens is None:
                total = count * median * feed.mean_per_median
            else:
                total = token_totals[feed.tokens] * feed.weight
            histogram = feed.histogram
            histogram.add(count, histogram.cdf(median, feed.sigma), total)

    def _zero(self) -> None:
        self.requests_total = 0.0
        self.errors_total = 0.0
        self.prompt_tokens_total = 0.0
        self.generation_tokens_total = 0.0
        self.cached_tokens_total = 0.0
        self.preemptions_total = 0.0
        self.steps_total = 0.0
        self.latency_sums = {"e2e": 0.0, "queue": 0.0, "ttft": 0.0}
        self._pending = [0.0] * 5
        for feed in self._feeds:
            feed.histogram.reset()

    def _build_histograms(self) -> None:
        """One Histogram per distinct (role, bounds, scale, weight): series that would hold
        the same numbers (vLLM's two names for inter-token latency) share one."""
        self.histograms: dict[str, Histogram] = {}
        self._feeds: list[Feed] = []
        shared: dict[tuple[str, tuple[float, ...], float, float], Histogram] = {}
        for spec in self.spec.histograms:
            key = (spec.role, spec.bounds, spec.scale, spec.weight)
            if key not in shared:
                shared[key] = Histogram(spec.bounds)
                role = ROLES[spec.role]
                self._feeds.append(
                    Feed(
                        histogram=shared[key],
                        role=spec.role,
                        driver=DRIVERS.index(role.driver),
                        sigma=role.sigma,
                        mean_per_median=lognormal_mean(1.0, role.sigma),
                        tokens=role.tokens,
                        scale=spec.scale,
                        weight=spec.weight,
                    )
                )
            self.histograms[spec.key] = shared[key]

    # -- what pages show ----------------------------------------------------------------

    @property
    def running(self) -> float:
        if "running" in self.pins:
            return self.pins["running"]
        return self.conditions.running + self.queue_running

    @property
    def waiting(self) -> float:
        if "waiting" in self.pins:
            return self.pins["waiting"]
        return self.conditions.waiting + self.queue_waiting

    @property
    def kv_cache_usage(self) -> float:
        return self.pins.get("kv_cache_usage", self.conditions.kv_cache_usage)

    @property
    def busy(self) -> float:
        """How loaded the GPUs are, 0..1, real completions included."""
        return min(1.0, self.conditions.busy + self.queue_running / self.profile.capacity)

    def gpu_readings(self) -> list[GpuReading]:
        lost = self.fault.gpu if self.fault is not None and self.fault.kind == "xid" else None
        return self.board.readings(
            self._last - self.epoch, self.busy, self.pins.get("gpu_util"), lost
        )

    # -- control ------------------------------------------------------------------------

    def set_pins(self, values: Mapping[str, float | None]) -> None:
        """Pin figures (None unpins one); counters are brought up to now first, so a pinned
        rate counts from this moment."""
        self.advance()
        for name, value in values.items():
            if value is None:
                self.pins.pop(name, None)
            else:
                self.pins[name] = float(value)
        self._refresh()

    def set_fault(self, fault: Fault | None) -> None:
        self.advance()
        previous = self.fault
        self.fault = fault
        if (
            fault is not None
            and fault.kind == "bad_deploy"
            and (previous is None or previous.kind != "bad_deploy")
        ):
            self.deploy(f"rev-{len(self.revisions) + 1}")
        if fault is not None and fault.kind == "xid" and fault.gpu is not None:
            self.board.record_xid(fault.gpu, self.wall_now)
        self._refresh()

    def set_demand(self, demand: Demand | None) -> None:
        """Take the load the gateway routes here (None: the node's own load again); counters
        are brought up to now first, so the new rate counts from this moment."""
        self.advance()
        self.demand = demand
        if demand is None:
            self._in_flight = None
        self._refresh()

    def deploy(self, revision: str) -> None:
        if revision not in self.revisions:
            self.revisions.append(revision)
        self.revision = revision
        self.version += 1

    def roll_back(self, revision: str) -> None:
        """Deploy an earlier revision; it clears a bad deploy."""
        self.advance()
        self.revision = revision
        if self.fault is not None and self.fault.kind == "bad_deploy":
            self.fault = None
        self._refresh()

    def clear(self) -> None:
        """Drop every pin and fault."""
        self.advance()
        self.pins.clear()
        self.fault = None
        self._refresh()

    def restart(self) -> None:
        """The engine restarts: every counter and histogram starts again from zero."""
        self.advance()
        self._zero()
        self.engine_started = self._last
        self.created_wall = self.wall_now
        self.created_text = go_float(self.created_wall)
        self._refresh()

    def _refresh(self) -> None:
        self.conditions = self._conditions()
        self.version += 1

    def _conditions(self, elapsed: float = 0.0) -> Conditions:
        """The background now; a routed node's gauges move `elapsed` seconds toward it."""
        bad_deploy = self.fault is not None and self.fault.kind == "bad_deploy"
        t = self._last - self.epoch
        offered = None if self.demand is None else self.demand(t)
        target = conditions_at(self.profile, self.shape, self.pins, bad_deploy, t, offered)
        if self.demand is None or self.static:
            return target
        return self._settle(target, elapsed)

    def _settle(self, target: Conditions, elapsed: float) -> Conditions:
        """Running and waiting `elapsed` seconds further along toward `target`'s."""
        running, waiting = self._in_flight or (target.running, target.waiting)
        kept = math.exp(-elapsed / self.settle_s)
        running = target.running + (running - target.running) * kept
        waiting = target.waiting + (waiting - target.waiting) * kept
        self._in_flight = (running, waiting)
        return replace(target, running=float(round(running)), waiting=float(round(waiting)))

    # -- real completions ---------------------------------------------------------------

    def completion_times(self, prompt_tokens: int, generation_tokens: int) -> tuple[float, float]:
        """(time to first token, total time) a real completion takes once it runs."""
        first = REAL_FIRST_TOKEN_S + REAL_PROMPT_TOKEN_S * prompt_tokens
        return first, first + REAL_TOKEN_S * generation_tokens

    def completion_fails(self) -> bool:
        """Whether the next real completion fails (bad deploys and pinned error rates)."""
        return self.completion_rng.random() < self.conditions.error_rate

    def record_completion(
        self, prompt_tokens: int, generation_tokens: int, times: Mapping[str, float], failed: bool
    ) -> None:
        """Count one finished real completion; `times` holds ttft, queue and e2e seconds."""
        self.advance()
        self.requests_total += 1
        self.errors_total += 1 if failed else 0
        self.prompt_tokens_total += prompt_tokens
        self.generation_tokens_total += generation_tokens
        for role in self.latency_sums:
            self.latency_sums[role] += times[role]
        observed = {**times, "prompt_len": prompt_tokens, "gen_len": generation_tokens}
        for feed in self._feeds:
            # series that see only a share of the traffic (one handler, one method) keep to
            # the background; every full series sees the real request
            if feed.role in REAL_ROLES and feed.weight == 1.0:
                feed.histogram.observe(observed[feed.role] * feed.scale)
        self.version += 1

    def queue_changed(self) -> None:
        self.version += 1

    # -- ground truth -------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        """The figures a correct console shows for this node right now."""
        self.advance()
        conditions = self.conditions
        ttft_median = conditions.medians["ttft"]
        readings = [reading.util for reading in self.gpu_readings() if not reading.lost]
        utils = [util for util in readings if util is not None]
        return {
            "model": self.model,
            "running": self.running,
            "waiting": self.waiting,
            "kv_cache_usage": self.kv_cache_usage,
            "error_rate": conditions.error_rate,
            "requests_per_s": conditions.requests_per_s,
            "tokens_per_s": conditions.tokens_per_s,
            "prompt_tokens_per_s": conditions.prompt_tokens_per_s,
            "gpu_util": sum(utils) / len(utils) if utils else None,
            "ttft_p50_s": ttft_median,
            "ttft_p95_s": ttft_median * math.exp(1.645 * ROLES["ttft"].sigma),
            "requests_total": self.requests_total,
            "errors_total": self.errors_total,
            "prompt_tokens_total": self.prompt_tokens_total,
            "generation_tokens_total": self.generation_tokens_total,
            "queue_running": self.queue_running,
            "queue_waiting": self.queue_waiting,
            "fault": None if self.fault is None else self.fault.kind,
            "fault_args": None if self.fault is None else self.fault.as_json(),
            "pins": dict(self.pins),
            "revision": self.revision,
            "revisions": list(self.revisions),
            "accepting": self.accepting,
        }
