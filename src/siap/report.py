"""The run report: one self-contained HTML file with figures (matplotlib, embedded as PNG).

Figures: per-partner map of truth, plots and sensor coverage; tracks against truth; GOSPA and
its parts over time; SIAP metrics over time. Every number and curve comes from the run that is
passed in; nothing is read from elsewhere.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pyproj import Geod  # noqa: E402

from siap import geo, records  # noqa: E402

__all__ = ["write_report", "plot_positions_geodetic"]

_PARTNER_COLOURS = {"JPN": "#c0392b", "USA": "#2c3e8f", "AUS": "#1e8449", "KOR": "#8e44ad", "PHL": "#d68910"}
_GEOD = Geod(ellps="WGS84")
_MAP_ALT_M = 9_000.0  # coverage circles are drawn for targets at this altitude (about FL300)


def plot_positions_geodetic(plots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Approximate latitude/longitude (deg) of each plot, for maps.

    ADS-B plots carry their position. Radar plots are converted from polar using their elevation
    (3D), or the elevation implied by their Mode C altitude (2D), or zero elevation otherwise.
    """
    lat = plots["lat_deg"].copy()
    lon = plots["lon_deg"].copy()
    radar = plots["kind"] != records.MeasurementKind.ADSB
    if np.any(radar):
        p = plots[radar]
        el = p["elevation_rad"].copy()
        missing = ~np.isfinite(el)
        alt = np.where(np.isfinite(p["alt_m"]), p["alt_m"], p["sensor_alt_m"])
        ratio = np.clip((alt - p["sensor_alt_m"]) / np.maximum(p["range_m"], 1.0), -1, 1)
        el[missing] = np.arcsin(ratio[missing])
        ecef = geo.polar_to_ecef(
            p["range_m"], p["azimuth_rad"], el, p["sensor_lat_deg"], p["sensor_lon_deg"], p["sensor_alt_m"]
        )
        rlat, rlon, _ = geo.ecef_to_geodetic(ecef)
        lat[radar] = rlat
        lon[radar] = rlon
    return lat, lon


def _coverage_ring(lat_deg: float, lon_deg: float, radius_m: float, n: int = 120):
    az = np.linspace(0, 360, n)
    lons, lats, _ = _GEOD.fwd(np.full(n, lon_deg), np.full(n, lat_deg), az, np.full(n, radius_m))
    return np.asarray(lats), np.asarray(lons)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _truth_lines(ax, truth: np.ndarray, max_targets: int = 400) -> None:
    ids = np.unique(truth["truth_id"])[:max_targets]
    order = np.lexsort((truth["time_s"], truth["truth_id"]))
    t = truth[order]
    starts = np.searchsorted(t["truth_id"], ids, side="left")
    stops = np.searchsorted(t["truth_id"], ids, side="right")
    for a, b in zip(starts, stops, strict=True):
        ax.plot(t["lon_deg"][a:b], t["lat_deg"][a:b], color="0.55", lw=0.6, alpha=0.7, zorder=1)


def _set_map_aspect(ax, lat_deg: float) -> None:
    ax.set_aspect(1.0 / max(np.cos(np.radians(lat_deg)), 0.1))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.grid(True, lw=0.3)


def figure_partner_maps(sim) -> str:
    """One map per partner: truth (grey), that partner's plots and its sensors' coverage."""
    partners = [p.id for p in sim.scenario.partners]
    fig, axes = plt.subplots(1, len(partners), figsize=(6 * len(partners), 6), squeeze=False)
    lat_all, lon_all = plot_positions_geodetic(sim.plots)
    rng = np.random.default_rng(0)
    for ax, partner in zip(axes[0], partners, strict=True):
        colour = _PARTNER_COLOURS.get(partner, "#333333")
        _truth_lines(ax, sim.truth)
        mine = np.flatnonzero(sim.plots["partner"] == partner)
        if len(mine) > 15_000:
            mine = np.sort(rng.choice(mine, 15_000, replace=False))
        ax.scatter(lon_all[mine], lat_all[mine], s=1.5, color=colour, alpha=0.35, lw=0, zorder=2)
        for sensor in sim.sensors:
            if sensor.partner != partner:
                continue
            sp = sim.plots[sim.plots["sensor_id"] == sensor.id]
            if len(sp) == 0:
                continue
            site_lat = float(np.mean(sp["sensor_lat_deg"]))
            site_lon = float(np.mean(sp["sensor_lon_deg"]))
            moving = np.ptp(sp["sensor_lat_deg"]) > 1e-3
            if moving:
                ax.plot(sp["sensor_lon_deg"], sp["sensor_lat_deg"], color=colour, lw=1.5, zorder=3)
            ax.plot(site_lon, site_lat, marker="^", color=colour, ms=8, mec="k", zorder=4)
            ax.annotate(sensor.id, (site_lon, site_lat), fontsize=7, xytext=(4, 4), textcoords="offset points")
            radius = float(sensor.coverage_radius_m(_MAP_ALT_M))
            if np.isfinite(radius) and radius > 0:
                rlat, rlon = _coverage_ring(site_lat, site_lon, radius)
                ax.plot(rlon, rlat, color=colour, lw=0.8, ls="--", zorder=3)
        ax.set_title(f"{partner}: its plots and sensor coverage (targets at {_MAP_ALT_M / 1000:.0f} km)")
        _set_map_aspect(ax, sim.scenario.origin.lat_deg)
    return _png(fig)


