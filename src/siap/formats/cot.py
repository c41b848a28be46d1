"""Cursor-on-Target out: a partner's picture as CoT events for TAK clients and servers.

One event per track (CoT Event 2.0, MITRE; the schema TAK speaks)::

    <event version="2.0" uid="siap.JPN.<track id>" type="a-n-A" how="m-f"
           time="..Z" start="..Z" stale="..Z">
      <point lat=".." lon=".." hae=".." ce=".." le=".."/>
      <detail>
        <track course="deg from true north" speed="m/s"/>
        <contact callsign=".."/>
        <remarks>..</remarks>
        <siap ctn=".." partner="JPN" picture="coalition" status="confirmed"
              mode_s="393322" mode_3a="1000" sensors=".."/>
      </detail>
    </event>

* ``type``: air track ``a-<affiliation>-A`` with affiliation ``f`` friend, ``h`` hostile,
  ``n`` neutral, ``u`` unknown by :class:`AffiliationConfig` (a picture carries no identity
  classification, so the rule is configuration: first matching rule wins, then cooperative
  tracks, then the default).
* ``point``: WGS84 latitude/longitude, ``hae`` the track's ellipsoidal height (m); ``ce`` and
  ``le`` the circular and vertical 1-sigma errors (m) of the track covariance in local
  east-north-up: ``ce = sqrt((P_ee + P_nn) / 2)``, ``le = sqrt(P_uu)`` (CoT's 9999999 for
  unknown).
* ``track``: course (deg clockwise from true north) and speed (m/s) from the ENU velocity.
* ``stale``: picture time + ``stale_s``; a track that leaves the picture goes stale on the
  display.
* ``uid`` is stable per track: ``<uid_prefix>.<picture partner>.<track id>``; the coalition
  track number is the track id of a coalition picture.

Transport: plain ``xml.etree`` and sockets. PyTAK (Apache-2.0) is asyncio-based: a sink that
the runtime calls synchronously would need its own event loop thread to use it, and PyTAK's
own event builder is ElementTree as well, so it would add a dependency and a loop without
changing a byte on the wire. :class:`CotUdpSink` sends one event per datagram (TAK's "mesh"
SA input, default 239.2.3.1:6969 in the field; loopback here); :class:`CotTcpSink` streams the
events back to back over one TCP connection (TAK server streaming input, port 8087 plain),
reconnecting when the connection drops. Both are :class:`siap.picture.PictureSink`: the
runtime's call only swaps in the newest picture; a sender thread does the I/O, so a slow
network drops intermediate pictures (counted) instead of blocking the runtime.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from siap import geo, records

__all__ = [
    "AffiliationRule",
    "AffiliationConfig",
    "CotConfig",
    "affiliations",
    "picture_to_cot",
    "parse_cot",
    "CotUdpSink",
    "CotTcpSink",
]

log = logging.getLogger(__name__)
UNKNOWN_ERROR_M = 9999999.0  # CoT's "unknown" for ce / le


class AffiliationRule(BaseModel):
    """Tracks matching every given criterion get ``affiliation``."""

    model_config = ConfigDict(extra="forbid")

    affiliation: Literal["f", "h", "n", "u"]
    mode_s_ranges: list[tuple[int, int]] = Field(
        default_factory=list, description="24-bit address blocks, inclusive (e.g. a state's military block)"
    )
    callsign_prefixes: list[str] = Field(default_factory=list, description="callsign starts with one of these")
    mode_3a: list[int] = Field(default_factory=list, description="Mode 3/A codes as integers (0o7500)")
    partners: list[str] = Field(default_factory=list, description="the track's producing partner is one of these")

    def matches(self, tracks: np.ndarray) -> np.ndarray:
        ok = np.ones(len(tracks), bool)
        if self.mode_s_ranges:
            a = tracks["mode_s_address"]
            ok &= np.any([(a >= lo) & (a <= hi) for lo, hi in self.mode_s_ranges], axis=0)
        if self.callsign_prefixes:
            cs = np.char.strip(tracks["callsign"].astype(str))
            ok &= np.any([np.char.startswith(cs, p) for p in self.callsign_prefixes], axis=0)
        if self.mode_3a:
            ok &= np.isin(tracks["mode_3a"], self.mode_3a)
        if self.partners:
            ok &= np.isin(tracks["partner"], self.partners)
        return ok


class AffiliationConfig(BaseModel):
    """The affiliation rule: ``rules`` in order (first match wins); then ``cooperative`` for
    tracks with a Mode S address or Mode 3/A code (a transponder: civil traffic by default,
    neutral); then ``default`` (no identification: unknown)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AffiliationRule] = Field(default_factory=list)
    cooperative: Literal["f", "h", "n", "u"] = "n"
    default: Literal["f", "h", "n", "u"] = "u"


class CotConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    affiliation: AffiliationConfig = Field(default_factory=AffiliationConfig)
    stale_s: float = Field(15.0, gt=0.0, description="an event is stale this long after the picture time (s)")
    uid_prefix: str = Field("siap", description="uid = <prefix>.<picture partner>.<track id>")
    how: str = Field("m-f", description="CoT how: machine, fused")
    confirmed_only: bool = Field(True, description="send only confirmed / coasting tracks")


def affiliations(tracks: np.ndarray, cfg: AffiliationConfig) -> np.ndarray:
    """The affiliation letter of each track under ``cfg``."""
    out = np.full(len(tracks), cfg.default, dtype="<U1")
    coop = (tracks["mode_s_address"] != records.NO_MODE_S) | (tracks["mode_3a"] != records.NO_MODE_3A)
    out[coop] = cfg.cooperative
    decided = np.zeros(len(tracks), bool)
    for rule in cfg.rules:
        hit = rule.matches(tracks) & ~decided
        out[hit] = rule.affiliation
        decided |= hit
    return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _enu_terms(tracks: np.ndarray):
    """Course (deg), speed (m/s), ce and le (m) of each track from its ECEF state."""
    n = len(tracks)
    if n == 0:
        return (np.zeros(0),) * 4
    rot = geo.enu_rotation(tracks["lat_deg"], tracks["lon_deg"]).reshape(n, 3, 3)
    v = np.einsum("nij,nj->ni", rot, tracks["vel_ecef_mps"])
    course = np.degrees(np.arctan2(v[:, 0], v[:, 1])) % 360.0
    speed = np.hypot(v[:, 0], v[:, 1])
    p = tracks["cov_ecef"][:, :3, :3]
    p_enu = np.einsum("nij,njk,nlk->nil", rot, p, rot)
    ce = np.sqrt(np.maximum((p_enu[:, 0, 0] + p_enu[:, 1, 1]) / 2.0, 0.0))
    le = np.sqrt(np.maximum(p_enu[:, 2, 2], 0.0))
    ce = np.where(np.isfinite(ce), ce, UNKNOWN_ERROR_M)
    le = np.where(np.isfinite(le), le, UNKNOWN_ERROR_M)
    return course, speed, ce, le


def picture_to_cot(picture, cfg: CotConfig | None = None) -> list[bytes]:
    """The CoT events (UTF-8 XML, one per track) of a :class:`siap.picture.Picture`."""
    cfg = cfg or CotConfig()
    tracks = picture.tracks
    if cfg.confirmed_only:
        st = tracks["status"]
        tracks = tracks[(st == records.TrackStatus.CONFIRMED) | (st == records.TrackStatus.COASTING)]
    aff = affiliations(tracks, cfg.affiliation)
    course, speed, ce, le = _enu_terms(tracks)
    now = _iso(picture.time_s)
    stale = _iso(picture.time_s + cfg.stale_s)
    status_names = {int(s): s.name.lower() for s in records.TrackStatus}
    out = []
    for i, tr in enumerate(tracks):
        tid = int(tr["track_id"])
        ev = ET.Element("event", {
            "version": "2.0",
            "uid": f"{cfg.uid_prefix}.{picture.partner or 'network'}.{tid}",
            "type": f"a-{aff[i]}-A",
            "how": cfg.how,
            "time": _iso(float(tr["time_s"])) if math.isfinite(tr["time_s"]) else now,
            "start": now,
            "stale": stale,
        })
        ET.SubElement(ev, "point", {
            "lat": f"{tr['lat_deg']:.7f}",
            "lon": f"{tr['lon_deg']:.7f}",
            "hae": f"{tr['alt_m']:.1f}",
            "ce": f"{ce[i]:.1f}",
            "le": f"{le[i]:.1f}",
        })
        detail = ET.SubElement(ev, "detail")
        if math.isfinite(course[i]) and math.isfinite(speed[i]):
            ET.SubElement(detail, "track", {"course": f"{course[i]:.2f}", "speed": f"{speed[i]:.2f}"})
        callsign = str(tr["callsign"]).strip() or f"{picture.partner or 'T'}{tid}"
        ET.SubElement(detail, "contact", {"callsign": callsign})
        ms = int(tr["mode_s_address"])
        m3 = int(tr["mode_3a"])
        siap_attrs = {
            "ctn": str(tid),
            "partner": picture.partner,
            "picture": picture.kind,
            "status": status_names.get(int(tr["status"]), "unknown"),
        }
        remarks = [f"siap {picture.kind} track {tid} of {picture.partner or 'network'}"]
        if ms != records.NO_MODE_S:
            siap_attrs["mode_s"] = f"{ms:06x}"
            remarks.append(f"Mode S {ms:06X}")
        if m3 != records.NO_MODE_3A:
            siap_attrs["mode_3a"] = f"{m3:04o}"
            remarks.append(f"Mode 3/A {m3:04o}")
        if tr["sensors"]:
            siap_attrs["sensors"] = str(tr["sensors"])
        ET.SubElement(detail, "remarks").text = "; ".join(remarks)
        ET.SubElement(detail, "siap", siap_attrs)
        out.append(ET.tostring(ev, encoding="utf-8", xml_declaration=False))
    return out


