"""What a node's background traffic looks like at a moment.

A node's `Profile` (drawn once from its seeded generator) and its load shape (load.py) give,
for any moment, its `Conditions`: request and token rates, error rate, the gauges, and the
median of every `Role` its histograms show. A node behind the sim's gateway is offered what
the gateway routes to it instead of its own load. Pins replace modelled figures.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from console.sim.load import LoadShape

BAD_DEPLOY_ERROR_RATE = 0.5


@dataclass(frozen=True, slots=True)
class Role:
    """A simulated quantity histograms can show: what drives its observation count, how wide
    its log-normal spread is, and which token counter its sum follows (when it is tokens)."""

    driver: str  # "requests", "generation_tokens", "steps" or "prefill_steps"
    sigma: float
    tokens: str | None = None  # "prompt", "generation" or "step": the sum is that token count


ROLES: dict[str, Role] = {
    "ttft": Role("requests", 0.55),
    "queue": Role("requests", 1.0),
    "prefill": Role("requests", 0.5),
    "decode": Role("requests", 0.45),
    "inference": Role("requests", 0.45),
    "e2e": Role("requests", 0.45),
    "inter_token": Role("generation_tokens", 0.35),
    "request_tpot": Role("requests", 0.25),
    "prefill_per_token": Role("requests", 0.5),
    "prompt_len": Role("requests", 0.8, tokens="prompt"),
    "gen_len": Role("requests", 0.6, tokens="generation"),
    "max_tokens": Role("requests", 0.4),
    "n_param": Role("requests", 0.0),
    "validation": Role("requests", 0.5),
    "iteration_tokens": Role("steps", 0.7, tokens="step"),
    "batch_size": Role("steps", 0.2),
    "decode_step": Role("steps", 0.3),
    "prefill_step": Role("prefill_steps", 0.4),
    "bookkeeping": Role("steps", 0.5),
    "prefill_bookkeeping": Role("prefill_steps", 0.5),
}
DRIVERS = ("requests", "generation_tokens", "steps", "prefill_steps")


@dataclass(frozen=True, slots=True)
class Profile:
    """A node's character, drawn once from its seeded generator."""

    base_rps: float
    prompt_mean: float
    gen_mean: float
    error_ratio: float
    ttft_s: float
    tpot_s: float
    cache_hit: float
    capacity: int  # requests it runs at once before queueing
    age_s: float  # how long its engine has run when the fleet starts

    @classmethod
    def draw(cls, rng: random.Random) -> Profile:
        base_rps = rng.uniform(3.0, 9.0)
        gen_mean = rng.uniform(140.0, 380.0)
        ttft_s = rng.uniform(0.05, 0.18)
        tpot_s = rng.uniform(0.012, 0.028)
        in_flight_at_peak = base_rps * (ttft_s + gen_mean * tpot_s)
        return cls(
            base_rps=base_rps,
            prompt_mean=rng.uniform(400.0, 1400.0),
            gen_mean=gen_mean,
            error_ratio=rng.uniform(0.001, 0.008),
            ttft_s=ttft_s,
            tpot_s=tpot_s,
            cache_hit=rng.uniform(0.2, 0.6),
            capacity=max(8, math.ceil(in_flight_at_peak * 1.5)),  # calm at the daily peak
            age_s=rng.uniform(2.0, 30.0) * 3600.0,
        )


@dataclass(frozen=True, slots=True)
class Conditions:
    """The background at one moment: rates, gauges and the median of every role."""

    requests_per_s: float
    error_rate: float
    prompt_tokens_per_s: float
    tokens_per_s: float
    steps_per_s: float
    running: float
    waiting: float
    kv_cache_usage: float
    busy: float  # 0..1, how loaded the GPUs are
    medians: Mapping[str, float]


def own_demand(profile: Profile, shape: LoadShape, t: float) -> float:
    """The requests/s a node's own clients send it at `t` seconds since the fleet started."""
    return profile.base_rps * shape.at(t)


def conditions_at(
    profile: Profile,
    shape: LoadShape,
    pins: Mapping[str, float],
    bad_deploy: bool,
    t: float,
    offered: float | None = None,
) -> Conditions:
    """The background of a node with this profile at `t` seconds since the fleet started,
    offered `offered` requests/s (its own demand when None); pinned figures replace modelled
    ones."""
    if offered is None:
        offered = own_demand(profile, shape, t)
    requests_per_s = pins.get("requests_per_s", offered)
    nominal_e2e = profile.ttft_s + profile.gen_mean * profile.tpot_s
    utilisation = requests_per_s * nominal_e2e / profile.capacity
    busy = min(1.0, utilisation)
    excess = max(0.0, utilisation - 1.0)
    jitter = shape.jitter(t, 0)
    running = min(float(profile.capacity), requests_per_s * nominal_e2e * (1 + 0.04 * jitter))
    waiting = excess * profile.capacity * 1.5
    queue_s = 0.002 + waiting / max(requests_per_s, 0.1)
    first_token_s = profile.ttft_s * (1.0 + 0.8 * busy * busy)
    tpot_s = profile.tpot_s * (1.0 + 0.5 * busy)
    decode_s = profile.gen_mean * tpot_s
    steps_per_s = 1.0 / tpot_s if running >= 0.5 else 0.0
    if "error_rate" in pins:
        error_rate = pins["error_rate"]
    elif bad_deploy:
        error_rate = BAD_DEPLOY_ERROR_RATE
    else:
        error_rate = min(1.0, profile.error_ratio * (1.0 + 3.0 * excess))
    prompt_rate = pins.get("prompt_tokens_per_s", requests_per_s * profile.prompt_mean)
    token_rate = pins.get("tokens_per_s", requests_per_s * profile.gen_mean)
    tokens_per_step = (prompt_rate + token_rate) / steps_per_s if steps_per_s else 1.0
    medians = {
        "ttft": queue_s + first_token_s,
        "queue": queue_s,
        "prefill": first_token_s,
        "decode": decode_s,
        "inference": first_token_s + decode_s,
        "e2e": queue_s + first_token_s + decode_s,
        "inter_token": tpot_s,
        "request_tpot": tpot_s,
        "prefill_per_token": first_token_s / profile.prompt_mean,
        "prompt_len": _median_for_mean(profile.prompt_mean, ROLES["prompt_len"].sigma),
        "gen_len": _median_for_mean(profile.gen_mean, ROLES["gen_len"].sigma),
        "max_tokens": 1024.0,
        "n_param": 1.0,
        "validation": 0.0004,
        "iteration_tokens": _median_for_mean(tokens_per_step, ROLES["iteration_tokens"].sigma),
        "batch_size": max(1.0, running),
        "decode_step": tpot_s,
        "prefill_step": 0.04 + 0.00003 * profile.prompt_mean,
        "bookkeeping": 0.0002,
        "prefill_bookkeeping": 0.0003,
    }
    kv = min(0.999, max(0.0, 0.03 + 0.9 * busy + 0.02 * jitter + (0.05 if excess else 0.0)))
    return Conditions(
        requests_per_s=requests_per_s,
        error_rate=error_rate,
        prompt_tokens_per_s=prompt_rate,
        tokens_per_s=token_rate,
        steps_per_s=steps_per_s,
        running=float(round(running)),
        waiting=float(round(waiting)),
        kv_cache_usage=round(kv, 4),
        busy=busy,
        medians=medians,
    )


def _median_for_mean(mean: float, sigma: float) -> float:
    return mean / math.exp(sigma * sigma / 2.0)