def figure_tracks_vs_truth(sim, tracks: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(9, 8))
    _truth_lines(ax, sim.truth)
    if len(tracks):
        ids = tracks["track_id"]
        colours = plt.cm.tab20((ids % 20) / 19.0)
        ax.scatter(tracks["lon_deg"], tracks["lat_deg"], s=2, c=colours, lw=0, zorder=2)
    ax.set_title("Tracks (coloured by track id) over truth (grey)")
    _set_map_aspect(ax, sim.scenario.origin.lat_deg)
    return _png(fig)


def _time_axis(per_time, start_s: float) -> np.ndarray:
    return (np.asarray(per_time.index, dtype=float) - start_s) / 60.0


def figure_metrics_over_time(evaluation, start_s: float) -> str | None:
    per_time = getattr(evaluation, "per_time", None)
    if per_time is None or len(per_time) == 0:
        return None
    cols = list(per_time.columns)
    gospa_cols = [c for c in cols if c.startswith("gospa")]
    siap_cols = [c for c in cols if c in ("completeness", "ambiguity", "spuriousness")]
    count_cols = [c for c in cols if c in ("n_truths", "n_tracks")]
    n_axes = sum(bool(x) for x in (gospa_cols, siap_cols, count_cols))
    if n_axes == 0:
        return None
    fig, axes = plt.subplots(n_axes, 1, figsize=(10, 3.2 * n_axes), sharex=True, squeeze=False)
    x = _time_axis(per_time, start_s)
    i = 0
    for group, ylabel in ((gospa_cols, "GOSPA (m)"), (siap_cols, "SIAP (fraction)"), (count_cols, "count")):
        if not group:
            continue
        ax = axes[i, 0]
        for c in group:
            ax.plot(x, per_time[c].to_numpy(dtype=float), label=c, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(True, lw=0.3)
        i += 1
    axes[-1, 0].set_xlabel("minutes since start")
    return _png(fig)


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _sensor_table(sim) -> str:
    plots = sim.plots
    head = "<tr><th>sensor</th><th>partner</th><th>type</th><th>plots</th><th>false alarms</th></tr>"
    rows = []
    for s in sim.sensors:
        mine = plots["sensor_id"] == s.id
        fa = np.count_nonzero(mine & (plots["truth_id"] == records.NO_TRUTH))
        rows.append(
            f"<tr><td>{html.escape(s.id)}</td><td>{html.escape(s.partner)}</td>"
            f"<td>{html.escape(str(s.type))}</td><td>{np.count_nonzero(mine)}</td><td>{fa}</td></tr>"
        )
    return f"<table>{head}{''.join(rows)}</table>"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}
"""


def write_report(result, path: str | Path) -> Path:
    """Write the HTML report of a :class:`siap.pipeline.DemoResult` to ``path``."""
    sim = result.simulation
    summary = result.summary()
    metrics = summary["metrics"]
    start_s = float(sim.truth["time_s"].min()) if len(sim.truth) else 0.0
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>siap report: {html.escape(result.scenario_name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>siap run report: scenario <code>{html.escape(result.scenario_name)}</code></h1>",
        "<h2>Run</h2>",
        _table([(k, v) for k, v in summary.items() if not isinstance(v, dict | list)]),
        "<h2>Picture quality against truth</h2>",
        _table(sorted(metrics.items())),
        "<h2>Sensors</h2>",
        _sensor_table(sim),
        "<h2>Truth, plots and coverage per partner</h2>",
        f"<img alt='partner maps' src='data:image/png;base64,{figure_partner_maps(sim)}'>",
        "<h2>Tracks against truth</h2>",
        f"<img alt='tracks' src='data:image/png;base64,{figure_tracks_vs_truth(sim, result.tracks)}'>",
    ]
    over_time = figure_metrics_over_time(result.evaluation, start_s)
    if over_time:
        parts += ["<h2>Metrics over time</h2>", f"<img alt='metrics over time' src='data:image/png;base64,{over_time}'>"]
    parts += [
        "<h2>Tracker counters</h2>",
        _table(sorted(summary["tracker_stats"].items())),
        "<h2>Stage timings (s)</h2>",
        _table(sorted(summary["timings_s"].items())),
        "</body></html>",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
