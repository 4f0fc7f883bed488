"""The paper's published numbers, read from the files that ship them (``resources/paper/``).

``rider_moe_published.csv`` holds Tables 1-5, one row per (table, dataset, row), with the digits as printed;
``rider_moe_published_cost.csv`` holds Table 6 and the Appendix D counts. Both start with ``#`` comment lines
that say where every number comes from. Values are kept as the printed strings (``"86.40"`` stays two decimals)
beside their float value, so a table can show the paper's cell exactly as published.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import pandas as pd

from rider.report.layout import PAPER_DATASETS

ID_COLUMNS: Final = ("table", "dataset", "key", "label")
VALUE_COLUMNS: Final = ("acc7", "acc2", "f1", "mae", "corr", "noise_acc2", "noise_corr", "missing_acc2",
                        "missing_corr", "conflict_acc2", "conflict_corr")
COST_COLUMNS: Final = ("train_samples", "batch_size", "steps_per_epoch", "epochs", "total_steps", "view_forwards",
                       "single_view_forwards", "step_time_multiplier", "parameters", "fp32_mib", "fp16_mib",
                       "train_state_mib")


def _read(path: str | os.PathLike, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    frame = pd.read_csv(path, comment="#", dtype=str, keep_default_na=False)
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; have {list(frame.columns)}")
    unknown = sorted(set(frame["dataset"]) - set(PAPER_DATASETS))
    if unknown:
        raise ValueError(f"{path}: unknown dataset(s) {unknown}; expected {list(PAPER_DATASETS)}")
    return frame


def _check_number(path: Path, where: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{path}: {where} = {text!r} is not a number") from None


def load_published(path: str | os.PathLike) -> pd.DataFrame:
    """Tables 1-5 as a tidy frame: table (int), dataset, key, label, column, printed (str), value (float).

    Empty cells (a column the table does not have) are left out.

    Raises:
        ValueError: a missing column, an unknown dataset, a duplicated row or a cell that is not a number; the
            message names the file and the cell.
    """
    path = Path(path)
    wide = _read(path, ID_COLUMNS + VALUE_COLUMNS)
    duplicated = wide.duplicated(["table", "dataset", "key"])
    if duplicated.any():
        first = wide[duplicated].iloc[0]
        raise ValueError(f"{path}: row {first['key']!r} of table {first['table']} ({first['dataset']}) appears twice")
    records = []
    for _, row in wide.iterrows():
        for column in VALUE_COLUMNS:
            printed = row[column].strip()
            if printed:
                where = f"table {row['table']}, {row['dataset']}, {row['key']}, {column}"
                records.append({"table": int(row["table"]), "dataset": row["dataset"], "key": row["key"],
                                "label": row["label"], "column": column, "printed": printed,
                                "value": _check_number(path, where, printed)})
    return pd.DataFrame.from_records(records, columns=["table", "dataset", "key", "label", "column", "printed",
                                                       "value"])


def load_published_cost(path: str | os.PathLike) -> pd.DataFrame:
    """Table 6 and Appendix D as a tidy frame: dataset, column, printed (str), value (float)."""
    path = Path(path)
    wide = _read(path, ("dataset",) + COST_COLUMNS)
    records = [{"dataset": row["dataset"], "column": column, "printed": row[column].strip(),
                "value": _check_number(path, f"{row['dataset']}, {column}", row[column].strip())}
               for _, row in wide.iterrows() for column in COST_COLUMNS]
    return pd.DataFrame.from_records(records, columns=["dataset", "column", "printed", "value"])


def published_rows(published: pd.DataFrame, table: int, dataset: str) -> list[tuple[str, str, dict]]:
    """The rows of one published table for one dataset, in the paper's order: (key, label, {column: printed})."""
    part = published[(published["table"] == table) & (published["dataset"] == dataset)]
    rows: dict[str, tuple[str, dict]] = {}
    for _, cell in part.iterrows():
        rows.setdefault(cell["key"], (cell["label"], {}))[1][cell["column"]] = cell["printed"]
    return [(key, label, cells) for key, (label, cells) in rows.items()]
