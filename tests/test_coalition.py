"""Coalition runs: non-interference of releasability, attacks on the bus, conservation of
messages, audit, and the value of the network."""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import siap
from siap.coalition import run_coalition, source_groups, subject_for
from siap.evaluation import evaluate
from siap.pipeline import evaluation_times
from siap.sharing.audit import verify_coalition_audit
from siap.sharing.policy import Policy, load_policy
from siap.sharing.signing import (
    NodeIdentity,
    SignedEnvelope,
    TrustStore,
    decode_batch,
    open_payload,
)
from siap.transport import InProcessBus

DATA = Path(__file__).parent / "data"
SCENARIO = DATA / "coalition_small.yaml"
POLICY = DATA / "coalition_small_policy.yaml"
ORIGIN = (35.0, 135.0, 0.0)
# Non-interference examples: SIAP_NONINTERFERENCE_EXAMPLES=200 make test for a long run.
N_EXAMPLES = int(os.environ.get("SIAP_NONINTERFERENCE_EXAMPLES", "12"))


@lru_cache(maxsize=1)
def _base():
    sc = siap.load_scenario(SCENARIO)
    sim = siap.simulate(sc)
    times = evaluation_times(sim.truth, 5.0)
    return sc, sim, times


def _policy_doc() -> dict:
    return yaml.safe_load(POLICY.read_text())


def _hidden_plots(sc, sensor: dict, seed: int) -> np.ndarray:
    """Plots of one extra sensor over the same targets, simulated on their own."""
    doc = sc.model_dump(mode="json")
    doc["sensors"] = [sensor]
    doc["seed"] = seed
    hidden = siap.simulate(type(sc).model_validate(doc))
    plots = hidden.plots.copy()
    plots["plot_id"] += 10_000_000
    return plots


def _verify_logs(result) -> dict:
    """Every node's log, with the trust store the run wrote (an inspector would pin it), each
    anchored by the heads the other nodes recorded."""
    trust = TrustStore.load(Path(next(iter(result.audit_paths.values()))).parent / "trust.yaml")
    logs = {f"{p}-node": path for p, path in result.audit_paths.items()}
    return verify_coalition_audit(logs, trust, result.run_id)


def _bytes(batch: np.ndarray) -> bytes:
    return np.ascontiguousarray(batch).tobytes()


PARTNERS = ("AUS", "JPN", "USA")


@st.composite
def hidden_cases(draw):
    recipient = draw(st.sampled_from(PARTNERS))
    owner = draw(st.sampled_from([p for p in PARTNERS if p != recipient]))
    form = draw(st.sampled_from(["rel_to", "nation_only", "classification"]))
    if form == "rel_to":
        others = [p for p in PARTNERS if p not in (recipient, owner)]
        extra = draw(st.lists(st.sampled_from(others), unique=True, max_size=len(others)))
        label = "SIAP//CONFIDENTIAL//REL TO " + ", ".join(sorted({owner, *extra}))
    elif form == "nation_only":
        label = f"SIAP//SECRET//{owner} ONLY"
    else:
        label = "SIAP//TOP SECRET//REL TO AUS, JPN, USA"
    kind = draw(st.sampled_from(["ground_radar", "adsb_receiver"]))
    lat = draw(st.floats(34.2, 35.8))
    lon = draw(st.floats(134.2, 135.8))
    if kind == "ground_radar":
        sensor = {
            "id": f"{owner}-HIDDEN", "type": "ground_radar", "partner": owner, "lat_deg": lat, "lon_deg": lon,
            "alt_m": 100.0, "dimension": "3d", "scan_period_s": draw(st.sampled_from([4.0, 5.0, 7.5])),
            "max_range_km": 250.0, "range_sigma_m": 50.0, "azimuth_sigma_deg": 0.1, "elevation_sigma_deg": 0.3,
            "detection": {"pd_at_ref_range": 0.9, "ref_range_km": 200.0, "pfa": 1.0e-6},
            "false_alarms_per_scan": 1.0, "ssr": {"pd": 0.95},
        }
    else:
        sensor = {
            "id": f"{owner}-HIDDEN", "type": "adsb_receiver", "partner": owner, "lat_deg": lat, "lon_deg": lon,
            "alt_m": 20.0, "max_range_km": 300.0, "report_interval_s": 1.0, "jitter_s": 0.2,
            "reception_probability": 0.9,
        }
    seed = draw(st.integers(0, 2**16))
    registration = draw(st.booleans())
    return recipient, owner, label, form, sensor, seed, registration


