"""Policy files: the built-in pacific policy, vectorised releasability, one-line config errors."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from siap.errors import ConfigError
from siap.records import empty_plots, empty_tracks
from siap.sharing import Classification, load_policy, parse, releasable_to, release
from siap.sharing.audit import AuditLog, verify_audit_log
from siap.sharing.policy import builtin_policies
from siap.sharing.signing import NodeIdentity, TrustStore

GOOD = {
    "policy": "test",
    "label_policy": "SIAP",
    "partners": {
        "JPN": {
            "clearance": "SECRET",
            "track_label": "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA",
            "sensors": {"j1": {"label": "SIAP//CONFIDENTIAL//REL TO JPN, USA", "share_plots": False}},
        },
        "USA": {
            "clearance": "TOP SECRET",
            "authorisations": ["ORCON"],
            "track_label": "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA",
            "sensors": {"u1": {"label": "SIAP//SECRET//REL TO USA//ORCON", "share_plots": True}},
        },
        "AUS": {
            "clearance": "CONFIDENTIAL",
            "track_label": "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA",
            "sensors": {"a1": {"label": "SIAP//RESTRICTED", "share_plots": True}},
        },
    },
}


def write(tmp_path, data, name="p.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_builtin_pacific_policy():
    assert "pacific" in builtin_policies()
    pol = load_policy("pacific")
    assert pol.partners == ("AUS", "JPN", "USA")
    for sid in pol.sensors:
        assert pol.owner(sid) in pol.partners
        assert pol.releasable(pol.sensor_label(sid), pol.owner(sid))
    # at least one sensor's data is not releasable to every partner
    restricted = [s for s in pol.sensors if not all(pol.releasable(pol.sensor_label(s), p) for p in pol.partners)]
    assert restricted
    # and its tracks inherit the restriction
    s = restricted[0]
    need = pol.required_track_label(pol.owner(s), [s])
    assert not all(pol.releasable(need, p) for p in pol.partners)


def test_queries_on_a_policy_file(tmp_path):
    pol = load_policy(write(tmp_path, GOOD))
    assert pol.partners == ("AUS", "JPN", "USA")
    assert pol.owner("u1") == "USA" and pol.owner_or_none("zz") is None
    assert pol.sensor_label("j1") == parse("SIAP//CONFIDENTIAL//REL TO JPN, USA")
    assert pol.share_plots("u1") and not pol.share_plots("j1")
    assert pol.clearance("AUS") is Classification.CONFIDENTIAL
    assert pol.required_track_label("JPN", ["j1", "u1"]).format() == "SIAP//SECRET//REL TO USA//ORCON"
    assert pol.required_track_label("", ["a1"]).format() == "SIAP//RESTRICTED"
    with pytest.raises(KeyError, match="zz"):
        pol.sensor_label("zz")
    with pytest.raises(KeyError, match="KOR"):
        pol.releasable_mask(np.array(["SIAP//RESTRICTED"]), "KOR")


def test_releasable_mask_known_answer(tmp_path):
    pol = load_policy(write(tmp_path, GOOD))
    labels = np.array(
        [
            "SIAP//CONFIDENTIAL//REL TO JPN, USA",
            "SIAP//SECRET//REL TO USA//ORCON",
            "SIAP//RESTRICTED",
            "",
            "garbage",
            "NATO//RESTRICTED",
            "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA",
        ],
        dtype="U64",
    )
    for _ in range(2):  # second round answered from the per-(label, partner) cache
        assert pol.releasable_mask(labels, "AUS").tolist() == [False, False, True, False, False, False, True]
        assert pol.releasable_mask(labels, "USA").tolist() == [True, True, True, False, False, False, True]
        assert pol.releasable_mask(labels, "JPN").tolist() == [True, False, True, False, False, False, True]
    assert pol.releasable_mask(labels[::-1].reshape(7, 1), "AUS")[:, 0].tolist() == [True, False, False, False, True, False, False]
    assert pol.releasable_mask(labels[:0], "JPN").shape == (0,)


CANDIDATES = [
    "SIAP//CONFIDENTIAL//REL TO JPN, USA",
    "SIAP//SECRET//REL TO USA//ORCON",
    "SIAP//SECRET//REL TO AUS, USA",
    "SIAP//RESTRICTED",
    "SIAP//TOP SECRET",
    "SIAP//UNCLASSIFIED//JPN ONLY",
    "SIAP//CONFIDENTIAL//REL TO NONE",
    "",
    "not a label",
]


@settings(max_examples=50)
@given(st.lists(st.sampled_from(CANDIDATES), max_size=60), st.sampled_from(["AUS", "JPN", "USA"]))
def test_releasable_mask_matches_row_by_row_reference(tmp_path_factory, rows, partner):
    pol = load_policy(write(tmp_path_factory.mktemp("p"), GOOD))
    labels = np.array(rows, dtype="U64")
    spec = GOOD["partners"][partner]
    expected = []
    for text in rows:
        try:
            expected.append(releasable_to(parse(text), partner, spec["clearance"], spec.get("authorisations", ())))
        except ValueError:
            expected.append(False)
    assert pol.releasable_mask(labels, partner).tolist() == expected


def test_release_filters_rows_and_is_audited(tmp_path):
    pol = load_policy(write(tmp_path, GOOD))
    tracks = empty_tracks(4)
    tracks["track_id"] = [10, 11, 12, 13]
    tracks["time_s"] = [5.0, 6.0, 7.0, 8.0]
    tracks["label"] = ["SIAP//RESTRICTED", "SIAP//CONFIDENTIAL//REL TO JPN, USA", "", "SIAP//RESTRICTED"]
    log = AuditLog(tmp_path / "audit.log", NodeIdentity.generate("AUS-node", "AUS"), "run-1")
    out = release(tracks, "AUS", pol, audit=log, time_s=9.0)
    assert out["track_id"].tolist() == [10, 13]
    out_jpn = release(tracks, "JPN", pol, audit=log, time_s=9.5)
    assert out_jpn["track_id"].tolist() == [10, 11, 13]
    log.close()
    lines = (tmp_path / "audit.log").read_text().splitlines()
    e0 = yaml.safe_load(lines[0])
    assert e0["kind"] == "release" and e0["details"]["partner"] == "AUS"
    assert e0["details"]["released"] == {"SIAP//RESTRICTED": [10, 13]}
    assert e0["details"]["n_withheld"] == 2 and e0["details"]["data_time_s"] == [5.0, 8.0]
    trust = TrustStore([log.identity])
    assert verify_audit_log(tmp_path / "audit.log", trust, node="AUS-node", run_id="run-1", heads=[log.head()]).ok


def test_release_withholds_raw_plots_of_unshareable_sensors(tmp_path):
    pol = load_policy(write(tmp_path, GOOD))
    plots = empty_plots(3)
    plots["sensor_id"] = ["j1", "u1", "a1"]
    plots["partner"] = ["JPN", "USA", "AUS"]
    plots["label"] = ["SIAP//CONFIDENTIAL//REL TO JPN, USA", "SIAP//SECRET//REL TO USA//ORCON", "SIAP//RESTRICTED"]
    assert release(plots, "USA", pol)["sensor_id"].tolist() == ["u1", "a1"]  # j1 plots never leave JPN
    assert release(plots, "JPN", pol)["sensor_id"].tolist() == ["j1", "a1"]  # JPN keeps its own


def _bad(data):
    d = yaml.safe_load(yaml.safe_dump(GOOD))
    data(d)
    return d


@pytest.mark.parametrize(
    "mutate, fragment",
    [
        (lambda d: d.update(extra=1), "extra: expected no such field"),
        (lambda d: d["partners"]["JPN"].update(clerance="SECRET"), "partners.JPN.clerance: expected no such field"),
        (lambda d: d["partners"]["JPN"].update(clearance="SECRETISH"), "partners.JPN.clearance: expected a classification: one of UNCLASSIFIED, RESTRICTED, CONFIDENTIAL, SECRET, TOP SECRET (got 'SECRETISH')"),
        (lambda d: d["partners"].update(XYZ=d["partners"]["JPN"]), "partners: expected ISO 3166-1 alpha-3 partner codes such as JPN (got 'XYZ')"),
        (lambda d: d["partners"]["JPN"]["sensors"]["j1"].update(label="SIAP//CONFIDENTIAL//REL TO JPN,,USA"), "partners.JPN.sensors.j1.label: expected a valid label"),
        (lambda d: d["partners"]["JPN"]["sensors"]["j1"].update(share_plots="maybe"), "partners.JPN.sensors.j1.share_plots: expected"),
        (lambda d: d["partners"]["USA"]["sensors"].update(j1={"label": "SIAP//RESTRICTED"}), "partners.USA.sensors.j1: expected a sensor id unique"),
        (lambda d: d["partners"]["AUS"]["sensors"]["a1"].update(label="SIAP//SECRET"), "partners.AUS.sensors.a1.label: expected a label releasable to its owner AUS"),
        (lambda d: d["partners"]["AUS"].update(track_label="NATO//RESTRICTED"), "partners.AUS.track_label: expected policy identifier SIAP (got NATO)"),
        (lambda d: d["partners"]["AUS"].pop("track_label"), "partners.AUS.track_label: expected a value"),
        (lambda d: d["partners"]["AUS"]["sensors"].update({"x" * 17: {"label": "SIAP//RESTRICTED"}}), "partners.AUS.sensors.xxxxxxxxxxxxxxxxx.[key]: expected"),
        (lambda d: d.update(partners={}), "partners: expected at least one partner"),
    ],
)
def test_bad_policy_file_one_line_error(tmp_path, mutate, fragment):
    path = write(tmp_path, _bad(mutate))
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: ")
    assert fragment in msg, msg


def test_bad_policy_sources(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: \(file\): expected a readable policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="line 2: expected valid YAML"):
        load_policy(write(tmp_path, "partners: [\n"))
    with pytest.raises(ConfigError, match=r"\(top level\): expected a mapping"):
        load_policy(write(tmp_path, "- 1\n"))
    with pytest.raises(ConfigError, match="built-in policy name"):
        load_policy("atlantis")


def test_split_sources_and_source_labels(tmp_path):
    from siap.sharing.policy import split_sources

    assert split_sources("j1,u1") == ["j1", "u1"]
    assert split_sources("j1,u1,...") == ["j1", "u1"]
    assert split_sources("JPN:12,USA:7+") == ["JPN:12", "USA:7"]
    assert split_sources("") == []
    pol = load_policy(write(tmp_path, GOOD))
    assert pol.source_label("JPN:12") == ("JPN", parse("SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"))
    assert pol.source_label("u1") == ("USA", parse("SIAP//SECRET//REL TO USA//ORCON"))
    assert pol.required_track_label("", "JPN:1,u1,...").format() == "SIAP//SECRET//REL TO USA//ORCON"
    for bad in ("KOR:1", "JPN:", "zz", "JPN:1a"):
        with pytest.raises(KeyError):
            pol.source_label(bad)


def test_pacific_policy_covers_exactly_the_pacific_scenario_sensors():
    from importlib import resources

    scenario = yaml.safe_load((resources.files("siap.scenario") / "builtin" / "pacific.yaml").read_text())
    pol = load_policy("pacific")
    in_scenario = {(s["id"], s["partner"]) for s in scenario["sensors"]}
    assert in_scenario == {(sid, pol.owner(sid)) for sid in pol.sensors}
    assert set(pol.partners) == {p["id"] for p in scenario["partners"]}
    # the East China Sea radars are the ones AUS may not see
    hidden_from_aus = {s for s in pol.sensors if not pol.releasable(pol.sensor_label(s), "AUS")}
    assert hidden_from_aus == {"JPN-GR-GOTO", "JPN-GR-MIYAKO"}
