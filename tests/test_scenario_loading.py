"""Scenario files: built-ins, unit conversion, and one-line ConfigErrors for malformed files."""

from __future__ import annotations

import math

import pytest
import yaml

from siap.errors import ConfigError
from siap.scenario import builtin_names, load_scenario
from siap.scenario.models import FT_TO_M, KT_TO_MPS, AirborneRadar, GroundRadar

GOOD = {
    "name": "t",
    "start_time_utc": "2026-01-01T00:00:00Z",
    "duration_s": 60,
    "seed": 3,
    "origin": {"lat_deg": 35.0, "lon_deg": 135.0},
    "partners": [{"id": "JPN", "name": "Japan"}, {"id": "USA"}],
    "sensors": [
        {
            "id": "R1",
            "type": "ground_radar",
            "partner": "JPN",
            "lat_deg": 35.0,
            "lon_deg": 135.0,
            "scan_period_s": 5,
            "max_range_km": 200,
            "range_sigma_m": 50,
            "azimuth_sigma_deg": 0.1,
            "detection": {"pd_at_ref_range": 0.9, "ref_range_km": 150},
        }
    ],
    "targets": [
        {
            "type": "route",
            "waypoints": [
                {"lat_deg": 35.0, "lon_deg": 135.5, "altitude_ft": 30000, "speed_kt": 450},
                {"lat_deg": 36.0, "lon_deg": 135.5, "altitude_m": 9000, "speed_mps": 230},
            ],
        }
    ],
}


def _write(tmp_path, data, name="s.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def _bad(tmp_path, data) -> str:
    p = _write(tmp_path, data)
    with pytest.raises(ConfigError) as ei:
        load_scenario(p)
    msg = str(ei.value)
    assert "\n" not in msg, msg
    assert msg.startswith(str(p) + ": "), msg
    assert ei.value.exit_code == 2
    return msg


def _mod(path: list, value):
    import copy

    d = copy.deepcopy(GOOD)
    cur = d
    for k in path[:-1]:
        cur = cur[k]
    if value is _DELETE:
        del cur[path[-1]]
    else:
        cur[path[-1]] = value
    return d


_DELETE = object()


def test_builtin_names_and_default_loads():
    names = builtin_names()
    assert "pacific" in names and "paris-real" in names
    s = load_scenario("pacific")
    assert s.name == "pacific"
    assert s.duration_s == 1800
    assert {p.id for p in s.partners} == {"JPN", "USA", "AUS"}
    assert 6 <= len(s.sensors) <= 10
    assert any(isinstance(x, AirborneRadar) for x in s.sensors)
    radars = [x for x in s.sensors if isinstance(x, GroundRadar | AirborneRadar)]
    assert all(4 <= x.scan_period_s <= 12 for x in radars)
    assert any(x.bias.range_m or x.bias.azimuth_deg or x.bias.time_s for x in radars)
    r = load_scenario("paris-real")
    assert r.targets[0].type == "trajectory_file"


def test_seed_override_and_units(tmp_path):
    s = load_scenario(_write(tmp_path, GOOD), seed=99)
    assert s.seed == 99
    assert s.start_time_s == 1767225600.0  # 2026-01-01T00:00:00Z
    wp = s.targets[0].waypoints
    assert wp[0].alt_m == pytest.approx(30000 * FT_TO_M)
    assert wp[0].spd_mps == pytest.approx(450 * 1852 / 3600)
    assert KT_TO_MPS == pytest.approx(0.514444, rel=1e-5)
    assert wp[1].alt_m == 9000 and wp[1].spd_mps == 230
    r = s.sensors[0]
    assert r.max_range_m == 200e3 and r.rotation == "clockwise" and r.dimension == "3d"
    assert s.source_path == (tmp_path / "s.yaml").resolve()
    assert math.isclose(s.truth_step_s, 1.0)


def test_yaml_syntax_error_names_line(tmp_path):
    text = "name: t\nduration_s: 60\npartners: [ {id: JPN\nsensors: []\n"
    msg = _bad(tmp_path, text)
    assert "line " in msg and "YAML" in msg


def test_unknown_field(tmp_path):
    d = _mod(["sensors", 0, "scan_perod_s"], 5)
    msg = _bad(tmp_path, d)
    assert ": sensors[0].scan_perod_s: " in msg and "unknown field" in msg


def test_wrong_type(tmp_path):
    msg = _bad(tmp_path, _mod(["duration_s"], "long"))
    assert ": duration_s: " in msg and "(got long)" in msg
    msg = _bad(tmp_path, _mod(["targets", 0, "waypoints", 0, "speed_kt"], [1, 2]))
    assert ": targets[0].waypoints[0].speed_kt: " in msg


@pytest.mark.parametrize("period", [-4, 0])
def test_non_positive_scan_period(tmp_path, period):
    msg = _bad(tmp_path, _mod(["sensors", 0, "scan_period_s"], period))
    assert ": sensors[0].scan_period_s: " in msg and "greater than 0" in msg and f"(got {period})" in msg


def test_undeclared_partner(tmp_path):
    msg = _bad(tmp_path, _mod(["sensors", 0, "partner"], "KOR"))
    assert ": sensors[0].partner: " in msg and "JPN, USA" in msg and "(got KOR)" in msg


def test_bad_partner_code(tmp_path):
    msg = _bad(tmp_path, _mod(["partners", 0, "id"], "Japan"))
    assert ": partners[0].id: " in msg and "alpha-3" in msg


def test_missing_trajectory_file(tmp_path):
    d = _mod(["targets"], [{"type": "trajectory_file", "path": "nowhere.json.gz"}])
    msg = _bad(tmp_path, d)
    assert ": targets[0].path: " in msg and "nowhere.json.gz" in msg


def test_unknown_sensor_type_and_missing_field(tmp_path):
    msg = _bad(tmp_path, _mod(["sensors", 0, "type"], "sonar"))
    assert ": sensors[0].type: " in msg and "ground_radar" in msg
    msg = _bad(tmp_path, _mod(["sensors", 0, "max_range_km"], _DELETE))
    assert ": sensors[0].max_range_km: " in msg and "required" in msg


def test_altitude_given_twice_or_not_at_all(tmp_path):
    msg = _bad(tmp_path, _mod(["targets", 0, "waypoints", 0, "altitude_m"], 9000))
    assert ": targets[0].waypoints[0]: " in msg and "altitude_ft or altitude_m" in msg
    msg = _bad(tmp_path, _mod(["targets", 0, "waypoints", 1, "altitude_m"], _DELETE))
    assert "targets[0].waypoints[1]" in msg and "altitude" in msg


def test_bad_codes_and_duplicates(tmp_path):
    d = _mod(["targets", 0, "mode_3a"], "7800")
    assert ": targets[0].mode_3a: " in _bad(tmp_path, d)
    d = _mod(["targets", 0, "mode_s_address"], "XYZ")
    assert ": targets[0].mode_s_address: " in _bad(tmp_path, d)
    import copy

    d = copy.deepcopy(GOOD)
    d["sensors"].append(copy.deepcopy(d["sensors"][0]))
    assert ": sensors[1].id: " in _bad(tmp_path, d)


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_scenario(tmp_path / "absent.yaml")
    assert "\n" not in str(ei.value) and "absent.yaml" in str(ei.value)
    msg = _bad(tmp_path, "- just\n- a list\n")
    assert "(top level)" in msg
