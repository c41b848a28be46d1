"""The picture out as ASTERIX: CAT062 system tracks plus CAT065 SDPS service messages, to a file
or over UDP, one stream per partner.

Each track row (:data:`siap.records.TRACK_DTYPE`) becomes one CAT062 record:

* I062/010 the SDPS's SAC/SIC, I062/015 its service identification;
* I062/070 the track's time of validity (time of day, 1/128 s);
* I062/040 track number: ``track_id`` modulo 65536 (CAT062 carries 16 bits);
* I062/105 WGS-84 position (180/2^25 deg);
* I062/185 velocity (0.25 m/s): the ECEF velocity rotated into east (Vx) and north (Vy) at the
  track's position;
* I062/136 flight level and I062/130 geometric altitude from ``alt_m`` (siap's tracks carry
  one altitude; Mode C altitudes are used as geometric, as the tracker does);
* I062/060 Mode 3/A, I062/380 ADR (Mode S address) and ID (callsign) where known;
* I062/080 track status: MON (one contributing sensor), CNF (tentative), CST (coasting), TSE
  (deleted: the last report of that track);
* I062/290 TRK track age is not sent: a siap track batch does not hold when a track began.

After each picture's CAT062 blocks comes a CAT065 *end of batch* message (I065/020 batch
number, modulo 256), and every ``status_every_s`` a CAT065 *SDPS status* message (I065/040:
operational).
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np

from siap import geo
from siap.records import TrackStatus

from .decode import ascii8
from .encode import CAT062_FIELDS, encode_cat062, encode_cat065


def tracks_to_cat062(tracks: np.ndarray) -> np.ndarray:
    """CAT062_FIELDS rows for a track batch (see the module docstring)."""
    n = len(tracks)
    f = np.zeros(n, CAT062_FIELDS)
    if not n:
        return f
    f["tod_s"] = np.mod(tracks["time_s"], 86400.0)
    f["track_number"] = np.mod(tracks["track_id"], 65536)
    f["lat_deg"], f["lon_deg"], f["alt_m"] = tracks["lat_deg"], tracks["lon_deg"], tracks["alt_m"]
    rot = geo.enu_rotation(np.nan_to_num(tracks["lat_deg"]), np.nan_to_num(tracks["lon_deg"]))
    v_enu = np.einsum("nij,nj->ni", rot, tracks["vel_ecef_mps"])
    f["vx_mps"], f["vy_mps"] = v_enu[:, 0], v_enu[:, 1]
    f["mode_3a"] = tracks["mode_3a"]
    f["mode_s_address"] = tracks["mode_s_address"]
    f["callsign"] = ascii8(tracks["callsign"])
    status = tracks["status"]
    f["tentative"] = status == TrackStatus.TENTATIVE
    f["coasting"] = status == TrackStatus.COASTING
    f["ended"] = status == TrackStatus.DELETED
    sensors = tracks["sensors"]
    f["mono"] = (np.char.str_len(sensors) > 0) & (np.char.count(sensors, ",") == 0)
    f["age_s"] = np.nan
    return f


class Cat062Writer:
    """Encodes pictures as CAT062 + CAT065 and hands the bytes to ``write(bytes)`` one data
    block at a time (a datagram each, over UDP)."""

    def __init__(
        self, write, *, sac: int, sic: int, service_id: int = 1, max_block_bytes: int = 1400,
        status_every_s: float = 10.0,
    ):  # fmt: skip
        self._write = write
        self.sac, self.sic, self.service_id = sac, sic, service_id
        self.max_block_bytes = max_block_bytes
        self.status_every_s = status_every_s
        self.batch = 0
        self._last_status = -np.inf
        self.tracks_sent = 0
        self.blocks_sent = 0

    def write_tracks(self, tracks: np.ndarray, time_s: float) -> None:
        if time_s - self._last_status >= self.status_every_s:
            self._emit(encode_cat065(self.sac, self.sic, time_s, 1, service_id=self.service_id))
            self._last_status = time_s
        for block in encode_cat062(tracks_to_cat062(tracks), self.sac, self.sic, self.service_id, self.max_block_bytes):
            self._emit(block)
        self.tracks_sent += len(tracks)
        self._emit(encode_cat065(self.sac, self.sic, time_s, 2, service_id=self.service_id, batch_number=self.batch))
        self.batch = (self.batch + 1) % 256

    def _emit(self, block: bytes) -> None:
        self._write(block)
        self.blocks_sent += 1


class Cat062Sink:
    """A :class:`siap.picture.PictureSink` that sends one partner's pictures as CAT062/CAT065.

    ``partner``: only pictures of that partner are sent (each partner's stream carries only
    its own picture; a picture for another partner is ignored). Destination: ``path`` (a file,
    data blocks appended) or ``udp=(host, port)`` (one datagram per data block)."""

    def __init__(
        self, partner: str, *, sac: int, sic: int, path: str | Path | None = None,
        udp: tuple[str, int] | None = None, service_id: int = 1, max_block_bytes: int = 1400,
        status_every_s: float = 10.0,
    ):  # fmt: skip
        if (path is None) == (udp is None):
            raise ValueError("Cat062Sink: give exactly one of path or udp")
        self.partner = partner
        self._file = open(path, "ab") if path is not None else None  # noqa: SIM115
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if udp is not None else None
        self._udp = udp

        def write(block: bytes) -> None:
            if self._file is not None:
                self._file.write(block)
            else:
                self._sock.sendto(block, self._udp)

        self.writer = Cat062Writer(
            write, sac=sac, sic=sic, service_id=service_id, max_block_bytes=max_block_bytes,
            status_every_s=status_every_s,
        )  # fmt: skip

    def on_picture(self, picture) -> None:
        if picture.partner != self.partner:
            return
        self.writer.write_tracks(picture.tracks, picture.time_s)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
