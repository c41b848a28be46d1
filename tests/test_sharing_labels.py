"""Labels: parsing/formatting, releasability, and the lattice laws of combine/dominates."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from siap.sharing.labels import (
    LABEL_MAX_CHARS,
    NATIONS,
    Classification,
    Label,
    combine,
    dominates,
    format_label,
    parse,
    releasable_to,
)

C = Classification
LEVELS = list(Classification)
PARTNERS = ["AUS", "JPN", "USA"]
POOL = ["AUS", "CAN", "GBR", "JPN", "KOR", "NZL", "PHL", "USA"]
NAMED = ["ORCON", "PROPIN", "SIGINT"]


# --- known answers ------------------------------------------------------------------------
def test_parse_known_label():
    lab = parse("SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA")
    assert lab == Label(C.CONFIDENTIAL, frozenset({"AUS", "JPN", "USA"}))
    assert lab.policy == "SIAP"
    assert lab.format() == "SIAP//CONFIDENTIAL//REL TO AUS, JPN, USA"


def test_parse_normalises_order_and_top_secret():
    lab = parse("SIAP//TOP SECRET//ORCON//REL TO USA, JPN//JPN ONLY")
    assert lab.classification is C.TOP_SECRET
    assert lab.rel_to == {"JPN", "USA"} and lab.nation_only == {"JPN"} and lab.restrictive == {"ORCON"}
    assert lab.format() == "SIAP//TOP SECRET//REL TO JPN, USA//JPN ONLY//ORCON"


def test_classification_order_is_the_stanag_order():
    assert [c.text for c in sorted(Classification)] == [
        "UNCLASSIFIED", "RESTRICTED", "CONFIDENTIAL", "SECRET", "TOP SECRET"]


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty label"),
        ("SIAP", "malformed label"),
        ("SIAP//SECRETT", "unknown classification"),
        ("SIAP//secret", "unknown classification"),
        ("SIAP//TOP_SECRET", "unknown classification"),
        ("siap//SECRET", "policy identifier"),
        ("SIAP//SECRET//REL TO JPN,,USA", "malformed REL TO"),
        ("SIAP//SECRET//REL TO JPN USA", "unknown nation code 'JPN USA'"),
        ("SIAP//SECRET//REL TO JPN,USA", "malformed REL TO"),
        ("SIAP//SECRET//REL TO  JPN", "malformed REL TO"),
        ("SIAP//SECRET//REL TO JPN, ", "malformed REL TO"),
        ("SIAP//SECRET//REL TO ", "malformed REL TO"),
        ("SIAP//SECRET//REL TO JPN, JPN", "duplicate JPN"),
        ("SIAP//SECRET//REL TO XXX", "unknown nation code 'XXX'"),
        ("SIAP//SECRET//REL TO jpn", "unknown nation code 'jpn'"),
        ("SIAP//SECRET//REL TO JPN//REL TO USA", "more than one REL TO"),
        ("SIAP//SECRET//QQQ ONLY", "unknown nation code 'QQQ'"),
        ("SIAP//SECRET//JPN ONLY//JPN ONLY", "duplicate"),
        ("SIAP//SECRET//ORCON//ORCON", "duplicate category"),
        ("SIAP//SECRET//", "neither"),
        ("SIAP//SECRET//orcon", "neither"),
        ("SIAP//SECRET//JPN", "neither"),
        ("SIAP//SECRET//REL TO AUS, CAN, GBR, JPN, KOR, NZL, PHL, USA//ORCON", "longer than 64"),
    ],
)
def test_parse_rejects_malformed(text, fragment):
    with pytest.raises(ValueError) as info:
        parse(text)
    assert fragment in str(info.value)


def test_format_refuses_labels_too_long_for_the_record_field():
    lab = Label(C.TOP_SECRET, frozenset(POOL), frozenset({"JPN"}))
    with pytest.raises(ValueError, match="at most 64"):
        lab.format()


def test_label_constructor_is_strict():
    with pytest.raises(ValueError, match="unknown nation"):
        Label(C.SECRET, frozenset({"XYZ"}))
    with pytest.raises(ValueError, match="restrictive category"):
        Label(C.SECRET, restrictive=frozenset({"JPN"}))


def test_nations_are_iso_alpha3():
    assert len(NATIONS) == 249
    assert {"AUS", "JPN", "USA", "KOR", "PHL", "GBR"} <= NATIONS
    assert all(len(n) == 3 and n.isalpha() and n.isupper() for n in NATIONS)


# --- releasability: exhaustive over classifications and REL TO sets -----------------------
@pytest.mark.parametrize("label_cls, clearance", list(itertools.product(LEVELS, LEVELS)))
def test_every_classification_pair(label_cls, clearance):
    lab = Label(label_cls)
    for p in PARTNERS:
        assert releasable_to(lab, p, clearance) is (clearance >= label_cls)
        assert releasable_to(lab, p, clearance.text) is (clearance >= label_cls)
    assert dominates(Label(label_cls), Label(clearance)) is (label_cls >= clearance)


@pytest.mark.parametrize("r", range(len(PARTNERS) + 1))
def test_rel_to_every_subset_of_partners(r):
    for subset in itertools.combinations(PARTNERS, r):
        lab = Label(C.CONFIDENTIAL, frozenset(subset))
        for p in PARTNERS + ["KOR"]:
            assert releasable_to(lab, p, C.SECRET) is (p in subset)
        assert parse(lab.format()) == lab


def test_rel_to_none_and_absent():
    nobody = parse("SIAP//CONFIDENTIAL//REL TO NONE")
    assert nobody.rel_to == frozenset()
    everyone = parse("SIAP//CONFIDENTIAL")
    assert everyone.rel_to is None
    for p in PARTNERS:
        assert not releasable_to(nobody, p, C.TOP_SECRET)
        assert releasable_to(everyone, p, C.CONFIDENTIAL)
        assert not releasable_to(everyone, p, C.RESTRICTED)
    assert dominates(nobody, everyone) and not dominates(everyone, nobody)


def test_nation_only_markings():
    jpn_only = parse("SIAP//SECRET//JPN ONLY")
    assert [p for p in PARTNERS if releasable_to(jpn_only, p, C.SECRET)] == ["JPN"]
    both = parse("SIAP//SECRET//JPN ONLY//USA ONLY")
    assert not any(releasable_to(both, p, C.TOP_SECRET) for p in PARTNERS)
    rel_without_jpn = parse("SIAP//SECRET//REL TO AUS, USA//JPN ONLY")
    assert not any(releasable_to(rel_without_jpn, p, C.TOP_SECRET) for p in PARTNERS)


def test_named_restrictive_category_needs_authorisation():
    lab = parse("SIAP//SECRET//REL TO AUS, USA//ORCON")
    assert not releasable_to(lab, "USA", C.SECRET)
    assert releasable_to(lab, "USA", C.SECRET, authorisations={"ORCON"})
    assert not releasable_to(lab, "JPN", C.SECRET, authorisations={"ORCON"})


def test_combine_known_answer():
    out = combine(["SIAP//SECRET//REL TO JPN, USA", "SIAP//CONFIDENTIAL//REL TO AUS, USA//ORCON", "SIAP//RESTRICTED"])
    assert out.format() == "SIAP//SECRET//REL TO USA//ORCON"
    assert combine(["SIAP//SECRET//REL TO JPN", "SIAP//SECRET//REL TO AUS"]).format() == "SIAP//SECRET//REL TO NONE"


def test_combine_errors_and_policy_mismatch():
    with pytest.raises(ValueError, match="at least one"):
        combine([])
    with pytest.raises(ValueError, match="different policies"):
        combine(["SIAP//SECRET", "NATO//SECRET"])
    assert not dominates("NATO//SECRET", "SIAP//UNCLASSIFIED")


# --- hypothesis: round trip and lattice laws ------------------------------------------------
labels = st.builds(
    Label,
    st.sampled_from(LEVELS),
    st.one_of(st.none(), st.frozensets(st.sampled_from(POOL))),
    st.frozensets(st.sampled_from(POOL), max_size=2),
    st.frozensets(st.sampled_from(NAMED)),
)


@given(labels)
def test_round_trip_label_text_label(lab):
    try:
        text = format_label(lab)
    except ValueError:
        assume(False)
    assert len(text) <= LABEL_MAX_CHARS
    assert parse(text) == lab
    assert format_label(parse(text)) == text


@given(st.sampled_from(LEVELS), st.lists(st.sampled_from(POOL), min_size=1, max_size=6, unique=True), st.randoms())
def test_rel_to_any_order_parses_to_the_same_label(level, nations, rnd):
    shuffled = list(nations)
    rnd.shuffle(shuffled)
    a = parse(f"SIAP//{level.text}//REL TO " + ", ".join(nations))
    b = parse(f"SIAP//{level.text}//REL TO " + ", ".join(shuffled))
    assert a == b and a.rel_to == frozenset(nations)


@given(labels, labels)
def test_combine_commutative(a, b):
    assert combine([a, b]) == combine([b, a])


@given(labels, labels, labels)
def test_combine_associative(a, b, c):
    assert combine([combine([a, b]), c]) == combine([a, combine([b, c])]) == combine([a, b, c])


@given(labels)
def test_combine_idempotent(a):
    assert combine([a, a]) == a == combine([a])


@given(labels, labels, labels)
def test_combine_is_least_upper_bound_and_monotone(a, b, c):
    j = combine([a, b])
    assert dominates(j, a) and dominates(j, b)
    if dominates(c, a) and dominates(c, b):
        assert dominates(c, j)
    if dominates(a, b):
        assert dominates(combine([a, c]), combine([b, c]))
        assert combine([a, b]) == a


@given(labels, labels)
def test_dominates_is_a_partial_order(a, b):
    assert dominates(a, a)
    if dominates(a, b) and dominates(b, a):
        assert a == b


@settings(max_examples=200)
@given(labels, labels, st.sampled_from(POOL), st.sampled_from(LEVELS), st.frozensets(st.sampled_from(NAMED)))
def test_releasability_is_antitone_and_combine_is_conjunction(a, b, partner, clearance, auth):
    ra = releasable_to(a, partner, clearance, auth)
    rb = releasable_to(b, partner, clearance, auth)
    if dominates(a, b) and ra:
        assert rb
    assert releasable_to(combine([a, b]), partner, clearance, auth) is (ra and rb)
    # independent restatement of the rule from the label's parts
    expected = (
        clearance >= a.classification
        and (a.rel_to is None or partner in a.rel_to)
        and a.nation_only <= {partner}
        and a.restrictive <= auth
    )
    assert ra is expected
