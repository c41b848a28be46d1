"""The run report: one self-contained HTML file with figures (matplotlib, embedded as PNG).

Figures: per-partner map of truth, plots and sensor coverage; tracks against truth; GOSPA and
its parts over time; SIAP metrics over time. Every number and curve comes from the run that is
passed in. Maps are drawn over Natural Earth land, coastlines and borders (1:50m, public
domain), read from the world-atlas TopoJSON bundled with the web COP
(``siap/service/static/vendor/world-atlas``). Numbers are written for a reader: distances in
m or km, fractions in %, counts with thousands separators (:func:`format_quantity`).
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
import math
from importlib import resources
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pyproj import Geod  # noqa: E402

from siap import geo, records  # noqa: E402

__all__ = ["write_report", "plot_positions_geodetic", "format_quantity", "topojson_lines", "natural_earth"]

_PARTNER_COLOURS = {"JPN": "#c0392b", "USA": "#2c3e8f", "AUS": "#1e8449", "KOR": "#8e44ad", "PHL": "#d68910"}
_GEOD = Geod(ellps="WGS84")
_MAP_ALT_M = 9_000.0  # coverage circles are drawn for targets at this altitude (about FL300)
_SEA, _LAND, _COAST, _BORDER = "#dfe8f0", "#f3f0e7", "#6f8597", "#9a8fa6"


def _decode_arcs(topology: dict) -> list[np.ndarray]:
    """The arcs of a TopoJSON topology as (n, 2) arrays of (lon, lat) degrees.

    TopoJSON specification (github.com/topojson/topojson-specification, sec. 2.1.3-2.1.4 and
    2.2): a quantized topology's arc positions are delta-encoded integers; position k is the
    running sum of the first k deltas, then ``x * scale + translate`` per axis.
    """
    arcs = [np.asarray(a, dtype=np.float64).reshape(-1, 2) for a in topology["arcs"]]
    tr = topology.get("transform")
    if tr is None:
        return arcs
    scale, translate = np.asarray(tr["scale"], float), np.asarray(tr["translate"], float)
    return [np.cumsum(a, axis=0) * scale + translate for a in arcs]


def _ring(indices: list[int], arcs: list[np.ndarray]) -> np.ndarray:
    """One ring from arc indices (``~i`` = arc i reversed); shared end points kept once."""
    parts = []
    for k, i in enumerate(indices):
        a = arcs[i] if i >= 0 else arcs[~i][::-1]
        parts.append(a if k == 0 else a[1:])
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def topojson_lines(topology: dict, name: str, *, shared_only: bool = False) -> list[np.ndarray]:
    """The arcs used by object ``name`` (polylines of (lon, lat)); with ``shared_only`` only
    the arcs shared by two different geometries (the borders between countries)."""
    arcs = _decode_arcs(topology)
    users: dict[int, set[int]] = {}

    def walk(node, geom_id: int) -> None:
        if isinstance(node, int):
            users.setdefault(node if node >= 0 else ~node, set()).add(geom_id)
        else:
            for child in node:
                walk(child, geom_id)

    for gid, geom in enumerate(topology["objects"][name].get("geometries", [])):
        walk(geom.get("arcs", []), gid)
    keep = [i for i, g in sorted(users.items()) if (len(g) > 1 if shared_only else True)]
    return [arcs[i] for i in keep]


def topojson_polygons(topology: dict, name: str) -> list[np.ndarray]:
    """Exterior rings of the (multi)polygons of object ``name`` (holes are left out)."""
    arcs = _decode_arcs(topology)
    rings = []
    for geom in topology["objects"][name].get("geometries", []):
        polys = geom["arcs"] if geom["type"] == "MultiPolygon" else [geom["arcs"]] if geom["type"] == "Polygon" else []
        for poly in polys:
            if poly:
                rings.append(_ring(poly[0], arcs))
    return rings


@functools.lru_cache(maxsize=2)
def natural_earth(resolution: str = "50m") -> dict[str, list[np.ndarray]]:
    """Land rings, coastlines and country borders of Natural Earth at ``resolution`` (50m or
    110m), from the bundled world-atlas TopoJSON."""
    root = resources.files("siap.service") / "static" / "vendor" / "world-atlas"
    land = json.loads((root / f"land-{resolution}.json").read_text(encoding="utf-8"))
    countries = json.loads((root / f"countries-{resolution}.json").read_text(encoding="utf-8"))
    return {
        "land": topojson_polygons(land, "land"),
        "coast": topojson_lines(land, "land"),
        "borders": topojson_lines(countries, "countries", shared_only=True),
    }


def _basemap(ax) -> None:
    """Sea, land, coastlines and borders under what is already drawn (limits kept)."""
    from matplotlib.collections import LineCollection, PolyCollection

    xlim, ylim = ax.get_xlim(), ax.get_ylim()
    ne = natural_earth("50m")

    def near(lines):
        out = []
        for a in lines:
            if len(a) and a[:, 0].max() >= xlim[0] - 1 and a[:, 0].min() <= xlim[1] + 1 \
                    and a[:, 1].max() >= ylim[0] - 1 and a[:, 1].min() <= ylim[1] + 1:
                out.append(a)
        return out

    ax.set_facecolor(_SEA)
    ax.add_collection(PolyCollection(near(ne["land"]), facecolors=_LAND, edgecolors="none", zorder=0))
    ax.add_collection(LineCollection(near(ne["coast"]), colors=_COAST, linewidths=0.6, zorder=0.5))
    ax.add_collection(LineCollection(near(ne["borders"]), colors=_BORDER, linewidths=0.6, linestyles="--", zorder=0.5))
    ax.set_xlim(xlim)
    ax.set_ylim(ylim)


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
    _basemap(ax)
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


def figure_pictures_vs_truth(sim, pictures: dict[str, np.ndarray]) -> str:
    """One map per picture: its tracks (coloured by track number) over truth (grey)."""
    names = list(pictures)
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        tracks = pictures[name]
        _truth_lines(ax, sim.truth)
        if len(tracks):
            colours = plt.cm.tab20((tracks["track_id"] % 20) / 19.0)
            ax.scatter(tracks["lon_deg"], tracks["lat_deg"], s=2, c=colours, lw=0, zorder=2)
        ax.set_title(f"{name}: tracks (colour = track number) over truth (grey)")
        _set_map_aspect(ax, sim.scenario.origin.lat_deg)
    return _png(fig)


def figure_metrics_over_time(evaluations: dict[str, object], start_s: float) -> str | None:
    """GOSPA and SIAP completeness over time for every evaluated picture."""
    series = {n: ev.per_time for n, ev in evaluations.items() if getattr(ev, "per_time", None) is not None}
    series = {n: df for n, df in series.items() if len(df)}
    if not series:
        return None
    panels = [("gospa_m", "GOSPA (m)"), ("completeness", "SIAP completeness"), ("n_tracks", "tracks held")]
    panels = [(c, y) for c, y in panels if any(c in df.columns for df in series.values())]
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)), sharex=True, squeeze=False)
    for (col, ylabel), ax in zip(panels, axes[:, 0], strict=True):
        for name, df in series.items():
            if col in df.columns:
                style = "--" if name.endswith("own") else (":" if name.endswith("centralised") else "-")
                colour = _PARTNER_COLOURS.get(name.split(" ")[0])
                ax.plot(_time_axis(df, start_s), df[col].to_numpy(dtype=float), style, color=colour, label=name, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(True, lw=0.3)
        ax.legend(fontsize=7, loc="best", ncol=3)
    axes[-1, 0].set_xlabel("minutes since start")
    return _png(fig)


def _time_axis(per_time, start_s: float) -> np.ndarray:
    return (np.asarray(per_time.index, dtype=float) - start_s) / 60.0


def _table(rows: list[tuple[str, object]]) -> str:
    body = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(format_quantity(str(k), v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


_PERCENT = ("completeness", "spuriousness", "commonality", "longest_track_segment")
_PLAIN = ("seed", "gospa_p", "ospa_p", "gospa_alpha", "entries")


def format_quantity(name: str, value) -> str:
    """``value`` written for a reader, by what its ``name`` says it is: a distance (``_m``,
    GOSPA / OSPA parts) in m, or km from 10 km on; a speed (``_mps``) in m/s; a rate
    (``_per_s``); a duration (``_s``) in s; a fraction (completeness, spuriousness,
    commonality) in %; counts with thousands separators; anything else with at most four
    significant digits, never in exponent notation."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return "yes" if value is True else "no" if value is False else str(value)
    short = name.rsplit(" ", 1)[-1]
    if isinstance(value, int | np.integer):
        return str(int(value)) if short in _PLAIN else f"{int(value):,}"
    v = float(value)
    if not math.isfinite(v):
        return "-"
    if short in _PLAIN:
        return f"{v:g}"
    if any(k in short for k in _PERCENT):
        return f"{100 * v:.1f} %"
    distance = short.endswith("_m") or (
        short.startswith(("gospa_", "ospa_")) and "_n_" not in short and short.endswith(("_mean", "localisation", "missed", "false"))
    )
    if distance:
        return f"{v / 1000:,.1f} km" if abs(v) >= 10_000 else f"{v:,.0f} m" if abs(v) >= 10 else f"{v:.2f} m"
    if short.endswith("_mps"):
        return f"{v:,.1f} m/s"
    if short.endswith("_per_s"):
        return f"{v * 3600:,.2f} /h" if abs(v) < 0.01 else f"{v:,.3f} /s"
    if short.endswith("_s"):
        return f"{v:,.1f} s" if abs(v) >= 100 else f"{v:.2f} s"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return np.format_float_positional(v, precision=4, unique=False, fractional=False, trim="-")


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