def parse_cot(data: bytes) -> list[dict]:
    """Events back from bytes (one event, or events back to back as on a TAK TCP stream): a
    dict per event with uid, type, time fields, point, course/speed, callsign and the
    ``siap`` detail. For tests and for a receiver."""
    text = data.decode("utf-8").strip()
    root = ET.fromstring(f"<events>{text}</events>")
    out = []
    for ev in root.findall("event"):
        pt = ev.find("point")
        d = {k: ev.get(k) for k in ("uid", "type", "how", "time", "start", "stale")}
        d.update({k: float(pt.get(k)) for k in ("lat", "lon", "hae", "ce", "le")})
        trk = ev.find("detail/track")
        d["course"] = float(trk.get("course")) if trk is not None else math.nan
        d["speed"] = float(trk.get("speed")) if trk is not None else math.nan
        contact = ev.find("detail/contact")
        d["callsign"] = contact.get("callsign") if contact is not None else ""
        s = ev.find("detail/siap")
        d["siap"] = dict(s.attrib) if s is not None else {}
        out.append(d)
    return out


class _SenderSink:
    """A PictureSink whose ``on_picture`` only swaps in the newest picture; a thread sends."""

    def __init__(self, cfg: CotConfig | None, name: str):
        self.cfg = cfg or CotConfig()
        self.counts: Counter = Counter()
        self._pending = None
        self._busy = False
        self._cv = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def on_picture(self, picture) -> None:
        with self._cv:
            if self._pending is not None:
                self.counts["pictures_dropped"] += 1
            self._pending = picture
            self._cv.notify()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the pending picture has been sent (True) or ``timeout_s`` passed."""
        end = time.monotonic() + timeout_s
        with self._cv:
            while (self._pending is not None or self._busy) and time.monotonic() < end:
                self._cv.wait(0.05)
            return self._pending is None and not self._busy

    def close(self) -> None:
        self.flush(1.0)
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(2.0)
        self._close_socket()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._closed:
                    self._cv.wait()
                if self._closed and self._pending is None:
                    return
                picture, self._pending = self._pending, None
                self._busy = True
            try:
                events = picture_to_cot(picture, self.cfg)
                self._send(events)
                self.counts["pictures"] += 1
                self.counts["events"] += len(events)
            except OSError as exc:
                self.counts["send_errors"] += 1
                log.warning("%s: send failed: %s", self._thread.name, exc)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _send(self, events: list[bytes]) -> None:
        raise NotImplementedError

    def _close_socket(self) -> None:
        pass


class CotUdpSink(_SenderSink):
    """CoT over UDP: one event per datagram to ``host:port``."""

    def __init__(self, host: str, port: int, cfg: CotConfig | None = None):
        self.addr = (host, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        super().__init__(cfg, f"cot-udp:{host}:{port}")

    def _send(self, events: list[bytes]) -> None:
        for ev in events:
            self.sock.sendto(ev, self.addr)

    def _close_socket(self) -> None:
        self.sock.close()


class CotTcpSink(_SenderSink):
    """CoT over TCP (TAK server streaming input): events back to back on one connection,
    reconnected on the next picture after a failure."""

    def __init__(self, host: str, port: int, cfg: CotConfig | None = None, connect_timeout_s: float = 2.0):
        self.addr = (host, port)
        self.timeout_s = connect_timeout_s
        self.sock: socket.socket | None = None
        super().__init__(cfg, f"cot-tcp:{host}:{port}")

    def _send(self, events: list[bytes]) -> None:
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=self.timeout_s)
            self.counts["connects"] += 1
        try:
            self.sock.sendall(b"".join(events))
        except OSError:
            self.sock.close()
            self.sock = None
            raise

    def _close_socket(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
