"""What `python -m bench` measures: the scenarios, the systems that serve them, and the goals.

A scenario is one request (endpoint + body) at one concurrency; each of its targets names the
server and path that answer it for one system. The systems are the columns of the report:
the project, the two ceilings (the bare framework, and a bare ASGI callable: the limit of a
Python server on the same uvicorn), the naive inline server and LitServe.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEMS = ("project", "ceiling", "raw", "naive", "litserve")
SYSTEM_LABELS = {
    "project": "mlp-serve",
    "ceiling": "ceiling",
    "raw": "raw ASGI",
    "naive": "naive",
    "litserve": "LitServe",
}
# Servers that answer GET /v1/models/{name} with the batcher's counters.
COUNTING_SERVERS = ("project", "project-unbatched", "naive")


@dataclass(frozen=True)
class Target:
    server: str  # which server process answers (see bench.__main__.server_command)
    path: str
    body: str  # a key of bench.bodies.write_bodies


@dataclass(frozen=True)
class Scenario:
    name: str
    connections: int
    model: str | None  # whose counters give the mean batch size
    targets: dict[str, Target]  # system -> target


@dataclass(frozen=True)
class Goal:
    """A target of the project's: `scenario`'s project `metric` against a bound."""

    label: str
    scenario: str
    metric: str  # "rps_ratio" (project / `reference` req/s), "p99_ms" or "ready_s"
    bound: float
    at_least: bool
    reference: str = "ceiling"  # the system an "rps_ratio" divides by


def everywhere(path: str, body: str, litserve: bool = False) -> dict[str, Target]:
    """The same path and body on the project, both ceilings and the naive server (and LitServe)."""
    systems = ("project", "ceiling", "raw", "naive")
    targets = {system: Target(system, path, body) for system in systems}
    if litserve:
        targets["litserve"] = Target("litserve", "/predict", body)
    return targets


IRIS_V1 = "/v1/models/iris:predict"
MNIST_V1 = "/v1/models/mnist:predict"
MNIST_IMAGE = "/v1/models/mnist:predict-image"


def build_scenarios() -> list[Scenario]:
    scenarios = [
        Scenario(f"iris JSON c={c}", c, "iris", everywhere(IRIS_V1, "iris-v1", litserve=True))
        for c in (1, 16, 64, 256)
    ]
    scenarios.append(Scenario("mnist JSON c=64", 64, "mnist", everywhere(MNIST_V1, "mnist-v1")))
    for body, label in (("png-raw", "PNG 28x28 raw"), ("jpeg-raw", "JPEG 280x280 raw")):
        scenarios.extend(
            Scenario(f"mnist {label} c={c}", c, "mnist", everywhere(MNIST_IMAGE, body))
            for c in (16, 64)
        )
    scenarios.append(
        Scenario(
            "mnist PNG 28x28 multipart c=64", 64, "mnist", everywhere(MNIST_IMAGE, "png-multipart")
        )
    )
    scenarios.append(
        Scenario("iris OIP v2 c=64", 64, "iris", everywhere("/v2/models/iris/infer", "iris-v2"))
    )
    scenarios.append(
        Scenario(
            "iris JSON c=64, batching off",
            64,
            "iris",
            {"project": Target("project-unbatched", IRIS_V1, "iris-v1")},
        )
    )
    return scenarios


def raw_goal(scenario: str, bound: float) -> Goal:
    """`scenario`'s project req/s at least `bound` x the raw ASGI ceiling's."""
    label = f"{scenario} >= {bound} x raw ASGI req/s"
    return Goal(label, scenario, "rps_ratio", bound, True, reference="raw")


GOALS = [
    raw_goal("iris JSON c=64", 0.5),
    raw_goal("iris JSON c=1", 0.5),
    raw_goal("mnist JSON c=64", 0.4),
    raw_goal("iris OIP v2 c=64", 0.4),
    Goal("iris JSON c=64 >= 0.8 x ceiling req/s", "iris JSON c=64", "rps_ratio", 0.8, True),
    Goal("iris JSON c=64 p99 <= 8 ms", "iris JSON c=64", "p99_ms", 8.0, False),
    Goal(
        "PNG 28x28 multipart c=64 >= 0.5 x multipart ceiling",
        "mnist PNG 28x28 multipart c=64",
        "rps_ratio",
        0.5,
        True,
    ),
    Goal("time to ready <= 5 s", "", "ready_s", 5.0, False),
]


def select(scenarios: list[Scenario], only: list[str] | None, systems: list[str]) -> list[Scenario]:
    """Scenarios whose name contains any of `only` (all if none), keeping `systems`' targets."""
    chosen = []
    for scenario in scenarios:
        if only and not any(part.lower() in scenario.name.lower() for part in only):
            continue
        targets = {s: t for s, t in scenario.targets.items() if s in systems}
        if targets:
            chosen.append(Scenario(scenario.name, scenario.connections, scenario.model, targets))
    return chosen
