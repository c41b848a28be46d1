"""Simulated ADS-B plots -> Mode S frames (siap.formats.modes_encode), checked by pyModeS and
by decoding them back. The end-to-end path (simulated scenario -> Beast over TCP loopback ->
the live runtime -> CoT over UDP loopback) is tests/test_runtime_end_to_end.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyproj import Geod

from siap import records
from siap.formats import modes
from siap.formats.modes import encode as modes_encode

DATA = Path(__file__).parent / "data"
GEOD = Geod(ellps="WGS84")


@pytest.fixture(scope="module")
def sim():
    from siap.scenario import load_scenario
    from siap.simulation import simulate

    return simulate(load_scenario(DATA / "coalition_small.yaml"))


@pytest.fixture(scope="module")
def adsb(sim):
    plots = sim.plots[sim.plots["kind"] == records.MeasurementKind.ADSB]
    (sid,) = set(plots["sensor_id"])
    info = next(s for s in sim.sensors if s.id == sid)
    rx = modes.ReceiverConfig(receiver_id=sid, partner=info.partner, lat_deg=info.lat_deg,
                              lon_deg=info.lon_deg, alt_m=info.alt_m)
    return plots, rx


def test_cpr_encode_decode_known_answer():
    # The 1090 MHz Riddle, ch. 5: the pair decodes to 52.2572 N 3.91937 E; encoding the
    # decoded position gives the message's own CPR counts back
    lat, lon = modes.cpr_global_airborne((93000, 51372), (74158, 50194), newest_odd=False)
    assert modes_encode.cpr_encode(lat, lon, odd=False) == (93000, 51372)


def test_frames_are_valid_mode_s_for_pymodes(adsb):
    pms = pytest.importorskip("pyModeS")
    plots, _ = adsb
    frames = modes_encode.encode_adsb_plots(plots[:200])
    by_index = plots[:200]
    for i in range(len(frames)):
        o = pms.decode(frames.hex(i))
        p = by_index[frames.where[i]]
        assert int(o["icao"], 16) == p["mode_s_address"]
        if o["df"] == 17:
            assert o["crc_valid"]
            if o["typecode"] == 4:
                assert o["callsign"].strip("_ ") == p["callsign"]
            else:
                assert 9 <= o["typecode"] <= 18
                assert o["altitude"] * 0.3048 == pytest.approx(p["alt_m"], abs=25 * 0.3048 / 2 + 1e-6)
        else:
            assert o["df"] == 5 and int(o["squawk"], 8) == p["mode_3a"]


def test_simulated_plots_round_trip_through_mode_s(adsb):
    plots, rx = adsb
    res = modes.ModeSDecoder(rx).decode(modes_encode.encode_adsb_plots(plots))
    out = res.plots
    n_aircraft = len(np.unique(plots["mode_s_address"]))
    # every report but each aircraft's first (a global decode needs an even/odd pair)
    assert len(out) == len(plots) - n_aircraft
    index = {(int(a), round(float(t), 6)): i for i, (a, t) in enumerate(zip(plots["mode_s_address"], plots["time_s"], strict=True))}
    for p in out:
        q = plots[index[(int(p["mode_s_address"]), round(float(p["time_s"]), 6))]]
        # CPR resolution: 360/60/2^17 deg = 5.1 m in latitude, less in longitude
        assert GEOD.inv(p["lon_deg"], p["lat_deg"], q["lon_deg"], q["lat_deg"])[2] < 5.2
        assert p["alt_m"] == pytest.approx(q["alt_m"], abs=25 * 0.3048 / 2)
        assert p["callsign"] == q["callsign"] and p["mode_3a"] == q["mode_3a"]
        assert p["cov"][0, 0] >= q["cov"][0, 0]  # the type code's bound covers the plot's accuracy
    assert set(out["sensor_id"]) == {rx.receiver_id}