def _partner_table(table: dict[str, dict[str, dict[str, float]]]) -> str:
    """Rows: partner x metric; columns: own sensors alone, coalition picture, centralised."""
    kinds = ("own", "coalition", "centralised")
    head = "<tr><th>partner</th><th>metric</th>" + "".join(f"<th>{k}</th>" for k in kinds) + "</tr>"
    rows = []
    for partner, by_kind in table.items():
        metrics = list(next(iter(by_kind.values())).keys()) if by_kind else []
        for m in metrics:
            cells = "".join(f"<td>{html.escape(format_quantity(m, by_kind.get(k, {}).get(m, '')))}</td>" for k in kinds)
            rows.append(f"<tr><th>{html.escape(partner)}</th><td>{html.escape(m)}</td>{cells}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _commonality_table(common: dict[str, dict[str, float | int]]) -> str:
    head = "<tr><th>partners</th><th>commonality</th><th>common (object, time) pairs</th></tr>"
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{format_quantity('commonality', v['commonality'])}</td>"
        f"<td>{format_quantity('common', v['common'])}</td></tr>"
        for k, v in common.items()
    )
    return f"<table>{head}{rows}</table>"


def _bias_table(biases: dict[str, dict[str, dict]]) -> str:
    head = (
        "<tr><th>tracker</th><th>sensor</th><th>range bias (m)</th><th>azimuth bias (deg)</th>"
        "<th>clock bias (s)</th><th>pairs</th><th>converged</th></tr>"
    )
    rows = []
    for tracker, table in biases.items():
        for sid, e in table.items():
            rows.append(
                f"<tr><td>{html.escape(tracker)}</td><td>{html.escape(sid)}</td>"
                f"<td>{e['range_m']:.1f} &plusmn; {e['range_sd_m']:.1f}</td>"
                f"<td>{e['azimuth_deg']:.3f} &plusmn; {e['azimuth_sd_deg']:.3f}</td>"
                f"<td>{e['time_s']:.2f} &plusmn; {e['time_sd_s']:.2f}</td><td>{e['pairs']}</td>"
                f"<td>{'yes' if e['converged'] else 'no'}</td></tr>"
            )
    return f"<table>{head}{''.join(rows)}</table>"


