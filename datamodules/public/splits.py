"""Fixed, versioned splits for the public datasets.

A split file ``datamodules/public/splits/<name>.json`` is committed with the repository, so every user
of a dataset trains, selects and tests on the same cases::

    {"name": "dsb2018", "version": 1,
     "rule": "how the lists were made (one sentence)",
     "fractions": [0.7, 0.15, 0.15],            # the hash rule's shares for cases the file does not list
     "splits": {"train": [...], "val": [...], "test": [...]}}

:func:`resolve_split` applies it to the case ids a root actually holds:

- a listed case that is present goes to its listed split;
- a listed case that is absent is dropped, with one warning that says how many are missing (a root
  holding part of a dataset — a subset, an older release — still works);
- a present case the file does not list goes to the split the publisher's layout gives it (e.g. a
  ``test_img/`` folder) when the adapter knows one, else to the split of the **hash rule**: the first
  8 hex digits of ``sha256("<name>/<case id>")`` as a share in [0, 1), cut by ``fractions`` — the same
  answer on every machine, independent of which other cases are present; a warning says how many;
- the split's identity (:class:`SplitInfo`: ``name@vN``, the SHA-256 of the sorted ``split<TAB>case``
  lines actually used, and the counts) goes into ``metrics.json`` (``split``), and compare.py refuses
  to pool runs whose split hashes differ.

:func:`stratified_carve` is the documented rule the committed files were made with
(``scripts/make_splits.py``): a seeded cut of each stratum (e.g. image size × modality) by the
fractions, so every split holds every stratum in proportion.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from common.names import SPLITS

SPLIT_DIR = Path(__file__).resolve().parent / "splits"
_SHOWN = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SplitSpec:
    """A committed split file (module docstring). ``splits`` maps split → listed case ids."""

    name: str
    version: int
    rule: str
    fractions: tuple[float, float, float]
    splits: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str, folder: Path = SPLIT_DIR) -> "SplitSpec":
        path = folder / f"{name}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            known = sorted(p.stem for p in folder.glob("*.json"))
            raise ValueError(f"split={name!r}: no committed split file {path}; known splits: {known}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "split") -> "SplitSpec":
        fractions = tuple(float(f) for f in data.get("fractions", (0.7, 0.15, 0.15)))
        if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(f"{where}: fractions must be three shares (train, val, test) summing to 1, got {fractions}")
        splits = {split: [str(case) for case in data.get("splits", {}).get(split, [])] for split in SPLITS}
        unknown = sorted(set(data.get("splits", {})) - set(SPLITS))
        if unknown:
            raise ValueError(f"{where}: unknown split names {unknown}; expected {list(SPLITS)}")
        seen: dict[str, str] = {}
        doubled = []
        for split in SPLITS:
            for case in splits[split]:
                if case in seen:
                    doubled.append(f"{case} ({seen[case]}, {split})")
                seen[case] = split
        if doubled:
            raise ValueError(f"{where}: cases listed in two splits: {doubled[:_SHOWN]}")
        return cls(name=str(data["name"]), version=int(data.get("version", 1)), rule=str(data.get("rule", "")),
                   fractions=fractions, splits=splits)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "rule": self.rule, "fractions": list(self.fractions),
                "splits": {split: sorted(self.splits.get(split, [])) for split in SPLITS}}


@dataclass(frozen=True)
class SplitInfo:
    """What a run used: ``name`` (``<file>@v<version>``), ``hash`` of the used assignment, per-split counts,
    and how many listed cases were missing / unlisted cases were assigned by rule."""

    name: str
    hash: str
    counts: dict[str, int]
    missing: int = 0
    unlisted: int = 0

    def record(self) -> dict[str, Any]:
        """The ``split`` field of ``metrics.json``."""
        return {"name": self.name, "hash": self.hash, "counts": dict(self.counts), "missing": self.missing,
                "unlisted": self.unlisted}


def hash_rule(name: str, case: str, fractions: Sequence[float]) -> str:
    """The split of an unlisted ``case``: a share from ``sha256("<name>/<case>")`` cut by ``fractions``."""
    share = int(hashlib.sha256(f"{name}/{case}".encode()).hexdigest()[:8], 16) / 16**8
    edge = 0.0
    for split, fraction in zip(SPLITS, fractions):
        edge += fraction
        if share < edge:
            return split
    return SPLITS[-1]


def split_hash(assignment: Mapping[str, Sequence[str]]) -> str:
    """SHA-256 of the sorted ``split<TAB>case`` lines of ``assignment``."""
    lines = sorted(f"{split}\t{case}" for split in SPLITS for case in assignment.get(split, ()))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def resolve_split(spec: SplitSpec, present: Sequence[str], source: str,
                  publisher: Mapping[str, str] | None = None) -> tuple[dict[str, list[str]], SplitInfo]:
    """Apply ``spec`` to the ``present`` case ids (module docstring); ``publisher`` maps an unlisted case id
    to the split its published layout gives it. Returns the sorted ids per split and the :class:`SplitInfo`.
    Raises ``ValueError`` naming the empty splits when a split would be empty."""
    present_set = set(present)
    if len(present_set) != len(present):
        doubled = sorted({case for case in present if list(present).count(case) > 1})
        raise ValueError(f"{source}: case ids occur twice: {doubled[:_SHOWN]}")
    listed = {case: split for split in SPLITS for case in spec.splits.get(split, ())}
    used: dict[str, list[str]] = {split: [] for split in SPLITS}
    missing = sorted(case for case in listed if case not in present_set)
    by_rule: list[str] = []
    for case in sorted(present_set):
        if case in listed:
            used[listed[case]].append(case)
        elif publisher is not None and case in publisher:
            used[publisher[case]].append(case)
        else:
            used[hash_rule(spec.name, case, spec.fractions)].append(case)
            by_rule.append(case)
    if missing:
        log.warning("%s: %d of %d cases listed in split %s@v%d are not under the root (e.g. %s); the split is "
                    "intersected with what is present", source, len(missing), len(listed), spec.name, spec.version,
                    ", ".join(missing[:_SHOWN]))
    if by_rule:
        log.warning("%s: %d case(s) are not listed in split %s@v%d (e.g. %s); they were assigned by the hash rule "
                    "(fractions %s)", source, len(by_rule), spec.name, spec.version, ", ".join(by_rule[:_SHOWN]),
                    list(spec.fractions))
    empty = [split for split in SPLITS if not used[split]]
    if empty:
        raise ValueError(f"{source}: split {spec.name}@v{spec.version} leaves {empty} empty with the "
                         f"{len(present_set)} case(s) under the root ({len(missing)} listed case(s) missing); "
                         "point root at a fuller copy of the dataset")
    info = SplitInfo(name=f"{spec.name}@v{spec.version}", hash=split_hash(used),
                     counts={split: len(used[split]) for split in SPLITS}, missing=len(missing), unlisted=len(by_rule))
    return used, info


def stratified_carve(cases: Sequence[str], strata: Mapping[str, Hashable], fractions: Sequence[float],
                     seed: int) -> dict[str, list[str]]:
    """A seeded cut of every stratum by ``fractions`` (largest remainder), so each split holds each stratum
    in proportion; a stratum of n cases gives val and test at least one case each once n >= 3."""
    groups: dict[Hashable, list[str]] = defaultdict(list)
    for case in sorted(cases):
        groups[strata[case]].append(case)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {split: [] for split in SPLITS}
    for key in sorted(groups, key=repr):
        members = [groups[key][k] for k in rng.permutation(len(groups[key]))]
        n = len(members)
        exact = np.asarray(fractions, dtype=float) * n
        counts = np.floor(exact).astype(int)
        for k in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
            counts[k] += 1
        if n >= 3:
            for k in (1, 2):
                if counts[k] == 0 and fractions[k] > 0:
                    counts[k] += 1
                    counts[0] -= 1
        start = 0
        for split, count in zip(SPLITS, counts):
            out[split].extend(members[start:start + count])
            start += count
    return {split: sorted(out[split]) for split in SPLITS}
