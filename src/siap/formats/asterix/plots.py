"""ASTERIX field tables <-> siap plot batches (:data:`siap.records.PLOT_DTYPE`).

**CAT048** (monoradar target report) -> ``MeasurementKind.RADAR_2D``: ``range_m`` (I048/040 RHO,
slant range), ``azimuth_rad`` (THETA) and, when I048/090 carries a validated, ungarbled flight
level, ``alt_m`` = FL x 100 ft (barometric, standard atmosphere: as the simulator's Mode C).
``cov`` = diag(range_sigma^2, azimuth_sigma^2, altitude_sigma^2) from the site, with
``cov[2, 2] = inf`` without altitude (see ``MeasurementKind``). A secondary radar does not
measure elevation, so even an I048/110 3D height does not make the plot RADAR_3D
(``elevation_rad`` stays NaN). Mode 3/A is kept when I048/070 is present and not garbled;
I048/220 and I048/240 fill ``mode_s_address`` and ``callsign``. Records without I048/040 (or
with TYP 0, no detection) give no plot.

**CAT021** (ADS-B) -> ``MeasurementKind.ADSB``: ``lat/lon`` from I021/131 (or I021/130),
``alt_m`` from the barometric flight level I021/145 (else the geometric height I021/140);
``cov`` is diagonal in local east-north-up: the horizontal variance from NACp (I021/090, else
the site's ``nacp_if_absent``) through ``siap.sensors.base.nacp_sigma_m`` (DO-260B Table
2-70, 95 % bound / 2.448), the vertical one the site's ``altitude_sigma_m``. The plot's time
is the time of applicability of the position (I021/071), else the time of reception (I021/073).

Both get the sensor's position, id, partner and label from its site (:mod:`.sites`); records
from a SAC/SIC with no site, and records without a usable time, are counted and dropped. A 2D
plot with an altitude also gets ``lat/lon_deg`` for display, as the simulator gives them.
"""

from __future__ import annotations

import math

import numpy as np

from siap import geo
from siap.records import NO_MODE_3A, NO_MODE_S, MeasurementKind, empty_plots
from siap.sensors.base import NACP_EPU_M, nacp_sigma_m

from .decode import CAT021_DTYPE, CAT048_DTYPE, FL_M, ascii8, callsigns
from .sites import Sites


