"""Scenarios: validated YAML files describing partners, sensors and targets.

Public API::

    load_scenario(name_or_path, *, seed=None) -> Scenario
    builtin_names() -> list[str]                # "pacific" (default), "paris-real"
    load_trajectories(path, *, format="auto") -> TrajectorySet   # real trajectories
    build_truth(scenario) -> TruthGrid           # targets on the internal time grid
"""

from __future__ import annotations

from siap.scenario.kinematics import TruthGrid
from siap.scenario.loader import DEFAULT_SCENARIO, builtin_names, builtin_path, load_scenario
from siap.scenario.models import Scenario
from siap.scenario.trajectories import Flight, TrajectorySet, load_trajectories
from siap.scenario.truth import build_truth

__all__ = [
    "DEFAULT_SCENARIO",
    "Flight",
    "Scenario",
    "TrajectorySet",
    "TruthGrid",
    "build_truth",
    "builtin_names",
    "builtin_path",
    "load_scenario",
    "load_trajectories",
]
