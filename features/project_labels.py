"""Labels for the management-risk model: did the project's next inspection find a problem?

The label for (project, as_of) is 1 when the first project inspection on or after `as_of` and
before `as_of + window_days` found at least one quality defect or safety hazard, 0 when it
found none, and missing when the project was not inspected in the window. It is exactly the
quantity the matrix acts on — the chance that sending an inspector finds something — and it
is dated, so a backtest can line it up with the ground truth of the month inspected.

Caveat the backtest reports, not hides: past inspections were partly targeted (complaints,
accidents, the district's old schedule), so labelled projects are not a random sample.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandas as pd

from features.project_features import active_projects

LABEL_COLUMNS: tuple[str, ...] = (
    "label", "inspection_id", "inspection_date", "known_date", "source",
)


def build_project_labels(
    snapshot: Mapping[str, pd.DataFrame],
    as_of: date | pd.Timestamp | str,
    *,
    window_days: int,
) -> pd.DataFrame:
    """One row per project under construction on `as_of` (index `project_id`, sorted).

    `label` (Int64: 1 problems found, 0 none, <NA> not inspected in the window), with the
    inspection's id, date, source and `known_date` (when its result was recorded: a model
    trained on day T may only use labels known before T). Ties on the same day go to the
    smaller inspection id, so the label does not depend on file order.
    """
    if isinstance(window_days, bool) or not isinstance(window_days, int) or window_days <= 0:
        raise ValueError(
            f"标签窗口必须为正整数天数 / window_days must be a positive whole number of days, "
            f"got {window_days!r}"
        )
    stamp = pd.Timestamp(as_of).normalize()
    index = pd.Index(active_projects(snapshot, stamp)["project_id"].astype(str),
                     name="project_id")
    inspections = snapshot["project_inspections"]
    dates = pd.to_datetime(inspections["inspection_date"]).astype("datetime64[ns]")
    in_window = (dates >= stamp) & (dates < stamp + pd.Timedelta(days=window_days))
    chosen = inspections.loc[in_window.to_numpy(dtype=bool, na_value=False)]
    problems = (
        chosen["defects_found"].astype("Float64").fillna(0)
        + chosen["hazards_found"].astype("Float64").fillna(0)
    )
    frame = pd.DataFrame({
        "project_id": chosen["project_id"].astype(str).to_numpy(),
        "inspection_id": chosen["inspection_id"].astype("string").to_numpy(),
        "inspection_date": dates[in_window.to_numpy(dtype=bool, na_value=False)].to_numpy(),
        "known_date": pd.to_datetime(chosen["known_date"]).astype("datetime64[ns]").to_numpy(),
        "source": chosen["source"].astype("string").to_numpy(),
        "label": (problems > 0).to_numpy(dtype=int, na_value=0),
    })
    first = frame.sort_values(["project_id", "inspection_date", "inspection_id"],
                              kind="stable").groupby("project_id", sort=False).head(1)
    labels = first.set_index("project_id").reindex(index)
    return pd.DataFrame(
        {
            "label": labels["label"].astype("Int64"),
            "inspection_id": labels["inspection_id"].astype("string"),
            "inspection_date": labels["inspection_date"].astype("datetime64[ns]"),
            "known_date": labels["known_date"].astype("datetime64[ns]"),
            "source": labels["source"].astype("string"),
        },
        index=index,
    )