def _coalition_sections(result, summary: dict) -> list[str]:
    groups = "".join(
        f"<tr><td>{html.escape(g['partner'])}</td><td>{html.escape(', '.join(g['sensors']))}</td>"
        f"<td><code>{html.escape(g['label'])}</code></td><td>{html.escape(', '.join(g['audience']))}</td></tr>"
        for g in summary["source_groups"]
    )
    audit_rows = [(p, f"{'ok' if a['ok'] else 'FAILED'}: {a['entries']} entries; {a['reason']}") for p, a in summary["audit"].items()]
    rejected = [(p, ", ".join(f"{k}={v}" for k, v in r.items()) or "none") for p, r in summary["rejected"].items()]
    return [
        "<h2>The value of the network, per partner</h2>",
        "<p><b>own</b>: the picture a partner builds from its own sensors alone; <b>coalition</b>: its "
        "fused picture from its own and the partners' shared local tracks it is entitled to "
        "(federated mode); <b>centralised</b>: one tracker over every raw plot it may receive.</p>",
        _partner_table(summary["partner_table"]),
        "<h2>Commonality (same coalition track number for the same object)</h2>",
        _commonality_table(summary["commonality"]),
        "<h2>Source groups (one local tracker each)</h2>",
        "<table><tr><th>partner</th><th>sensors</th><th>label of its tracks</th><th>releasable to</th></tr>"
        + groups + "</table>",
        "<h2>Messages, rejections and audit</h2>",
        _table(list(summary["messages"].items()) + [(f"rejected at {p}", v) for p, v in rejected]),
        _table(audit_rows) if audit_rows else "",
    ]


