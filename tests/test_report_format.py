"""The report's reader-friendly numbers and its Natural Earth base map (TopoJSON decoding)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

from siap.report import (
    _decode_arcs,
    format_quantity,
    natural_earth,
    topojson_lines,
    topojson_polygons,
)


@pytest.mark.parametrize(
    ("name", "value", "text"),
    [
        ("gospa_mean_m", 280_612.3, "280.6 km"),
        ("siap_position_accuracy_m", 487.2, "487 m"),
        ("siap_position_accuracy_m", 4.812, "4.81 m"),
        ("AUS gospa_localisation_mean", 4405.7, "4,406 m"),
        ("siap_completeness", 0.6957, "69.6 %"),
        ("commonality", 1.0, "100.0 %"),
        ("siap_velocity_accuracy_mps", 18.66, "18.7 m/s"),
        ("siap_rate_of_track_number_changes_per_s", 0.00029, "1.04 /h"),
        ("duration_s", 1800.0, "1,800.0 s"),
        ("plots", 280_612, "280,612"),
        ("seed", 20260302, "20260302"),
        ("gospa_p", 1.0, "1"),
        ("siap_ambiguity", 1.00812, "1.008"),
        ("ratio", 123456.7, "123,457"),
        ("ratio", 0.000012345, "0.00001234"),
        ("gospa_mean_m", float("nan"), "-"),
        ("ok", True, "yes"),
        ("scenario", "pacific", "pacific"),
    ],
)
def test_format_quantity(name, value, text):
    assert format_quantity(name, value) == text
    assert "e+" not in format_quantity(name, value) and "e-" not in format_quantity(name, value)


def test_topojson_decoding_known_topology():
    # a hand-made quantized topology: two squares sharing arc 1 (delta-encoded, TopoJSON sec. 2.1.4)
    topo = {
        "type": "Topology",
        "transform": {"scale": [0.5, 0.25], "translate": [100, 10]},
        "objects": {
            "a": {"type": "GeometryCollection", "geometries": [
                {"type": "Polygon", "arcs": [[0, ~1]]},
                {"type": "Polygon", "arcs": [[1, 2]]},
            ]},
        },
        "arcs": [[[0, 0], [4, 0], [0, 4]], [[0, 0], [0, 4], [4, 0]], [[4, 4], [-4, 0]]],
    }
    arcs = _decode_arcs(topo)
    assert np.allclose(arcs[0], [[100, 10], [102, 10], [102, 11]])
    assert np.allclose(arcs[1], [[100, 10], [100, 11], [102, 11]])
    ring = topojson_polygons(topo, "a")[0]
    assert np.allclose(ring, [[100, 10], [102, 10], [102, 11], [100, 11], [100, 10]])
    shared = topojson_lines(topo, "a", shared_only=True)
    assert len(shared) == 1 and np.allclose(shared[0], arcs[1])
    assert len(topojson_lines(topo, "a")) == 3


def test_natural_earth_land_and_borders():
    ne = natural_earth("50m")
    land = [MplPath(r) for r in ne["land"]]

    def on_land(lon, lat):
        return any(p.contains_point((lon, lat)) for p in land)

    assert on_land(138.0, 36.0)  # Honshu
    assert on_land(127.0, 37.5)  # Seoul
    assert on_land(2.35, 48.85)  # Paris
    assert not on_land(135.0, 30.0)  # Pacific, south of Shikoku
    assert not on_land(-30.0, 40.0)  # Atlantic
    # a border passes between North Korea and China near the Yalu (40-42 N, 124-131 E)
    near = [b for b in ne["borders"] if np.any((b[:, 0] > 124) & (b[:, 0] < 131) & (b[:, 1] > 40) & (b[:, 1] < 43))]
    assert near
    assert all(np.all(np.abs(a[:, 0]) <= 180.0) and np.all(np.abs(a[:, 1]) <= 90.0) for a in ne["coast"])
