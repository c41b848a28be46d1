"""Run a scenario: build the truth, fly the sensor platforms, simulate every sensor.

``simulate(scenario)`` is deterministic: the truth comes from the scenario seed, and each
sensor draws from its own generator seeded by (scenario seed, sensor position in the file),
so the same scenario and seed give identical arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from siap.records import PLOT_DTYPE, empty_plots
from siap.scenario.kinematics import TruthGrid, integrate_plans
from siap.scenario.models import AdsbReceiver, AirborneRadar, Scenario
from siap.scenario.truth import build_truth, grid_step_s, platform_plan
from siap.sensors.adsb import adsb_info, simulate_adsb
from siap.sensors.base import SensorInfo
from siap.sensors.radar import radar_info, simulate_radar

__all__ = ["SimulationResult", "simulate"]


@dataclass
class SimulationResult:
    """Output of :func:`simulate`.

    ``truth``: records.TRUTH_DTYPE, every target at every multiple of ``truth_step_s`` while it
    exists, sorted by time then truth_id. ``plots``: records.PLOT_DTYPE sorted by time, unique
    ``plot_id``, ``truth_id`` -1 for false alarms. ``sensors``: one :class:`SensorInfo` per
    sensor, in file order. ``counts``: per sensor id, a dict with ``plots``, ``detections``,
    ``false_alarms`` (and ``opportunities``: in-coverage looks; radars also ``scans``,
    ``primary_detections``, ``ssr_replies``). ``grid``: the truth on the internal grid, which
    interpolates targets at any time (:meth:`TruthGrid.interp`).
    """

    scenario: Scenario
    truth: np.ndarray
    plots: np.ndarray
    sensors: list[SensorInfo]
    counts: dict[str, dict[str, int]]
    grid: TruthGrid | None = field(default=None, repr=False)


def _platform_grids(scenario: Scenario, n_steps: int, dt: float) -> dict[str, TruthGrid]:
    air = [s for s in scenario.sensors if isinstance(s, AirborneRadar)]
    if not air:
        return {}
    lat, lon, alt, vel, alive = integrate_plans([platform_plan(s.platform) for s in air], scenario.start_time_s, n_steps, dt)
    out = {}
    for i, s in enumerate(air):
        out[s.id] = TruthGrid.from_geodetic(
            scenario.start_time_s,
            dt,
            lat[i : i + 1],
            lon[i : i + 1],
            alt[i : i + 1],
            vel[i : i + 1],
            alive[i : i + 1],
            mode_s_address=np.array([-1], np.int32),
            mode_3a=np.array([-1], np.int16),
            callsign=np.array([""], "U8"),
            cooperative=np.array([False]),
            adsb_equipped=np.array([False]),
            nacp=np.array([0], np.int8),
        )
    return out


def simulate(scenario: Scenario, *, progress: Callable[[str, float], None] | None = None) -> SimulationResult:
    """Simulate ``scenario``: truth, then the plots of every sensor (see the sensor models in
    :mod:`siap.sensors`). ``progress(stage, fraction)`` is called during long stages."""

    def report(stage: str, frac: float) -> None:
        if progress is not None:
            progress(stage, float(frac))

    grid = build_truth(scenario, progress=report)
    report("truth", 1.0)
    t0, t_end = scenario.start_time_s, scenario.end_time_s
    dt = grid_step_s(scenario.truth_step_s)
    platforms = _platform_grids(scenario, grid.n_steps, dt)
    seed = int(scenario.seed) & 0xFFFFFFFFFFFFFFFF
    batches, infos, counts = [], [], {}
    n_sensors = len(scenario.sensors)
    for si, spec in enumerate(scenario.sensors):
        report("sensors", si / n_sensors)
        rng = np.random.default_rng([seed, 15485863, si])
        if isinstance(spec, AdsbReceiver):
            plots, c = simulate_adsb(spec, grid, rng, t0, t_end)
            infos.append(adsb_info(spec))
        else:
            plat = platforms.get(spec.id)
            plots, c = simulate_radar(spec, grid, rng, t0, t_end, platform=plat)
            infos.append(radar_info(spec, plat))
        batches.append(plots)
        counts[spec.id] = c
    report("sensors", 1.0)
    plots = np.concatenate(batches) if batches else empty_plots(0)
    order = np.argsort(plots["time_s"], kind="stable")
    plots = plots[order]
    plots["plot_id"] = np.arange(len(plots), dtype=np.int64)
    assert plots.dtype == PLOT_DTYPE
    truth = grid.truth_records(scenario.truth_step_s)
    return SimulationResult(scenario=scenario, truth=truth, plots=plots, sensors=infos, counts=counts, grid=grid)