_T2T_CASE = (  # USA data releasable to JPN but not AUS: JPN-R2's group (audience JPN, USA)
    # may use USA's tracks of it for its registration, JPN-R1's group (audience all) may not
    "AUS",
    "USA",
    "SIAP//CONFIDENTIAL//REL TO JPN, USA",
    "rel_to",
    {
        "id": "USA-HIDDEN", "type": "ground_radar", "partner": "USA", "lat_deg": 35.0, "lon_deg": 135.0,
        "alt_m": 100.0, "dimension": "3d", "scan_period_s": 4.0, "max_range_km": 250.0,
        "range_sigma_m": 50.0, "azimuth_sigma_deg": 0.1, "elevation_sigma_deg": 0.3,
        "detection": {"pd_at_ref_range": 0.9, "ref_range_km": 200.0, "pfa": 1.0e-6},
        "false_alarms_per_scan": 1.0, "ssr": {"pd": 0.95},
    },
    7,
    True,
)


@settings(max_examples=N_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hidden_cases())
@example(_T2T_CASE)
def test_non_interference_data_not_releasable_to_p_leaves_p_picture_identical(case):
    """Adding any sensor whose data is not releasable to P leaves P's picture bit-for-bit equal."""
    recipient, owner, label, form, sensor, seed, registration = case
    sc, sim, times = _base()
    doc = _policy_doc()
    doc["partners"][owner]["sensors"][sensor["id"]] = {"label": label, "share_plots": True}
    if form == "classification":
        doc["partners"][owner]["clearance"] = "TOP SECRET"
    policy = Policy.from_mapping(doc)
    assert not policy.releasable(label, recipient)
    sensor_ids = [*sorted(set(sim.plots["sensor_id"].tolist())), sensor["id"]]
    hidden = _hidden_plots(sc, sensor, seed)
    assert len(hidden) > 0
    with_hidden = np.concatenate([sim.plots, hidden])
    kwargs = dict(origin=ORIGIN, sensor_ids=sensor_ids, centralised=True, registration=registration)
    bus_without, bus_with = RecordingBus(), RecordingBus()
    with _keeping_keys() as keys_without:
        without = run_coalition(sim.plots, policy, times, bus=bus_without, **kwargs)
    with _keeping_keys() as keys_with:
        withh = run_coalition(with_hidden, policy, times, bus=bus_with, **kwargs)
    assert _bytes(without.coalition[recipient]) == _bytes(withh.coalition[recipient])
    assert _bytes(without.centralised[recipient]) == _bytes(withh.centralised[recipient])
    # on the wire: nothing published on P's subject that P may not see, and the content
    # published to P is byte-for-byte what it is without the hidden sensor
    key_with, key_without = keys_with[f"{recipient}-node"], keys_without[f"{recipient}-node"]
    assert _wire_violations(bus_with, policy, recipient, sensor["id"], key_with) == []
    assert _wire_content(bus_with, recipient, key_with) == _wire_content(bus_without, recipient, key_without)
    # and the hidden data did reach the owner: the test is not vacuous
    assert _bytes(without.coalition[owner]) != _bytes(withh.coalition[owner])