def _site_columns(
    table: np.ndarray, sites: Sites, counts: dict[str, int], dropped: dict[str, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Index into ``sites.sites`` for each row and the mask of rows with a known, placed site."""
    key = table["sac"].astype(np.int64) * 256 + table["sic"].astype(np.int64)
    idx = sites.key_table()[np.clip(key, 0, 65535)]
    idx[table["sac"] < 0] = -1
    unknown = idx < 0
    if unknown.any():
        for k, n in zip(*np.unique(key[unknown], return_counts=True), strict=True):
            name = f"{k >> 8}/{k & 0xFF}" if k >= 0 else "none"
            counts[name] = counts.get(name, 0) + int(n)
    placed = np.array([s.has_position for s in sites.sites] + [False])[idx]
    unplaced = ~unknown & ~placed
    if unplaced.any() and dropped is not None:
        dropped["no_site_position"] = dropped.get("no_site_position", 0) + int(unplaced.sum())
    return idx, ~unknown & placed


def _fill_site(out: np.ndarray, idx: np.ndarray, sites: Sites) -> None:
    for name, attr in zip(["sensor_id", "partner", "sensor_lat_deg", "sensor_lon_deg", "sensor_alt_m", "label"],
                          ["sensor_id", "partner", "lat_deg", "lon_deg", "alt_m", "label"], strict=True):  # fmt: skip
        col = np.array([getattr(s, attr) if getattr(s, attr) is not None else 0.0 for s in sites.sites] or [0])
        out[name] = col[idx] if len(idx) else out[name]


def cat048_to_plots(
    table: np.ndarray, sites: Sites, unknown: dict[str, int] | None = None, dropped: dict[str, int] | None = None
) -> np.ndarray:
    """RADAR_2D plots from a CAT048 field table (see the module docstring). ``unknown``
    collects the count of records per unconfigured SAC/SIC (``"sac/sic"``), ``dropped`` those
    of sites with no position yet (``no_site_position``)."""
    unknown = {} if unknown is None else unknown
    idx, known = _site_columns(table, sites, unknown, dropped)
    usable = known & np.isfinite(table["range_m"]) & np.isfinite(table["time_s"]) & (table["typ"] != 0)
    t, idx = table[usable], idx[usable]
    out = empty_plots(len(t))
    if not len(t):
        return out
    _fill_site(out, idx, sites)
    out["time_s"] = t["time_s"]
    out["kind"] = int(MeasurementKind.RADAR_2D)
    out["range_m"] = t["range_m"]
    out["azimuth_rad"] = t["azimuth_rad"]
    has_alt = np.isfinite(t["flight_level"]) & (t["fl_v"] == 0) & (t["fl_g"] == 0)
    out["alt_m"] = np.where(has_alt, t["flight_level"] * FL_M, np.nan)
    sig_r = np.array([s.range_sigma_m for s in sites.sites])[idx]
    sig_a = np.radians(np.array([s.azimuth_sigma_deg for s in sites.sites]))[idx]
    sig_h = np.array([s.altitude_sigma_m for s in sites.sites])[idx]
    cov = np.zeros((len(t), 3, 3))
    cov[:, 0, 0], cov[:, 1, 1] = sig_r**2, sig_a**2
    cov[:, 2, 2] = np.where(has_alt, sig_h**2, np.inf)
    out["cov"] = cov
    out["mode_s_address"] = np.where(t["mode_s_address"] >= 0, t["mode_s_address"], NO_MODE_S)
    m3a_ok = (t["mode_3a"] >= 0) & (t["mode_3a_g"] != 1)
    out["mode_3a"] = np.where(m3a_ok, t["mode_3a"], NO_MODE_3A)
    out["callsign"] = callsigns(t)
    _display_position(out)
    return out


def _display_position(out: np.ndarray) -> None:
    """``lat/lon_deg`` of each 2D plot with an altitude, for display, as the simulator fills
    them (``siap.sensors.radar``): the elevation that puts a point at slant range r and height
    h_t seen from a site at h_s on a sphere of radius R, by the law of cosines
    ``(R + h_t)^2 = (R + h_s)^2 + r^2 + 2 r (R + h_s) sin(el)``; NaN without altitude."""
    R = geo.EARTH_MEAN_RADIUS_M
    r, hs, ht = out["range_m"], out["sensor_alt_m"], out["alt_m"]
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((R + ht) ** 2 - (R + hs) ** 2 - r**2) / (2 * r * (R + hs))
    ok = np.isfinite(s) & (np.abs(s) <= 1)
    if not ok.any():
        return
    ecef = geo.polar_to_ecef(
        r[ok], out["azimuth_rad"][ok], np.arcsin(s[ok]), out["sensor_lat_deg"][ok], out["sensor_lon_deg"][ok], hs[ok]
    )
    lat, lon, _ = geo.ecef_to_geodetic(ecef)
    out["lat_deg"][ok], out["lon_deg"][ok] = lat, lon


def cat021_to_plots(
    table: np.ndarray, sites: Sites, unknown: dict[str, int] | None = None, dropped: dict[str, int] | None = None
) -> np.ndarray:
    """ADSB plots from a CAT021 field table (see the module docstring)."""
    unknown = {} if unknown is None else unknown
    idx, known = _site_columns(table, sites, unknown, dropped)
    usable = known & np.isfinite(table["lat_deg"]) & np.isfinite(table["time_s"])
    t, idx = table[usable], idx[usable]
    out = empty_plots(len(t))
    if not len(t):
        return out
    _fill_site(out, idx, sites)
    out["time_s"] = t["time_s"]
    out["kind"] = int(MeasurementKind.ADSB)
    out["lat_deg"], out["lon_deg"] = t["lat_deg"], t["lon_deg"]
    out["alt_m"] = np.where(np.isfinite(t["flight_level"]), t["flight_level"] * FL_M, t["geometric_height_m"])
    nacp = np.where(t["nacp"] >= 0, t["nacp"], np.array([s.nacp_if_absent for s in sites.sites])[idx])
    sig_h = nacp_sigma_m(nacp)
    sig_v = np.array([s.altitude_sigma_m for s in sites.sites])[idx]
    cov = np.zeros((len(t), 3, 3))
    cov[:, 0, 0] = cov[:, 1, 1] = sig_h**2
    cov[:, 2, 2] = sig_v**2
    out["cov"] = cov
    out["mode_s_address"] = np.where(t["mode_s_address"] >= 0, t["mode_s_address"], NO_MODE_S)
    out["mode_3a"] = np.where(t["mode_3a"] >= 0, t["mode_3a"], NO_MODE_3A)
    out["callsign"] = callsigns(t)
    return out


def _sac_sic(plots: np.ndarray, sites: Sites) -> tuple[np.ndarray, np.ndarray]:
    by = sites.by_sensor()
    missing = sorted(set(np.unique(plots["sensor_id"]).tolist()) - set(by))
    if missing:
        raise ValueError(f"no site (SAC/SIC) configured for sensor(s) {', '.join(missing)}")
    sac = np.array([by[s].sac for s in plots["sensor_id"]], np.int16)
    sic = np.array([by[s].sic for s in plots["sensor_id"]], np.int16)
    return sac, sic


def plots_to_cat048(plots: np.ndarray, sites: Sites) -> np.ndarray:
    """A CAT048 field table for RADAR_2D plots (the inverse of :func:`cat048_to_plots`, to the
    encoding's resolution). TYP is 1 (PSR) without any SSR code, 5 (Mode S roll-call) with a
    Mode S address, else 3 (SSR + PSR)."""
    n = len(plots)
    t = np.zeros(n, CAT048_DTYPE)
    t["sac"], t["sic"] = _sac_sic(plots, sites)
    t["time_s"] = plots["time_s"]
    t["tod_s"] = np.mod(plots["time_s"], 86400.0)
    ssr = (plots["mode_3a"] >= 0) | (plots["mode_s_address"] >= 0) | np.isfinite(plots["alt_m"])
    t["typ"] = np.where(plots["mode_s_address"] >= 0, 5, np.where(ssr, 3, 1))
    t["sim"] = t["rdp"] = t["spi"] = t["rab"] = 0
    t["tst"] = -1
    t["range_m"], t["azimuth_rad"] = plots["range_m"], np.mod(plots["azimuth_rad"], 2 * math.pi)
    t["mode_3a"] = plots["mode_3a"]
    t["mode_3a_v"] = t["mode_3a_g"] = t["mode_3a_l"] = 0
    t["flight_level"] = plots["alt_m"] / FL_M
    t["fl_v"] = t["fl_g"] = 0
    t["mode_s_address"] = plots["mode_s_address"]
    t["callsign"] = ascii8(plots["callsign"])
    t["track_number"] = -1
    t["ground_speed_mps"] = t["heading_rad"] = t["height_3d_m"] = np.nan
    return t


def nacp_from_cov(cov: np.ndarray) -> np.ndarray:
    """The NACp whose 95 % bound covers each plot's horizontal sigma (``2.448 sqrt(cov[0, 0])``):
    the largest NACp with EPU >= that bound (the inverse of ``nacp_sigma_m`` on its values)."""
    codes = np.array(sorted(NACP_EPU_M))
    epu = np.array([NACP_EPU_M[k] for k in codes])
    r95_per_sigma = epu[0] / nacp_sigma_m(codes[0])[0]
    bound = np.sqrt(np.asarray(cov)[:, 0, 0]) * r95_per_sigma * (1 - 1e-9)
    ok = epu[None, :] >= bound[:, None]
    return np.where(ok.any(axis=1), codes[np.argmax(np.where(ok, codes[None, :], -1), axis=1)], 0)


def plots_to_cat021(plots: np.ndarray, sites: Sites, *, nacp: int | np.ndarray | None = None) -> np.ndarray:
    """A CAT021 field table for ADSB plots (inverse of :func:`cat021_to_plots`): high-resolution
    position (I021/131), barometric flight level (I021/145), time of applicability (I021/071),
    NACp in I021/090 (NIC 0): ``nacp`` if given (-1: leave I021/090 out), else from each
    plot's covariance (:func:`nacp_from_cov`)."""
    n = len(plots)
    t = np.zeros(n, CAT021_DTYPE)
    t["sac"], t["sic"] = _sac_sic(plots, sites)
    t["time_s"] = plots["time_s"]
    t["tod_s"] = t["tod_position_s"] = np.mod(plots["time_s"], 86400.0)
    t["tod_reception_s"] = np.nan
    t["lat_deg"], t["lon_deg"], t["high_res"] = plots["lat_deg"], plots["lon_deg"], 1
    t["geometric_height_m"] = np.nan
    t["flight_level"] = plots["alt_m"] / FL_M
    t["mode_s_address"] = plots["mode_s_address"]
    t["mode_3a"] = plots["mode_3a"]
    t["callsign"] = ascii8(plots["callsign"])
    t["track_number"] = -1
    nacp = nacp_from_cov(plots["cov"]) if nacp is None else np.broadcast_to(np.asarray(nacp), (n,))
    t["nic"] = np.where(nacp >= 0, 0, -1)
    t["nacp"] = nacp
    t["ground_speed_mps"] = t["track_angle_rad"] = t["baro_vertical_rate_mps"] = np.nan
    return t
