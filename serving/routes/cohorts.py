"""``POST /v1/cohorts/attribution``: sibling histories in, the CONTRACTS cohort answer out.

The fit runs :func:`ml.cohort.document.attribute` — the same numpy/scipy code as
``fadecast attribute`` — in a worker thread (a cohort takes up to ~1 s of CPU), so the event
loop keeps answering other requests. No model needs to be loaded: the cohort law's prior is a
small JSON file read once.
"""
from __future__ import annotations

import asyncio
import re
from functools import lru_cache

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from data_registry.errors import FadecastError
from serving.cohort_schemas import CohortAttributionRequest, CohortAttributionResponse
from serving.errors import ServiceError
from serving.history import frame_from_rows
from serving.json_route import FastJSONRoute
from serving.responses import FastJSONResponse
from serving.schemas import ErrorBody

router = APIRouter(prefix="/v1", tags=["cohorts"], route_class=FastJSONRoute)
ERRORS = {413: {"model": ErrorBody}, 422: {"model": ErrorBody}}


@lru_cache(maxsize=1)
def _prior():
    from ml.cohort.prior import load_prior

    return load_prior()


def _field(exc: FadecastError) -> str | None:
    """The request field an error from ``ml.cohort`` points at (``cells.1.history.4.x``, the
    dotted style of the request-validation errors)."""
    where = exc.file or ""
    m = re.match(r"^(cells|plans)\[(\d+)\]", where)
    if not m:
        return exc.column
    inner = "history" if m.group(1) == "cells" else "schedule"
    path = f"{m.group(1)}.{m.group(2)}"
    if exc.row is not None and exc.row >= 2 and exc.column not in (None, "cell_id"):
        return f"{path}.{inner}.{exc.row - 2}.{exc.column}"
    return f"{path}.{exc.column}" if exc.column else path


@router.post("/cohorts/attribution", response_model=CohortAttributionResponse,
             responses=ERRORS, summary="split sibling cells' fade into time and cycle parts")
async def post_cohort_attribution(body: CohortAttributionRequest) -> JSONResponse:
    from ml.cohort.document import CellInput, PlanInput, attribute

    cells = [CellInput(c.cell_id, frame_from_rows(c.history), f"cells[{i}]",
                       c.nominal_capacity_ah) for i, c in enumerate(body.cells)]
    plans = [PlanInput(p.name, frame_from_rows_plan(p.schedule), f"plans[{i}]")
             for i, p in enumerate(body.plans)]
    cohort = body.cohort
    try:
        doc = await asyncio.to_thread(
            attribute, cells, plans, cohort_name=cohort.name if cohort else None,
            nominal_capacity_ah=cohort.nominal_capacity_ah if cohort else None,
            horizon_cycles=body.horizon_cycles, prior=_prior(), plan_clock=body.plan_clock)
    except FadecastError as exc:
        text = exc.message
        if exc.expected is not None or exc.found is not None:
            text += f" (expected {exc.expected}, found {exc.found})"
        raise ServiceError(text, code=exc.code, http_status=422, column=_field(exc)) from exc
    return FastJSONResponse(doc)


def frame_from_rows_plan(rows):
    """Plan rows → DataFrame with the plan columns that at least one row carries."""
    import numpy as np
    import pandas as pd

    names = ("cycle_index", "test_time_second", "cycle_duration_second", "rest_second",
             "c_rate", "temperature_celsius")
    data = {}
    for n in names:
        values = [getattr(r, n) for r in rows]
        if n in ("cycle_index", "test_time_second") or any(v is not None for v in values):
            data[n] = np.array([np.nan if v is None else v for v in values], dtype=float)
    return pd.DataFrame(data)