class RecordingBus(InProcessBus):
    """The in-process bus, keeping a copy of every (subject, bytes) published: what a broker
    or a tap on P's subject sees."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, bytes]] = []

    def publish(self, subject: str, message: bytes) -> None:
        self.log.append((subject, bytes(message)))
        super().publish(subject, message)


@contextlib.contextmanager
def _keeping_keys():
    """Keep the identities run_coalition makes (node id -> NodeIdentity), so that a test can open
    the envelopes sealed to a partner, as that partner could."""
    made: dict[str, NodeIdentity] = {}
    original = NodeIdentity.generate

    def generate(node_id: str, partner: str) -> NodeIdentity:
        made[node_id] = original(node_id, partner)
        return made[node_id]

    with mock.patch.object(NodeIdentity, "generate", staticmethod(generate)):
        yield made


def _opened(env: SignedEnvelope, key: NodeIdentity) -> bytes:
    assert env.cipher == 1, "every release is sealed"
    return open_payload(env.payload, key.encryption_key, env.fields())


def _wire_violations(bus: RecordingBus, policy: Policy, partner: str, hidden_sensor: str, key: NodeIdentity) -> list[str]:
    """Everything published on ``partner``'s subject that ``partner`` may not see (opened with its
    key, as it could): an envelope label or a row label not releasable to it, a row derived from
    a sensor whose label is not releasable to it or from ``hidden_sensor``, an envelope
    addressed to someone else."""
    found = []
    for subject, data in bus.log:
        if subject != subject_for(partner):
            continue
        env = SignedEnvelope.from_bytes(data)
        if env.recipient != partner or not policy.releasable(env.label, partner):
            found.append(f"envelope {env.origin_node}#{env.seq} to {env.recipient} labelled {env.label}")
        rows = decode_batch(_opened(env, key))
        for label in set(rows["label"].tolist()):
            if not policy.releasable(label, partner):
                found.append(f"row labelled {label} in {env.origin_node}#{env.seq}")
        for text in set(rows["sensors"].tolist()) | set(rows["sources"].tolist()):
            for sid in filter(None, text.replace("+", "").split(",")):
                if sid == hidden_sensor or (sid in policy.sensors and not policy.releasable(policy.sensor_label(sid), partner)):
                    found.append(f"row derived from {sid} in {env.origin_node}#{env.seq}")
    return found


def _wire_content(bus: RecordingBus, partner: str, key: NodeIdentity) -> list[tuple]:
    """What was published to ``partner``, opened, less the signatures (keys are new each run)."""
    out = []
    for subject, data in bus.log:
        if subject == subject_for(partner):
            e = SignedEnvelope.from_bytes(data)
            out.append((e.origin_node, e.recipient, e.seq, e.time_s, e.label, e.kind, _opened(e, key)))
    return out


@pytest.mark.slow
def test_wire_check_catches_a_sender_that_skips_the_release_filter(monkeypatch):
    """Mutant: the sender publishes every local track to every partner. The receiver's verifier
    drops what is not releasable, so the picture check alone cannot see it; the wire check does."""
    import siap.coalition as coalition_mod

    sc, sim, times = _base()
    doc = _policy_doc()
    sensor = {
        "id": "JPN-HIDDEN", "type": "adsb_receiver", "partner": "JPN", "lat_deg": 35.0, "lon_deg": 135.0,
        "alt_m": 20.0, "max_range_km": 300.0, "report_interval_s": 1.0, "jitter_s": 0.2, "reception_probability": 0.9,
    }
    doc["partners"]["JPN"]["sensors"]["JPN-HIDDEN"] = {"label": "SIAP//SECRET//JPN ONLY", "share_plots": True}
    policy = Policy.from_mapping(doc)
    plots = np.concatenate([sim.plots, _hidden_plots(sc, sensor, 1)])
    sensor_ids = [*sorted(set(sim.plots["sensor_id"].tolist())), "JPN-HIDDEN"]
    kwargs = dict(origin=ORIGIN, sensor_ids=sensor_ids, centralised=False)
    honest = RecordingBus()
    with _keeping_keys() as keys:
        reference = run_coalition(plots, policy, times[:12], bus=honest, **kwargs)
    assert _wire_violations(honest, policy, "USA", "JPN-HIDDEN", keys["USA-node"]) == []

    def leaky_release(batch, partner, policy, **kw):
        return batch.copy()  # the mutant: no filter

    # patch the release filter where the sender looks it up (the module of PartnerNode.publish)
    monkeypatch.setitem(coalition_mod.PartnerNode.publish.__globals__, "release", leaky_release)
    leaky = RecordingBus()
    with _keeping_keys() as keys:
        mutant = run_coalition(plots, policy, times[:12], bus=leaky, **kwargs)
    assert _bytes(mutant.coalition["USA"]) == _bytes(reference.coalition["USA"])  # the picture check passes ...
    assert mutant.rejected["USA"].get("not_releasable", 0) > 0
    violations = _wire_violations(leaky, policy, "USA", "JPN-HIDDEN", keys["USA-node"])
    assert violations and any("JPN-HIDDEN" in v or "JPN ONLY" in v for v in violations)  # ... the wire check fails


def test_source_groups_split_by_audience():
    policy = load_policy(POLICY)
    groups = source_groups(policy, ["AUS-ADSB", "JPN-R1", "JPN-R2", "USA-R1"])
    jpn = [g for g in groups if g.partner == "JPN"]
    assert [g.sensor_ids for g in jpn] == [("JPN-R1",), ("JPN-R2",)]
    assert jpn[1].audience == frozenset({"JPN", "USA"})
    assert "REL TO JPN, USA" in jpn[1].label


def test_unknown_sensor_in_policy_is_a_config_error():
    from siap.errors import ConfigError

    with pytest.raises(ConfigError, match="NOPE-1"):
        source_groups(load_policy(POLICY), ["JPN-R1", "NOPE-1"])


def test_network_adds_to_every_partner_and_restricted_data_stays_home(tmp_path):
    sc, sim, times = _base()
    policy = load_policy(POLICY)
    result = run_coalition(sim.plots, policy, times, origin=ORIGIN, audit_dir=tmp_path, centralised=False)
    truth = sim.truth[np.isin(sim.truth["time_s"], times)]
    for p in result.partners:
        own = evaluate(truth, result.own[p]).summary()["siap_completeness"]
        coalition = evaluate(truth, result.coalition[p]).summary()["siap_completeness"]
        assert coalition >= own, p
    # AUS, the ADS-B-only partner, gains most
    aus_own = evaluate(truth, result.own["AUS"]).summary()["siap_completeness"]
    aus_coal = evaluate(truth, result.coalition["AUS"]).summary()["siap_completeness"]
    assert aus_coal > aus_own + 0.1
    # nothing derived from JPN-R2 (REL TO JPN, USA) reaches AUS; every track names its sensors
    aus = result.coalition["AUS"]
    multi_partner = 0
    for row_sources, row_sensors in zip(aus["sources"].tolist(), aus["sensors"].tolist(), strict=True):
        assert "JPN-R2" not in row_sources and "JPN-R2" not in row_sensors
        sensors = row_sensors.split(",")
        assert sensors and all(policy.releasable(policy.sensor_label(s), "AUS") for s in sensors)
        multi_partner += len({policy.owner(s) for s in sensors}) > 1
    assert multi_partner > 0
    # JPN, entitled to JPN-R2, does get its provenance
    assert any("JPN-R2" in s for s in result.coalition["JPN"]["sensors"].tolist())
    for label in np.unique(result.coalition["AUS"]["label"]).tolist():
        assert policy.releasable(label, "AUS")
    # every message published was delivered and accepted; audit chains verify with signatures
    assert result.messages["published"] == result.messages["delivered"] == result.messages["accepted"] > 0
    checks = _verify_logs(result)
    for check in checks.values():
        assert check.ok, check.reason
        assert check.entries > 0 and check.anchored_seq is not None


def _flip_byte(message: bytes, index: int) -> bytes:
    b = bytearray(message)
    b[index % len(b)] ^= 0x40
    return bytes(b)


def test_tampered_messages_are_rejected_counted_and_nothing_else_is_lost(tmp_path):
    sc, sim, times = _base()
    policy = load_policy(POLICY)
    state = {"n": 0, "tampered": 0, "replayed": 0, "kept": {}}

    def attacker(subject: str, message: bytes):
        state["n"] += 1
        n = state["n"]
        if n % 7 == 0:  # flip a payload byte
            state["tampered"] += 1
            return _flip_byte(message, len(message) - 20)
        kept = state["kept"].setdefault(subject, [])
        if n % 11 == 0 and kept:  # replay an earlier genuine message to the same partner instead
            state["replayed"] += 1
            return kept[0]
        kept.append(message)
        return message

    result = run_coalition(sim.plots, policy, times, origin=ORIGIN, audit_dir=tmp_path, centralised=False, tamper=attacker)
    rejected = sum(sum(r.values()) for r in result.rejected.values())
    assert rejected == state["tampered"] + state["replayed"]
    assert result.messages["accepted"] + rejected == state["n"]
    reasons = set().union(*(r.keys() for r in result.rejected.values()))
    assert reasons <= {"altered", "forged", "malformed", "replayed", "expired"}
    assert "replayed" in reasons or "expired" in reasons
    # rejections are audited, and the logs still verify
    assert all(c.ok for c in _verify_logs(result).values())
    n_reject_entries = 0
    for path in result.audit_paths.values():
        n_reject_entries += sum('"kind":"reject"' in line for line in path.read_text().splitlines())
    assert n_reject_entries == rejected


def test_redirected_messages_are_refused_as_misrouted():
    """An attacker redirects every JPN message for USA to AUS: AUS refuses every one of them
    (addressed to USA, whether or not AUS could have seen the label), and AUS's picture is the
    one it has without the attack."""
    sc, sim, times = _base()
    policy = load_policy(POLICY)
    state = {"redirected": 0, "not_for_aus": 0}

    def attacker(subject: str, message: bytes):
        env = SignedEnvelope.from_bytes(message)
        if env.origin_partner == "JPN" and subject == "siap.tracks.USA":
            state["redirected"] += 1
            state["not_for_aus"] += not policy.releasable(env.label, "AUS")
            return [("siap.tracks.AUS", message)]
        return message

    result = run_coalition(sim.plots, policy, times, origin=ORIGIN, centralised=False, tamper=attacker)
    assert state["not_for_aus"] > 0 and state["redirected"] > state["not_for_aus"]
    assert result.rejected["AUS"] == {"misrouted": state["redirected"]}
    clean = run_coalition(sim.plots, policy, times, origin=ORIGIN, centralised=False)
    assert _bytes(result.coalition["AUS"]) == _bytes(clean.coalition["AUS"])


def test_forged_message_from_an_outsider_is_rejected():
    sc, sim, times = _base()
    policy = load_policy(POLICY)
    from siap.sharing.signing import NodeIdentity, Signer

    outsider = Signer(NodeIdentity.generate("USA-node", "USA"), first_seq=10**12)
    injected = {"done": 0}

    def attacker(subject: str, message: bytes):
        if injected["done"]:
            return message
        env = SignedEnvelope.from_bytes(message)
        forged = outsider.sign(env.payload, label=env.label, kind=env.kind, recipient=env.recipient, time_s=env.time_s)
        injected["done"] = 1
        return forged.to_bytes()

    result = run_coalition(sim.plots, policy, times, origin=ORIGIN, centralised=False, tamper=attacker)
    assert sum(r.get("forged", 0) for r in result.rejected.values()) == 1


def test_coalition_audit_log_tampering_is_detected(tmp_path):
    sc, sim, times = _base()
    result = run_coalition(sim.plots[sim.plots["time_s"] < times[4]], load_policy(POLICY), times[:4], origin=ORIGIN, audit_dir=tmp_path, centralised=False)
    path = result.audit_paths["JPN"]
    lines = path.read_text().splitlines()
    assert len(lines) >= 3
    lines[1] = lines[1].replace('"partner":"USA"', '"partner":"AUS"', 1) if '"partner":"USA"' in lines[1] else lines[1].replace("release", "relaese", 1)
    path.write_text("\n".join(lines) + "\n")
    check = _verify_logs(result)["JPN-node"]
    assert not check.ok
    assert check.first_bad_seq == 1


def test_observable_truth_keeps_only_recently_detected_objects():
    from siap import records
    from siap.pipeline import observable_truth

    truth = records.empty_truth(6)
    truth["truth_id"] = [1, 1, 1, 2, 2, 3]
    truth["time_s"] = [100.0, 120.0, 200.0, 100.0, 140.0, 100.0]
    plots = records.empty_plots(3)
    plots["truth_id"] = [1, 2, records.NO_TRUTH]
    plots["time_s"] = [95.0, 125.0, 100.0]
    kept = observable_truth(truth, plots, window_s=30.0)
    # object 1: seen at 95 -> observable at 100 and 120, not 200; object 2: not before its
    # detection at 125, then at 140; object 3 never detected (the false alarm does not count)
    assert list(zip(kept["truth_id"].tolist(), kept["time_s"].tolist(), strict=True)) == [(1, 100.0), (1, 120.0), (2, 140.0)]


@pytest.mark.parametrize("name", ["pacific", "paris-real"])
def test_builtin_policy_declares_exactly_the_builtin_scenario_sensors(name):
    sc = siap.load_scenario(name)
    policy = load_policy(name)
    assert set(policy.sensors) == {s.id for s in sc.sensors}
    for s in sc.sensors:
        assert policy.owner(s.id) == s.partner
    # at least one sensor is not releasable to every partner (the demo shows releasability)
    assert any(not all(policy.releasable(policy.sensor_label(s), p) for p in policy.partners) for s in policy.sensors)


@pytest.mark.slow
def test_non_interference_holds_with_partners_on_their_own_update_periods():
    """The runtime's partners update on different periods (JPN 1 s, USA 2 s, AUS 5 s; no
    lockstep): adding a JPN sensor not releasable to AUS still leaves AUS's picture bit-for-bit
    equal, and USA (entitled) does see a change."""
    sc, sim, times = _base()
    doc = _policy_doc()
    sensor = {
        "id": "JPN-HIDDEN", "type": "ground_radar", "partner": "JPN", "lat_deg": 35.2, "lon_deg": 135.3,
        "alt_m": 100.0, "dimension": "3d", "scan_period_s": 4.0, "max_range_km": 250.0,
        "range_sigma_m": 50.0, "azimuth_sigma_deg": 0.1, "elevation_sigma_deg": 0.3,
        "detection": {"pd_at_ref_range": 0.9, "ref_range_km": 200.0, "pfa": 1.0e-6},
        "false_alarms_per_scan": 1.0, "ssr": {"pd": 0.95},
    }
    doc["partners"]["JPN"]["sensors"][sensor["id"]] = {"label": "SIAP//CONFIDENTIAL//REL TO JPN, USA", "share_plots": True}
    policy = Policy.from_mapping(doc)
    hidden = _hidden_plots(sc, sensor, 11)
    sensor_ids = [*sorted(set(sim.plots["sensor_id"].tolist())), sensor["id"]]
    kwargs = dict(origin=ORIGIN, sensor_ids=sensor_ids, centralised=False,
                  update_period_s={"JPN": 1.0, "USA": 2.0, "AUS": 5.0})
    without = run_coalition(sim.plots, policy, times, **kwargs)
    withh = run_coalition(np.concatenate([sim.plots, hidden]), policy, times, **kwargs)
    assert len(without.coalition["AUS"]) > 0
    assert _bytes(without.coalition["AUS"]) == _bytes(withh.coalition["AUS"])
    assert _bytes(without.coalition["USA"]) != _bytes(withh.coalition["USA"])


def test_releasable_sensor_mask_follows_the_policy():
    from siap.pipeline import releasable_sensor_mask

    _, sim, _ = _base()
    policy = Policy.from_mapping(_policy_doc())
    for partner in PARTNERS:
        mask = releasable_sensor_mask(sim.plots, policy, partner)
        seen = set(np.unique(sim.plots["sensor_id"][mask]).tolist())
        # JPN-R2 is REL TO JPN, USA: not what AUS may know
        assert ("JPN-R2" in seen) == (partner != "AUS")
        assert {"JPN-R1", "USA-R1", "AUS-ADSB"} <= seen
