"""The fairness check: inside one table, the rows may differ in the loss and nothing else.

A table's rows share the model, data, augmentation and budget by construction of the grouping (a key
that follows the command line splits the table). What the grouping cannot see is a setting that comes
with a loss choice: a loss YAML whose default differs from the others' (``cldice`` leaves the
background out where every other loss keeps it) or a config edited between the rows' runs. This
module lists, per table, every setting that differs between rows besides the loss itself:

- **non-loss keys**: every resolved config key that can change the numbers (the grouping's rule: not
  cosmetic, not the seed, not a run path) and is not the loss's;
- **shared loss options**: options of the same name and meaning in many losses
  (:data:`SHARED_LOSS_OPTIONS`: background inclusion, smoothing, reduction, class weights, ...),
  compared wherever a row's loss (or a composite's term) has the option;
- not compared: the loss's own options (``gamma``, ``alpha``, ``terms.*.weight``, ...), the options a
  loss IS (:data:`LOSS_OWN_OPTIONS`), and a loss key that is part of the row's name (a swept
  ``loss.include_background=true,false`` gives rows ``dice include_background=true`` and ``=false``).

The check reads the resolved ``config.yaml``: a default inside a loss class that its YAML does not show
is invisible to it (the loss YAMLs show every default, which tests/losses/test_configs.py enforces).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from common.flatten import flatten
from reporting.collect import Run
from reporting.grouping import ABSENT, Grouping, TableKey, comparable_settings, normalize, show_value

#: Options that mean the same in every loss that takes them: a row that differs in one is not
#: comparable with the others unless the difference is declared (its name, or :data:`LOSS_OWN_OPTIONS`).
SHARED_LOSS_OPTIONS = frozenset({
    "mode", "from_logits", "ignore_index", "reduction", "class_weights", "weight_scheme", "class_weight_beta",
    "include_background", "smooth", "batch", "squared", "log_loss", "label_smoothing",
})

#: Options (paths under ``loss.``) that share a name with a shared option but are what the loss is.
LOSS_OWN_OPTIONS: dict[str, frozenset[str]] = {
    # the class weights are the loss: weighted_ce is ce with data-derived weights
    "weighted_ce": frozenset({"class_weights", "weight_scheme", "class_weight_beta"}),
    # a pseudo-count added to TP, FP, FN and TN (not a Dice ratio's smoothing); MCC pools the batch
    "mcc": frozenset({"smooth", "batch"}),
    # the skeleton ratios' smoothing (Shit et al.: 1): an undecided prediction's soft skeleton is near
    # empty, and a ratio smoothed by 1e-5 would have gradients of order 1e5
    "dice_cldice": frozenset({"terms.cldice.smooth"}),
}


@dataclass(frozen=True)
class Difference:
    """One setting that differs between the rows of one table besides the loss.

    ``values`` maps each row's label to the row's value(s) (``a|b`` when its runs disagree, ``<absent>``
    when the row's config lacks the key); rows whose loss lacks a shared option are left out.
    """

    table: TableKey
    key: str          # a config key (``model.net.encoder_depth``) or a shared loss option (``loss.*.smooth``)
    values: dict[str, str]

    @property
    def warning(self) -> str:
        by_value: dict[str, list[str]] = defaultdict(list)
        for label, value in self.values.items():
            by_value[value].append(f"`{label}`")
        listed = "; ".join(f"{value} in {', '.join(labels)}" for value, labels in sorted(by_value.items()))
        return (f"WARNING {self.table.title}: the rows differ in more than the loss — `{self.key}`: {listed}. "
                "Set it equal for every loss, or make it part of the row's name (sweep it on the command line); "
                "until then these rows compare more than the loss.")

    def as_dict(self) -> dict[str, Any]:
        return {"datamodule": self.table.datamodule, "model": self.table.model, "settings": self.table.settings,
                "key": self.key, "values": dict(self.values)}


def check_fairness(grouping: Grouping) -> list[Difference]:
    """Every undeclared setting that differs between the rows of a table, table by table (module docstring)."""
    row_keys = {k for k, role in grouping.roles.items() if role == "row"}
    out: list[Difference] = []
    for table, rows in grouping.tables.items():
        per_row = {row.label: [_row_settings(r, row_keys) for r in runs if r.config] for row, runs in rows.items()}
        per_row = {label: settings for label, settings in per_row.items() if settings}
        keys = sorted({k for settings in per_row.values() for s in settings for k in s})
        for key in keys:
            values = {label: _shown(frozenset().union(*(s.get(key, _ABSENT) for s in settings)))
                      for label, settings in per_row.items()}
            if key.startswith(_OPTION):  # compared only where the row's loss has the option
                values = {label: v for label, v in values.items() if v != ABSENT}
            if len(set(values.values())) > 1:
                out.append(Difference(table, key, values))
    return out


_OPTION = "loss.*."
_ABSENT = frozenset({ABSENT})


def _row_settings(run: Run, row_keys: set[str]) -> dict[str, frozenset]:
    """The run's comparable settings, each as the set of its values: non-loss keys as they are, shared loss
    options by option name (a composite's terms folded in: ``loss.terms.dice.smooth`` counts as ``smooth``)."""
    settings = {k: frozenset({v}) for k, v in comparable_settings(run).items()
                if not (k == "loss" or k.startswith("loss."))}
    own = LOSS_OWN_OPTIONS.get(run.loss, frozenset())
    options: dict[str, set] = defaultdict(set)
    for key, value in flatten(run.config.get("loss") or {}, "loss").items():
        path = key.removeprefix("loss.")
        option = path.rsplit(".", 1)[-1]
        if option in SHARED_LOSS_OPTIONS and path not in own and key not in row_keys:
            options[option].add(normalize(value))
    settings.update({_OPTION + option: frozenset(found) for option, found in options.items()})
    return settings


def _shown(values: frozenset) -> str:
    """``a|b`` for a row whose runs (or a composite's terms) disagree."""
    return "|".join(sorted(str(v).lower() if isinstance(v, bool) else show_value(v) for v in values))
