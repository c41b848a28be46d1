"""A careless (or hostile) user at the CLI: every bad input, for every command, ends in one line on
stderr naming the file or option, the field and what was expected, exit 2, no traceback and no
work started; nothing bad is silently accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from siap import records
from siap.cli import main
from siap.sharing.audit import AuditLog
from siap.sharing.signing import NodeIdentity, TrustStore

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"
POLICY = DATA / "coalition_small_policy.yaml"


def _scenario(tmp: Path, name: str, mutate) -> str:
    doc = yaml.safe_load(SCENARIO.read_text())
    mutate(doc)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _plots_file(tmp: Path, name: str, change=None, meta=None) -> str:
    pl = records.empty_plots(3)
    pl["time_s"] = [1.0, 2.0, 3.0]
    pl["plot_id"] = [1, 2, 3]
    table = records.to_arrow(pl)
    for column, values in (change or {}).items():
        table = table.set_column(table.schema.get_field_index(column), column, values)
    if meta:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in meta.items()}})
    path = tmp / f"{name}.parquet"
    pq.write_table(table, path)
    return str(path)


def _set(path: list, value):
    def mutate(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _cases(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """name -> (argv, words the one error line must contain)."""
    (tmp / "a-file").write_text("x")
    (tmp / "deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000)
    (tmp / "empty-dir").mkdir()
    sc, pol = str(SCENARIO), str(POLICY)
    traj = tmp / "states.csv"
    traj.write_text(
        "time,icao24,lat,lon,velocity,heading,vertrate,callsign,onground,baroaltitude\n"
        "1700000000,abc123,nan,135.0,200,90,0,ANA1,false,9000\n"
        "1700000010,abc123,35.0,135.1,200,90,0,ANA1,true,9000\n"
    )
    policy_doc = yaml.safe_load(POLICY.read_text())
    r2 = policy_doc["partners"]["JPN"]["sensors"].pop("JPN-R2")
    policy_doc["partners"]["USA"]["sensors"]["JPN-R2"] = r2  # the policy gives a JPN radar to USA
    (tmp / "moved.yaml").write_text(yaml.safe_dump(policy_doc))
    ident = NodeIdentity.generate("JPN-node", "JPN")
    TrustStore([ident]).save(tmp / "trust.yaml")
    with AuditLog(tmp / "audit.jsonl", ident, "r1") as log:
        log.append("release", time_s=1.0, partner="USA")
    (tmp / "head.json").write_text('{"seq": "zero"}')
    (tmp / "empty.bin").write_bytes(b"")
    (tmp / "empty.parquet").write_bytes(b"")
    (tmp / "binary.yaml").write_bytes(b"\xff\xfe\x00tokens")
    (tmp / "service.yaml").write_text("tokens: {JPN: 1}\n")
    site = "sites: [{sac: 1, sic: 2, sensor_id: R1, partner: JPN"
    (tmp / "sites.yaml").write_text(site + "}]\n")
    (tmp / "nan-sites.yaml").write_text(site + ", lat_deg: .nan, lon_deg: 139.0}]\n")
    (tmp / "inf-sites.yaml").write_text(site + ", range_sigma_m: .inf}]\n")
    beast, cat048 = str(DATA / "modes" / "sample_dump1090.bin"), str(DATA / "cat048.raw")
    audit = ["audit", "verify", str(tmp / "audit.jsonl"), "--node", "JPN-node", "--run", "r1"]
    return {
        # simulate: the scenario file
        "scenario nested too deep": (["simulate", str(tmp / "deep.yaml")], ["deep.yaml", "nested too deep"]),
        "noise of 1e300": (["simulate", _scenario(tmp, "noise", _set(["sensors", 0, "range_sigma_m"], 1e300))],
                           ["sensors[0].range_sigma_m", "less than or equal"]),
        "a billion false alarms": (["simulate", _scenario(tmp, "fa", _set(["sensors", 0, "false_alarms_per_scan"], 1e9))],
                                   ["sensors[0].false_alarms_per_scan"]),
        "false alarms over budget": (["simulate", _scenario(tmp, "fa2", _set(["sensors", 0, "false_alarms_per_scan"], 900_000))],
                                     ["false_alarms_per_scan", "false-alarm plots over the run"]),
        "microsecond step over hours": (
            ["simulate", _scenario(tmp, "step", lambda d: (d.update(truth_step_s=1e-6, duration_s=7200)))],
            ["truth_step_s", "at most"]),
        "NaN in a bias": (["simulate", _scenario(tmp, "nan", _set(["sensors", 0, "bias"], {"range_m": float("nan")}))],
                          ["sensors[0].bias.range_m", "finite"]),
        "infinite origin altitude": (["simulate", _scenario(tmp, "inf", _set(["origin", "alt_m"], float("inf")))],
                                     ["origin.alt_m", "finite"]),
        "scenario is a folder": (["simulate", str(tmp / "empty-dir")], ["empty-dir"]),
        "output under a file": (["simulate", sc, "-o", str(tmp / "a-file" / "p.parquet")], ["a-file", "--output", "folder"]),
        "output is a folder": (["simulate", sc, "-o", str(tmp / "empty-dir")], ["empty-dir", "--output", "a file"]),
        "negative seed": (["simulate", sc, "--seed", "-1"], ["--seed"]),
        "trajectories with no usable truth": (
            ["simulate", _scenario(tmp, "traj", _set(["targets"], [{"type": "trajectory_file", "path": str(traj)}]))],
            ["states.csv", "targets[0]", "usable truth"]),
        # track: the plots file and the options
        "plots file missing": (["track", str(tmp / "nope.parquet")], ["nope.parquet", "no such file"]),
        "plots file is a folder": (["track", str(tmp / "empty-dir")], ["empty-dir", "directory"]),
        "null integers": (["track", _plots_file(tmp, "nulls", {"plot_id": pa.array([1, None, 3], pa.int64())})],
                          ["nulls.parquet", "plot_id", "null"]),
        "text in a float column": (["track", _plots_file(tmp, "text", {"time_s": pa.array(["a", "b", "c"])})],
                                   ["text.parquet", "time_s", "expected double"]),
        "fraction in an integer column": (["track", _plots_file(tmp, "frac", {"plot_id": pa.array([1.5, 2.0, 3.0])})],
                                          ["frac.parquet", "plot_id"]),
        "integer overflow": (["track", _plots_file(tmp, "big", {"mode_3a": pa.array([70000, 1, 1], pa.int64())})],
                             ["big.parquet", "mode_3a"]),
        "NaN origin metadata": (["track", _plots_file(tmp, "nanmeta", meta={"origin_lat_deg": "nan", "origin_lon_deg": "0",
                                                                           "origin_alt_m": "0"})],
                                ["nanmeta.parquet", "origin_lat_deg", "finite"]),
        "no usable origin": (["track", _plots_file(tmp, "noorigin")], ["noorigin.parquet", "--config"]),
        "NaN output interval": (["track", _plots_file(tmp, "ok1"), "--output-interval-s", "nan"], ["--output-interval-s", "finite"]),
        "negative output interval": (["track", _plots_file(tmp, "ok2"), "--output-interval-s", "-5"], ["--output-interval-s"]),
        "track output is a folder": (["track", _plots_file(tmp, "ok3"), "-o", str(tmp / "empty-dir")], ["--output"]),
        "config is a folder": (["track", _plots_file(tmp, "ok4"), "--config", str(tmp / "empty-dir")], ["--config"]),
        # evaluate
        "truth is a folder": (["evaluate", "--truth", str(tmp / "empty-dir"), "--tracks", str(tmp / "a-file")], ["empty-dir"]),
        "tracks are plots": (["evaluate", "--truth", _plots_file(tmp, "t1"), "--tracks", _plots_file(tmp, "t2")], ["t1.parquet"]),
        "json under a file": (["evaluate", "--truth", str(tmp / "a-file"), "--tracks", str(tmp / "a-file"), "--json",
                               str(tmp / "a-file" / "m.json")], ["--json"]),
        # coalition / demo: options, policy against the scenario, output folder
        "NaN duration": (["coalition", sc, "--policy", pol, "--duration-s", "nan"], ["--duration-s", "finite"]),
        "a duration of a billion seconds": (["coalition", sc, "--policy", pol, "--duration-s", "1e9"], ["--duration-s", "at most"]),
        "infinite evaluation step": (["coalition", sc, "--policy", pol, "--eval-step-s", "inf"], ["--eval-step-s"]),
        "microsecond evaluation step": (["coalition", sc, "--policy", pol, "--eval-step-s", "1e-6"], ["--eval-step-s", "at most"]),
        "policy is a folder": (["coalition", sc, "--policy", str(tmp / "empty-dir")], ["empty-dir"]),
        "policy nested too deep": (["coalition", sc, "--policy", str(tmp / "deep.yaml")], ["deep.yaml", "nested too deep"]),
        "policy gives a sensor to another owner": (["coalition", sc, "--policy", str(tmp / "moved.yaml")],
                                                   ["moved.yaml", "JPN-R2", "expected under JPN"]),
        "output folder is a file": (["coalition", sc, "--policy", pol, "--out", str(tmp / "a-file")], ["a-file", "--out"]),
        "unknown mode": (["demo", "--scenario", sc, "--mode", "chaos"], ["--mode"]),
        # audit verify
        "no trust store": (audit, ["--trust"]),
        "trust store missing": ([*audit, "--trust", str(tmp / "none.yaml")], ["none.yaml", "--trust"]),
        "trust store an empty folder": ([*audit, "--trust", str(tmp / "empty-dir")], ["empty-dir", "found none"]),
        "trust store not YAML": ([*audit, "--trust", str(tmp / "deep.yaml")], ["deep.yaml"]),
        "bad head file": ([*audit, "--trust", str(tmp / "trust.yaml"), "--head", str(tmp / "head.json")], ["head.json"]),
        "anchor is a folder": ([*audit, "--trust", str(tmp / "trust.yaml"), "--anchor", str(tmp / "empty-dir")],
                               ["empty-dir", "--anchor"]),
        "log is a folder": (["audit", "verify", str(tmp / "empty-dir"), "--trust", str(tmp / "trust.yaml"), "--node", "x",
                             "--run", "r"], ["empty-dir", "directory"]),
        # serve (fails before any simulation or socket)
        "serve: NaN update period": (["serve", sc, "--update-s", "nan"], ["--update-s", "finite"]),
        "serve: infinite speed": (["serve", sc, "--speed", "inf"], ["--speed", "finite"]),
        "serve: NaN duration": (["serve", sc, "--duration-s", "nan"], ["--duration-s", "finite"]),
        "serve: a duration of a trillion seconds": (["serve", sc, "--duration-s", "1e12"], ["--duration-s", "at most"]),
        "serve: a nanosecond update period": (["serve", sc, "--update-s", "1e-9"], ["--update-s", "at most"]),
        "serve: negative seed": (["serve", sc, "--seed", "-1"], ["--seed"]),
        "serve: config is a folder": (["serve", sc, "--config", str(tmp / "empty-dir")], ["empty-dir", "--config"]),
        "serve: config missing": (["serve", sc, "--config", str(tmp / "none.yaml")], ["none.yaml", "--config", "no such"]),
        "serve: config nested too deep": (["serve", sc, "--config", str(tmp / "deep.yaml")], ["deep.yaml", "nested too deep"]),
        "serve: config token not text": (["serve", sc, "--config", str(tmp / "service.yaml")], ["service.yaml", "tokens.JPN"]),
        "serve: config is binary": (["serve", sc, "--config", str(tmp / "binary.yaml")], ["binary.yaml", "UTF-8"]),
        "serve: an empty recording folder": (["serve", str(tmp / "empty-dir")], ["empty-dir", "recording"]),
        # record
        "record: NaN step": (["record", sc, "--step-s", "nan"], ["--step-s", "finite"]),
        "record: a nanosecond step": (["record", sc, "--step-s", "1e-9"], ["--step-s", "at most"]),
        "record: a duration of a trillion seconds": (["record", sc, "--duration-s", "1e12"], ["--duration-s", "at most"]),
        "record: output is a file": (["record", sc, "-o", str(tmp / "a-file")], ["a-file", "--output", "folder"]),
        "record: negative seed": (["record", sc, "--seed", "-1"], ["--seed"]),
        "record: policy is a folder": (["record", sc, "--policy", str(tmp / "empty-dir")], ["empty-dir"]),
        # modes decode
        "modes: empty file": (["modes", "decode", str(tmp / "empty.bin"), "--receiver", "35,139"], ["empty.bin", "empty file"]),
        "modes: file is a folder": (["modes", "decode", str(tmp / "empty-dir"), "--receiver", "35,139"], ["empty-dir"]),
        "modes: file missing": (["modes", "decode", str(tmp / "none.bin"), "--receiver", "35,139"], ["none.bin", "no such"]),
        "modes: NaN receiver latitude": (["modes", "decode", beast, "--receiver", "nan,139"], ["--receiver", "LAT,LON"]),
        "modes: infinite receiver altitude": (["modes", "decode", beast, "--receiver", "35,139,inf"], ["--receiver", "ALT"]),
        "modes: receiver altitude 1e300": (["modes", "decode", beast, "--receiver", "35,139,1e300"], ["--receiver", "ALT"]),
        "modes: NaN start time": (["modes", "decode", beast, "--receiver", "35,139", "--start-time", "nan"], ["--start-time"]),
        "modes: start time 1e300": (["modes", "decode", beast, "--receiver", "35,139", "--start-time", "1e300"],
                                    ["--start-time", "2**32"]),
        "modes: output is a folder": (["modes", "decode", beast, "--receiver", "35,139", "-o", str(tmp / "empty-dir")],
                                      ["empty-dir", "--output"]),
        # asterix decode / listen / encode / tracks
        "asterix decode: empty file": (["asterix", "decode", str(tmp / "empty.bin")], ["empty.bin", "empty file"]),
        "asterix decode: file is a folder": (["asterix", "decode", str(tmp / "empty-dir")], ["empty-dir", "directory"]),
        "asterix decode: sites is a folder": (["asterix", "decode", cat048, "--sites", str(tmp / "empty-dir")],
                                              ["empty-dir", "--sites"]),
        "asterix decode: sites nested too deep": (["asterix", "decode", cat048, "--sites", str(tmp / "deep.yaml")],
                                                  ["deep.yaml", "nested too deep"]),
        "asterix decode: NaN site latitude": (["asterix", "decode", cat048, "--sites", str(tmp / "nan-sites.yaml")],
                                              ["nan-sites.yaml", "sites[0].lat_deg", "finite"]),
        "asterix decode: infinite range noise": (["asterix", "decode", cat048, "--sites", str(tmp / "inf-sites.yaml")],
                                                 ["inf-sites.yaml", "sites[0].range_sigma_m", "finite"]),
        "asterix decode: bad date": (["asterix", "decode", cat048, "--date", "2026-13-45"], ["--date"]),
        "asterix decode: output is a folder": (
            ["asterix", "decode", cat048, "--sites", str(tmp / "sites.yaml"), "-o", str(tmp / "empty-dir")],
            ["empty-dir", "--output"]),
        "asterix listen: NaN idle timeout": (["asterix", "listen", "--port", "9", "--sites", str(tmp / "sites.yaml"),
                                              "--idle-timeout-s", "nan"], ["--idle-timeout-s", "finite"]),
        "asterix listen: idle timeout 1e300": (["asterix", "listen", "--port", "9", "--sites", str(tmp / "sites.yaml"),
                                                "--idle-timeout-s", "1e300"], ["--idle-timeout-s", "at most"]),
        "asterix listen: sites is a folder": (["asterix", "listen", "--port", "9", "--sites", str(tmp / "empty-dir")],
                                              ["empty-dir", "--sites"]),
        "asterix listen: output is a folder": (["asterix", "listen", "--port", "9", "--sites", str(tmp / "sites.yaml"),
                                                "-o", str(tmp / "empty-dir")], ["empty-dir", "--output"]),
        "asterix encode: null integers": (["asterix", "encode", _plots_file(tmp, "anulls", {"plot_id": pa.array([1, None, 3])}),
                                           "--sites", str(tmp / "sites.yaml")], ["anulls.parquet", "plot_id", "null"]),
        "asterix encode: text in a float column": (
            ["asterix", "encode", _plots_file(tmp, "atext", {"time_s": pa.array(["a", "b", "c"])}), "--sites",
             str(tmp / "sites.yaml")], ["atext.parquet", "time_s", "expected double"]),
        "asterix encode: empty file": (["asterix", "encode", str(tmp / "empty.parquet"), "--sites", str(tmp / "sites.yaml")],
                                       ["empty.parquet"]),
        "asterix encode: sites missing": (["asterix", "encode", _plots_file(tmp, "aok"), "--sites", str(tmp / "none.yaml")],
                                          ["none.yaml", "--sites"]),
        "asterix encode: output is a folder": (["asterix", "encode", _plots_file(tmp, "aok2"), "--sites", str(tmp / "sites.yaml"),
                                                "-o", str(tmp / "empty-dir")], ["empty-dir", "--output"]),
        "asterix tracks: plots given": (["asterix", "tracks", _plots_file(tmp, "aplots")], ["aplots.parquet", "track_id"]),
        "asterix tracks: empty file": (["asterix", "tracks", str(tmp / "empty.parquet")], ["empty.parquet"]),
        "asterix tracks: a folder": (["asterix", "tracks", str(tmp / "empty-dir")], ["empty-dir", "directory"]),
        "asterix tracks: output is a folder": (["asterix", "tracks", _plots_file(tmp, "aok3"), "-o", str(tmp / "empty-dir")],
                                               ["empty-dir", "--output"]),
        "asterix tracks: SAC 300": (["asterix", "tracks", _plots_file(tmp, "aok4"), "--sac", "300"], ["--sac"]),
        # usage
        "unknown command": (["fly"], ["fly"]),
        "missing argument": (["track"], ["plots_path"]),
        "not a number": (["track", str(tmp / "a-file"), "--output-interval-s", "five"], ["--output-interval-s"]),
    }




def pytest_generate_tests(metafunc):  # noqa: D103 - parametrize by the case names
    if "case" in metafunc.fixturenames:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            names = list(_cases(Path(d)))
        metafunc.parametrize("case", names)


def test_bad_input_is_one_line_exit_2_no_traceback(tmp_path, capsys, case):
    argv, needles = _cases(tmp_path)[case]
    with pytest.raises(SystemExit) as ended:
        main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert ended.value.code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for word in needles:
        assert word in lines[0], lines[0]


def test_the_good_inputs_of_these_cases_are_accepted(tmp_path, capsys):
    """The cases above fail for the reason they name: the same commands with sane values work."""
    with pytest.raises(SystemExit) as ended:
        main(["simulate", str(SCENARIO), "-o", str(tmp_path / "p.parquet"), "--seed", "3"])
    assert ended.value.code == 0, capsys.readouterr().err
    plots, _ = records.read_parquet(tmp_path / "p.parquet")
    assert len(plots) > 0 and np.isfinite(plots["time_s"]).all()
    with pytest.raises(SystemExit) as ended:
        main(["track", str(tmp_path / "p.parquet"), "-o", str(tmp_path / "t.parquet"), "--output-interval-s", "10"])
    assert ended.value.code == 0, capsys.readouterr().err
    assert json.dumps(records.read_parquet(tmp_path / "t.parquet")[1])