def write_report(result, path: str | Path) -> Path:
    """Write the HTML report of a :class:`siap.pipeline.DemoResult` to ``path``."""
    sim = result.simulation
    summary = result.summary()
    start_s = float(sim.truth["time_s"].min()) if len(sim.truth) else 0.0
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>siap report: {html.escape(result.scenario_name)}</title><style>{_CSS}</style></head><body>",
        f"<h1>siap run report: scenario <code>{html.escape(result.scenario_name)}</code> ({html.escape(result.mode)} mode)</h1>",
        "<h2>Run</h2>",
        _table([(k, v) for k, v in summary.items() if not isinstance(v, dict | list)]),
    ]
    if result.mode == "coalition":
        parts += _coalition_sections(result, summary)
    else:
        parts += ["<h2>Picture quality against truth</h2>", _table(sorted(summary["metrics"]["network"].items()))]
    parts += [
        "<h2>Sensors</h2>",
        _sensor_table(sim),
        "<h2>Truth, plots and coverage per partner</h2>",
        f"<img alt='partner maps' src='data:image/png;base64,{figure_partner_maps(sim)}'>",
        "<h2>Pictures against truth</h2>",
        f"<img alt='pictures' src='data:image/png;base64,{figure_pictures_vs_truth(sim, result.pictures)}'>",
    ]
    over_time = figure_metrics_over_time(result.evaluations, start_s)
    if over_time:
        parts += ["<h2>Metrics over time</h2>", f"<img alt='metrics over time' src='data:image/png;base64,{over_time}'>"]
    if summary.get("registration"):
        parts += ["<h2>Sensor registration: estimated radar biases</h2>", _bias_table(summary["registration"])]
    stats_rows = [(f"{name}: {k}", v) for name, st in summary["tracker_stats"].items() for k, v in sorted(st.items()) if v]
    parts += [
        "<h2>Tracker counters (non-zero)</h2>",
        _table(stats_rows),
        "<h2>Stage timings (s)</h2>",
        _table(sorted(summary["timings_s"].items())),
        "</body></html>",
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
