"""Committed splits: intersection with what a root holds, the hash rule, the split hash, the carve rule."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from datamodules.public.splits import SPLIT_DIR, SplitSpec, hash_rule, resolve_split, split_hash, stratified_carve

SPEC = SplitSpec.from_dict({"name": "toy", "version": 2, "rule": "test", "fractions": [0.6, 0.2, 0.2],
                            "splits": {"train": ["a", "b", "c"], "val": ["d"], "test": ["e"]}})


def test_listed_cases_go_to_their_split_and_the_record_names_the_version():
    used, info = resolve_split(SPEC, ["a", "b", "c", "d", "e"], "toy")
    assert used == {"train": ["a", "b", "c"], "val": ["d"], "test": ["e"]}
    assert info.name == "toy@v2" and info.counts == {"train": 3, "val": 1, "test": 1}
    assert info.record()["hash"] == split_hash(used) and (info.missing, info.unlisted) == (0, 0)


def test_a_partial_root_is_intersected_with_a_warning_and_changes_the_hash(caplog):
    full = resolve_split(SPEC, ["a", "b", "c", "d", "e"], "toy")[1]
    with caplog.at_level(logging.WARNING):
        used, info = resolve_split(SPEC, ["a", "c", "d", "e"], "toy")
    assert used["train"] == ["a", "c"] and info.missing == 1
    assert "1 of 5 cases listed in split toy@v2 are not under the root" in caplog.text
    assert info.hash != full.hash


def test_unlisted_cases_follow_the_publisher_then_the_hash_rule(caplog):
    with caplog.at_level(logging.WARNING):
        used, info = resolve_split(SPEC, ["a", "b", "c", "d", "e", "x", "y"], "toy", publisher={"x": "test"})
    assert "x" in used["test"]
    assert "y" in used[hash_rule("toy", "y", SPEC.fractions)]
    assert info.unlisted == 1 and "1 case(s) are not listed" in caplog.text


def test_hash_rule_is_stable_and_follows_the_fractions():
    cases = [f"case_{k:05d}" for k in range(20_000)]
    splits = [hash_rule("toy", case, (0.7, 0.15, 0.15)) for case in cases]
    shares = {split: splits.count(split) / len(cases) for split in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.7, abs=0.015) and shares["val"] == pytest.approx(0.15, abs=0.01)
    # Independent of which other cases exist: the same case, the same split, every time.
    assert [hash_rule("toy", case, (0.7, 0.15, 0.15)) for case in cases[:50]] == splits[:50]
    assert hash_rule("dsb2018", "abc", (0.7, 0.15, 0.15)) == hash_rule("dsb2018", "abc", (0.7, 0.15, 0.15))


def test_hash_rule_value_is_pinned_across_machines():
    # sha256("toy/case") starts with these hex digits on every machine: the assignment cannot drift.
    import hashlib
    share = int(hashlib.sha256(b"toy/case").hexdigest()[:8], 16) / 16**8
    expected = "train" if share < 0.7 else "val" if share < 0.85 else "test"
    assert hash_rule("toy", "case", (0.7, 0.15, 0.15)) == expected


def test_an_empty_split_is_an_error_naming_it():
    with pytest.raises(ValueError, match=r"leaves \['val', 'test'\] empty"):
        resolve_split(SPEC, ["a", "b"], "toy")


def test_bad_split_files_are_refused():
    with pytest.raises(ValueError, match="listed in two splits"):
        SplitSpec.from_dict({"name": "x", "splits": {"train": ["a"], "test": ["a"]}})
    with pytest.raises(ValueError, match="fractions"):
        SplitSpec.from_dict({"name": "x", "fractions": [0.5, 0.5, 0.5]})
    with pytest.raises(ValueError, match="unknown split names"):
        SplitSpec.from_dict({"name": "x", "splits": {"training": ["a"]}})
    with pytest.raises(ValueError, match="no committed split file"):
        SplitSpec.load("no_such_dataset")


def test_stratified_carve_keeps_every_stratum_in_proportion_and_is_seeded():
    cases = [f"c{k:03d}" for k in range(300)]
    strata = {case: ("small" if k < 200 else "large", "gray" if k % 3 else "colour") for k, case in enumerate(cases)}
    first = stratified_carve(cases, strata, (0.7, 0.15, 0.15), seed=0)
    assert first == stratified_carve(cases, strata, (0.7, 0.15, 0.15), seed=0)
    assert first != stratified_carve(cases, strata, (0.7, 0.15, 0.15), seed=1)
    assert sorted(sum(first.values(), [])) == cases
    for stratum in set(strata.values()):
        members = [case for case in cases if strata[case] == stratum]
        share = np.mean([case in first["test"] for case in members])
        assert share == pytest.approx(0.15, abs=1.0 / len(members) + 1e-9)


def test_tiny_strata_still_reach_val_and_test():
    cases = ["a", "b", "c"]
    carved = stratified_carve(cases, {c: 0 for c in cases}, (0.8, 0.1, 0.1), seed=0)
    assert [len(carved[s]) for s in ("train", "val", "test")] == [1, 1, 1]


def test_committed_split_files_parse_and_never_list_a_case_twice():
    files = sorted(SPLIT_DIR.glob("*.json"))
    for path in files:
        spec = SplitSpec.load(path.stem)
        assert spec.name and spec.rule, path
        assert json.loads(path.read_text())["splits"], path
