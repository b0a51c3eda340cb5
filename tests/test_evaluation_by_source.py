"""The per-source table of `fadecast evaluate`: "in training" read from the card, figures
picked from the suites' rows (hand-built results)."""
from __future__ import annotations

from types import SimpleNamespace

from ml.evaluation.by_source import card_sources, format_source_table, seen_label, source_rows

CARD = SimpleNamespace(training_domain={"sources": ["synthetic", "pybamm-dev",
                                                    "severson-train"]},
                       training_data=[{"source": "severson-qdlin-train"}])


def _rows(values: dict) -> list[dict]:
    return [{"figure": f, "values": v} for f, v in values.items()]


def test_seen_is_read_from_the_card():
    assert card_sources(CARD) == {"synthetic", "pybamm-dev", "severson-train",
                                  "severson-qdlin-train"}
    seen = card_sources(CARD)
    assert seen_label("pybamm-dev", seen) == "yes"
    assert seen_label("geslin2024", seen) == "no"
    assert seen_label("severson-test1", seen) == \
        "sibling (severson-qdlin-train, severson-train)"


def test_rows_put_model_and_naive_side_by_side():
    results = [
        {"suite": "geslin2024", "cells": ["a", "b"], "figures": _rows({
            "capacity_error_pct_of_reference": {"model": 0.9, "naive_sqrt": 1.5},
            "coverage_90_pct": {"model": 91.0, "naive_sqrt": 88.0},
            "interval_width_90_pct_of_reference": {"model": 3.5, "naive_sqrt": 4.25},
            "eol_error_pct": {"model": 10.0, "naive_sqrt": 12.0},
            "eol_interval_cells": {"model": 2},
            "eol_coverage_90_pct": {"model": 50.0}})},
        {"suite": "severson", "cells": ["c"], "figures": _rows({
            "cycles_to_80pct_mape_pct@100": {"model": 29.0, "naive_sqrt": 355.0},
            "cycles_to_80pct_mape_pct@100_qdlin": {"model": 11.6},
            "cycles_to_80pct_mape_pct@300": {"model": 10.4, "naive_sqrt": 273.0}})}]
    cohort = {"suite": "pybamm-cohorts", "cells": [], "figures": _rows({"law_error": {}})}
    rows = source_rows(results + [cohort], CARD)
    assert len(rows) == 2  # a non-trajectory suite gets no row
    assert rows[0] == {"source": "geslin2024", "in_training": "no", "cells": 2,
                       "model_capacity_error_pct": 0.9, "naive_capacity_error_pct": 1.5,
                       "model_eol_error_pct": 10.0, "naive_eol_error_pct": 12.0,
                       "model_coverage_90_pct": 91.0, "naive_coverage_90_pct": 88.0,
                       "model_width_90_pct": 3.5, "naive_width_90_pct": 4.25,
                       "model_time_share_error_median": None,
                       "naive_time_share_error_median": None,
                       "model_time_share_error_p90": None, "naive_time_share_error_p90": None,
                       "model_eol_coverage_90_pct": 50.0, "eol_interval_cells": 2}
    assert rows[1]["source"] == "severson-test1" and rows[1]["model_eol_error_pct"] == 29.0
    assert rows[1]["model_eol_error_pct_with_delta_q"] == 11.6
    assert (rows[1]["model_eol_error_pct_from_300"], rows[1]["naive_eol_error_pct_from_300"]) \
        == (10.4, 273.0)
    text = format_source_table(rows)
    assert "geslin2024" in text and "0.900" in text and "sibling" in text
    assert "width90 % model" in text and "4.250" in text and "EOL cover90 % model" in text
    # without a model card nothing is claimed about training data
    assert source_rows(results, None)[0]["in_training"] == "-"


def test_in_domain_figures_come_along_when_a_model_judged_its_domain():
    res = {"suite": "nasa-pcoe", "cells": ["a", "b", "c"], "figures": _rows({
        "capacity_error_pct_of_reference": {"model": 11.9, "naive_sqrt": 9.3},
        "cells_in_domain": {"model": 1, "naive_sqrt": 1},
        "capacity_error_pct_in_domain": {"model": 2.26, "naive_sqrt": 2.36},
        "coverage_90_pct_in_domain": {"model": 84.4, "naive_sqrt": 80.0}})}
    row = source_rows([res], CARD)[0]
    assert (row["cells_in_domain"], row["model_capacity_error_pct_in_domain"],
            row["naive_capacity_error_pct_in_domain"], row["model_coverage_90_pct_in_domain"]) \
        == (1, 2.26, 2.36, 84.4)
    assert "cells in domain" in format_source_table([row])
