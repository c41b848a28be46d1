"""Framed Mode S -> ADS-B plots: check and filter, rs1090 batch decode, CPR per aircraft.

See the package docstring (:mod:`siap.formats.modes`) for the steps and docs/formats.md.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import rs1090
from pydantic import BaseModel, ConfigDict, Field

from siap import records
from siap.formats.modes.cpr import cpr_global_airborne, cpr_global_surface, cpr_local
from siap.formats.modes.frames import Frames, count_drop
from siap.formats.modes.parity import crc_remainder, identity_code
from siap.records import MeasurementKind
from siap.sensors.base import NACP_EPU_M

__all__ = ["ReceiverConfig", "ModeSDecoder", "DecodeResult", "VELOCITY_DTYPE", "NUCP_R95_M"]

log = logging.getLogger("siap.formats.modes")

FT_M = 0.3048
KT_MPS = 1852.0 / 3600.0
FPM_MPS = FT_M / 60.0

# DO-260A Table 2-14: NUCp -> 95 % horizontal containment radius RCu (m); 0 = unknown,
# treated like NACp 0 (> 10 NM).
NUCP_R95_M = {0: 37040.0, 1: 18520.0, 2: 9260.0, 3: 1852.0, 4: 926.0, 5: 463.0, 6: 185.2,
              7: 92.6, 8: 10.0, 9: 3.0}
_R95_PER_SIGMA = math.sqrt(-2.0 * math.log(0.05))  # 2.4477, as siap.sensors.base
SURFACE_ALT_SIGMA_M = 50.0  # surface reports carry no altitude: the receiver's, with this sigma
GNSS_ALT_SIGMA_M = 45.0 / 1.96  # GNSS height without GVA: 45 m 95 % (DO-260B GVA = 2)

VELOCITY_DTYPE = np.dtype(
    [
        ("time_s", "f8"),
        ("mode_s_address", "i4"),
        ("groundspeed_mps", "f8"),
        ("track_rad", "f8"),  # clockwise from true north
        ("vertical_rate_mps", "f8"),  # NaN if not reported
    ]
)


class ReceiverConfig(BaseModel):
    """A Mode S / ADS-B receiver: who owns it and where it stands (the reference for surface
    positions). ``start_time_s``: the Unix time of the first Beast/AVR 12 MHz timestamp of a
    file (those counters are relative; live feeds are stamped with the arrival time)."""

    model_config = ConfigDict(extra="forbid")

    receiver_id: str = Field("adsb-1", max_length=16, description="sensor id of the plots")
    partner: str = Field("", max_length=3, description="owning nation, ISO 3166 alpha-3")
    lat_deg: float = Field(..., ge=-90.0, le=90.0, description="receiver latitude, deg")
    lon_deg: float = Field(..., ge=-180.0, le=180.0, description="receiver longitude, deg")
    alt_m: float = Field(0.0, description="receiver altitude (WGS84 height), m")
    start_time_s: float | None = Field(None, description="Unix time of the first 12 MHz timestamp")



# ADS-B type codes that carry plot fields (everything else is framed, checked and skipped)
_WANTED_TC = np.zeros(32, bool)
_WANTED_TC[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 29, 31]] = True
_SHORT_DF = (0, 4, 5, 11)
_LONG_DF = (16, 17, 18, 19, 20, 21, 24)
_AP_DF = (0, 4, 5, 16, 20, 21)
PAIR_WINDOW_S = 10.0  # even/odd pair for a global airborne decode (Doc 9871 C.2.6.7)
SURFACE_PAIR_WINDOW_S = 50.0  # even/odd pair for a global surface decode (slow movers)
LOCAL_REF_MAX_AGE_S = 180.0  # airborne local decode against the aircraft's last position
SURFACE_REF_MAX_AGE_S = 300.0  # surface local decode against the aircraft's last position
AIRCRAFT_IDLE_S = 1800.0  # an aircraft's state is forgotten after this long without a squitter


@dataclass
class _Aircraft:
    callsign: str = ""
    squawk: int = records.NO_MODE_3A
    nacp: int = -1
    even: tuple | None = None  # (time_s, (lat_cpr, lon_cpr), surface)
    odd: tuple | None = None
    last_pos: tuple | None = None  # (time_s, lat, lon)
    last_seen_s: float = -math.inf


@dataclass
class DecodeResult:
    """What one :meth:`ModeSDecoder.decode` call produced: ``plots`` (PLOT_DTYPE, ADSB, in time
    order), ``velocities`` (VELOCITY_DTYPE), and ``counts`` of this call (frames, squitters,
    decoded, positions, plots, and ``dropped_<reason>`` for every reason)."""

    plots: np.ndarray
    velocities: np.ndarray
    counts: dict[str, int]


class ModeSDecoder:
    """Framed Mode S -> ADS-B plots, per receiver, with per-aircraft state kept across calls
    (CPR pairs, last position, callsign, identity, NACp). Feed it :class:`Frames` in time order.
    ``dropped`` counts every frame it threw away, by reason; ``skipped`` the good frames that
    carry nothing a plot needs (Mode A/C, altitude replies, Comm-B, other type codes)."""

    def __init__(self, receiver: ReceiverConfig, *, name: str = "modes", plot_id_start: int = 0,
                 rs1090_batch: int = 2000):
        self.receiver = receiver
        self.name = name
        self.aircraft: dict[int, _Aircraft] = {}
        self.known = np.zeros(0, np.int64)  # verified addresses (sorted)
        self.dropped: Counter = Counter()
        self.skipped: Counter = Counter()
        self.next_plot_id = plot_id_start
        self.rs1090_batch = rs1090_batch
        self.last_time_s = -math.inf

    # -- step 2: check and filter
    def _check(self, frames: Frames) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        msg, length = frames.msg, frames.length
        df = (msg[:, 0] >> 3).astype(np.int16)
        df[df > 24] = 24
        rem = crc_remainder(msg, length)
        modeac = length == 2
        short_ok = np.isin(df, _SHORT_DF) & (length == 7)
        long_ok = np.isin(df, _LONG_DF) & (length == 14)
        bad_len = ~modeac & ~short_ok & ~long_ok & (np.isin(df, _SHORT_DF) | np.isin(df, _LONG_DF))
        unknown_df = ~modeac & ~np.isin(df, _SHORT_DF) & ~np.isin(df, _LONG_DF)
        addr_field = ((msg[:, 1].astype(np.int64) << 16) | (msg[:, 2].astype(np.int64) << 8) | msg[:, 3])
        es = long_ok & ((df == 17) | ((df == 18) & ((msg[:, 0] & 7) <= 1)))
        tisb = long_ok & (df == 18) & ~es
        df11 = short_ok & (df == 11)
        es_good = es & (rem == 0)
        df11_good = df11 & ((rem & 0xFFFF80) == 0)
        crc_bad = (es & ~es_good) | (df11 & ~df11_good)
        new = np.unique(addr_field[es_good | df11_good])
        if len(new):
            self.known = np.union1d(self.known, new)
        ap = (short_ok | long_ok) & np.isin(df, _AP_DF)
        ap_addr = rem.astype(np.int64)
        ap_good = ap & np.isin(ap_addr, self.known)
        for mask, reason in ((bad_len, "length"), (unknown_df, "unknown_df"), (crc_bad, "crc")):
            for i in np.flatnonzero(mask):
                count_drop(self.dropped, self.name, reason, f"{frames.where_unit} {frames.where[i]} ({frames.hex(i)})")
        self.skipped["mode_ac"] += int(modeac.sum())
        self.skipped["tisb_adsr"] += int(tisb.sum())
        self.skipped["unverified_address"] += int((ap & ~ap_good).sum())
        self.skipped["df11"] += int(df11_good.sum())
        ident = ap_good & ((df == 5) | (df == 21))
        self.skipped["reply_no_identity"] += int((ap_good & ~ident).sum())
        return es_good, addr_field, ident, ap_addr

    def decode(self, frames: Frames) -> DecodeResult:
        counts: Counter = Counter(frames=len(frames))
        before = Counter(self.dropped)
        skipped_before = Counter(self.skipped)
        es_good, addr_field, ident, ap_addr = self._check(frames)
        counts["squitters"] = int(es_good.sum())
        tc = (frames.msg[:, 4] >> 3).astype(np.int64)
        want = es_good & _WANTED_TC[tc]
        self.skipped["other_type_code"] += int((es_good & ~want).sum())
        rows_es = np.flatnonzero(want)
        # identical frames (repeated identification and velocity squitters, duplicates from
        # overlapping receivers) are decoded once
        keys = frames.msg[rows_es].view(np.dtype((np.void, 14)))[:, 0] if len(rows_es) else np.zeros(0, "V14")
        uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        decoded_uniq = self._rs1090([frames.hex(i) for i in rows_es[first]], frames, rows_es[first])
        decoded = [decoded_uniq[k] for k in inverse.ravel()]
        counts["decoded"] = sum(d is not None for d in decoded)
        rows_id = np.flatnonzero(ident)
        squawks = identity_code(frames.msg[rows_id]) if len(rows_id) else np.zeros(0, np.int32)
        # events in time order: identity replies and decoded squitters
        ev_rows = np.concatenate([rows_id, rows_es])
        ev_kind = np.concatenate([np.zeros(len(rows_id), np.int8), np.ones(len(rows_es), np.int8)])
        ev_ref = np.concatenate([np.arange(len(rows_id)), np.arange(len(rows_es))])
        order = np.lexsort((ev_rows, frames.time_s[ev_rows]))
        plots: list[tuple] = []
        vels: list[tuple] = []
        for o in order:
            r = int(ev_rows[o])
            t = float(frames.time_s[r])
            if ev_kind[o] == 0:
                ac = self.aircraft.get(int(ap_addr[r]))
                if ac is not None:
                    ac.squawk = int(squawks[ev_ref[o]])
                continue
            d = decoded[ev_ref[o]]
            if d is None:
                continue
            addr = int(addr_field[r])
            ac = self.aircraft.get(addr)
            if ac is None:
                ac = self.aircraft[addr] = _Aircraft()
            ac.last_seen_s = t
            self._apply(ac, addr, t, int(tc[r]), bool(frames.msg[r, 5] & 1), d, plots, vels)
        if len(frames):
            self._forget_idle(float(frames.time_s.max()))
        out = self._plots(plots)
        # non-decreasing time across calls: a plot older than the last emitted one is dropped
        late = out["time_s"] < self.last_time_s
        if late.any():
            for _ in range(int(late.sum())):
                count_drop(self.dropped, self.name, "late", f"time {self.last_time_s}")
            out = records.take(out, ~late)
        if len(out):
            self.last_time_s = float(out["time_s"][-1])
            out["plot_id"] = np.arange(self.next_plot_id, self.next_plot_id + len(out))
            self.next_plot_id += len(out)
        velocities = np.array(vels, dtype=VELOCITY_DTYPE) if vels else np.zeros(0, VELOCITY_DTYPE)
        counts["positions"] = len(plots)
        counts["plots"] = len(out)
        counts["velocities"] = len(velocities)
        for reason, v in (frames.dropped + self.dropped - before).items():
            counts[f"dropped_{reason}"] = v
        for reason, v in (self.skipped - skipped_before).items():
            counts[f"skipped_{reason}"] = v
        return DecodeResult(out, velocities, dict(counts))

    def _forget_idle(self, now_s: float) -> None:
        """Bound the state of a long-running feed: drop aircraft silent for AIRCRAFT_IDLE_S."""
        if len(self.aircraft) < 256:
            return
        idle = [a for a, ac in self.aircraft.items() if now_s - ac.last_seen_s > AIRCRAFT_IDLE_S]
        for a in idle:
            del self.aircraft[a]

    def _rs1090(self, hexes: list[str], frames: Frames, rows: np.ndarray) -> list:
        if not hexes:
            return []
        try:
            return list(rs1090.decode(hexes, batch=self.rs1090_batch))
        except Exception:  # noqa: BLE001 - one bad message must not lose the batch
            out = []
            for h, r in zip(hexes, rows, strict=True):
                try:
                    out.append(rs1090.decode(h))
                except Exception:  # noqa: BLE001
                    count_drop(self.dropped, self.name, "rs1090_error", f"{frames.where_unit} {frames.where[r]} ({h})")
                    out.append(None)
            return out

    # -- step 4: per-aircraft state
    def _apply(self, ac: _Aircraft, addr: int, t: float, tc: int, q_bit: bool, d: dict, plots: list,
               vels: list) -> None:
        if 1 <= tc <= 4:
            cs = (d.get("callsign") or "").strip().replace("#", "").replace("_", "")
            if cs:
                ac.callsign = cs[:8]
            return
        nacp = d.get("NACp")
        if isinstance(nacp, int) and 0 <= nacp <= 11:
            ac.nacp = nacp
        if tc == 19:
            gs, trk = d.get("groundspeed"), d.get("track")
            if gs is not None and trk is not None:
                vr = d.get("vertical_rate")
                vels.append((t, addr, gs * KT_MPS, math.radians(trk), vr * FPM_MPS if vr is not None else math.nan))
            return
        if tc in (29, 31):
            return
        lat_cpr, lon_cpr, parity = d.get("lat_cpr"), d.get("lon_cpr"), d.get("parity")
        if lat_cpr is None or lon_cpr is None or parity not in ("even", "odd"):
            return
        surface = 5 <= tc <= 8
        odd = parity == "odd"
        cpr = (int(lat_cpr), int(lon_cpr))
        entry = (t, cpr, surface)
        if odd:
            ac.odd = entry
        else:
            ac.even = entry
        pos = None
        other = ac.even if odd else ac.odd
        window = SURFACE_PAIR_WINDOW_S if surface else PAIR_WINDOW_S
        if other is not None and other[2] == surface and abs(t - other[0]) <= window:
            pair = (other[1], cpr) if odd else (cpr, other[1])
            if surface:
                pos = cpr_global_surface(pair[0], pair[1], odd, self.receiver.lat_deg, self.receiver.lon_deg)
            else:
                pos = cpr_global_airborne(pair[0], pair[1], odd)
        max_age = SURFACE_REF_MAX_AGE_S if surface else LOCAL_REF_MAX_AGE_S
        if pos is None and ac.last_pos is not None and t - ac.last_pos[0] <= max_age:
            pos = cpr_local(cpr, odd, ac.last_pos[1], ac.last_pos[2], surface)
        if pos is None:
            self.skipped["cpr_unresolved"] += 1
            return
        ac.last_pos = (t, pos[0], pos[1])
        if surface:
            alt_m, alt_var = self.receiver.alt_m, SURFACE_ALT_SIGMA_M**2
        else:
            alt_ft = d.get("altitude")
            if alt_ft is None:
                self.skipped["no_altitude"] += 1
                return
            alt_m = alt_ft * FT_M
            if 20 <= tc <= 22 or d.get("source") == "GNSS":
                alt_var = GNSS_ALT_SIGMA_M**2
            else:  # Q bit: 25 ft steps, else Gillham 100 ft steps (DO-260B 2.2.3.2.3.4)
                alt_var = (25 * FT_M if q_bit else 100 * FT_M) ** 2 / 12.0
        if ac.nacp >= 0:
            r95 = NACP_EPU_M[ac.nacp]
        else:
            r95 = NUCP_R95_M.get(int(d.get("NUCp") or 0), NUCP_R95_M[0])
        sigma = r95 / _R95_PER_SIGMA
        plots.append((t, pos[0], pos[1], alt_m, sigma, alt_var, addr, ac.callsign, ac.squawk))

    def _plots(self, rows: list[tuple]) -> np.ndarray:
        n = len(rows)
        out = records.empty_plots(n)
        if n == 0:
            return out
        rc = self.receiver
        cols = list(zip(*rows, strict=True))
        out["time_s"] = cols[0]
        out["sensor_id"] = rc.receiver_id
        out["partner"] = rc.partner
        out["kind"] = int(MeasurementKind.ADSB)
        out["sensor_lat_deg"], out["sensor_lon_deg"], out["sensor_alt_m"] = rc.lat_deg, rc.lon_deg, rc.alt_m
        out["lat_deg"], out["lon_deg"], out["alt_m"] = cols[1], cols[2], cols[3]
        cov = np.zeros((n, 3, 3))
        sigma = np.asarray(cols[4])
        cov[:, 0, 0] = cov[:, 1, 1] = sigma**2
        cov[:, 2, 2] = cols[5]
        out["cov"] = cov
        out["mode_s_address"] = cols[6]
        out["callsign"] = cols[7]
        out["mode_3a"] = cols[8]
        return records.take(out, np.argsort(out["time_s"], kind="stable"))


