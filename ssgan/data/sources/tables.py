"""A user's table (CSV, or Parquet with pyarrow): feature columns plus a label column, empty or -1 = unlabeled."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ssgan.data.sources.userdata import (
    RowName,
    assemble,
    check_scaling,
    check_test_choice,
    class_keys,
    encode_labels,
    label_keys,
    require_labeled,
)
from ssgan.data.sources.base import ArrayDataset, SourceData
from ssgan.errors import SSGANError


@dataclass(frozen=True)
class RawTable:
    """Column name -> values (strings for CSV, typed for Parquet), and how to name a row in a message."""

    path: Path
    columns: dict[str, np.ndarray]
    line_numbers: np.ndarray | None  # CSV: the file line of each row; None: "row i" (1-based)

    def row_name(self, row: int) -> str:
        if self.line_numbers is not None:
            return f"{self.path}: line {int(self.line_numbers[row])}"
        return f"{self.path}: row {row + 1}"


def read_csv(path: Path) -> RawTable:
    """Header + rows as a string matrix; a row with the wrong number of fields names its line."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as stream:
            reader = csv.reader(stream)
            header = next(reader, None)
            if not header:
                raise SSGANError(f"{path}: is empty; expected a header line naming the columns")
            rows, lines = [], []
            for row in reader:
                if not row or all(not field.strip() for field in row):
                    continue
                if len(row) != len(header):
                    raise SSGANError(
                        f"{path}: line {reader.line_num} has {len(row)} fields but the header has {len(header)}"
                    )
                rows.append(row)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise SSGANError(f"{path}: cannot be read as a UTF-8 CSV file ({error})") from None
    if not rows:
        raise SSGANError(f"{path}: has a header but no data rows")
    names = [name.strip() for name in header]
    matrix = np.array(rows, dtype=str).reshape(len(rows), len(names))
    return RawTable(path, {name: matrix[:, index] for index, name in enumerate(names)}, np.asarray(lines))


def read_parquet(path: Path) -> RawTable:
    """Columns of a Parquet file (needs the optional pyarrow)."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise SSGANError(f"{path}: reading Parquet needs pyarrow (pip install pyarrow), or save the table as CSV") from None
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as error:
        raise SSGANError(f"{path}: cannot be read as Parquet ({error})") from None
    columns = {name: np.asarray(table.column(name).to_pylist(), dtype=object) for name in table.column_names}
    return RawTable(path, columns, None)


def read_table(path: Path) -> RawTable:
    if not path.is_file():
        raise SSGANError(f"{path}: no such file; expected a .csv or .parquet table")
    return read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") else read_csv(path)


def feature_matrix(table: RawTable, names: Sequence[str]) -> np.ndarray:
    """The named columns as float32 (N, F); a non-number or non-finite value names its row and column."""
    columns = []
    for name in names:
        values = table.columns[name]
        try:
            numbers = np.asarray(values, dtype=np.float64)
        except (ValueError, TypeError):
            for row, value in enumerate(values):  # error path only: find the offending cell
                try:
                    float(value)
                except (ValueError, TypeError):
                    shown = "empty" if value is None or str(value).strip() == "" else repr(str(value))
                    raise SSGANError(
                        f"{table.row_name(row)}, column {name!r}: value {shown} is not a number"
                    ) from None
            raise
        bad = ~np.isfinite(numbers)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise SSGANError(
                f"{table.row_name(row)}, column {name!r}: value {numbers[row]} is not finite; expected a number"
            )
        columns.append(numbers)
    return np.stack(columns, axis=1).astype(np.float32)


class TableSource:
    """Rows of a CSV/Parquet table: ``label_column`` (empty or -1 = unlabeled) and numeric feature columns.

    Class names are the distinct label values, sorted (numbers numerically, names alphabetically).
    Features are scaled per column with statistics of the training rows only: ``minmax`` (default, to [0, 1],
    the range of the default generator's sigmoid), ``standard`` (zero mean, unit variance: pair it with
    ``gan.generator.output_activation=identity``) or ``none``.
    """

    def __init__(
        self,
        path: str | Path,
        label_column: str = "label",
        feature_columns: Sequence[str] | None = None,
        test_path: str | Path | None = None,
        test_fraction: float | None = 0.2,
        scaling: str = "minmax",
        split_seed: int = 0,
    ) -> None:
        check_test_choice(test_path, test_fraction)
        self.path = Path(path).expanduser()
        self.label_column = label_column
        self.feature_columns = list(feature_columns) if feature_columns is not None else None
        self.test_path = Path(test_path).expanduser() if test_path is not None else None
        self.test_fraction = test_fraction
        self.scaling = check_scaling(scaling)
        self.split_seed = split_seed

    def features_of(self, table: RawTable) -> list[str]:
        """The feature column names: as configured, or every column but the label."""
        available = list(table.columns)
        if self.label_column not in table.columns:
            raise SSGANError(
                f"{table.path}: has no label column {self.label_column!r} (columns: {', '.join(available)}); "
                "set data.source.label_column"
            )
        names = self.feature_columns or [name for name in available if name != self.label_column]
        unknown = [name for name in names if name not in table.columns]
        if unknown:
            raise SSGANError(f"{table.path}: has no column {unknown[0]!r} (columns: {', '.join(available)})")
        if not names:
            raise SSGANError(f"{table.path}: has no feature columns besides {self.label_column!r}")
        return names

    def load(self) -> SourceData:
        table = read_table(self.path)
        names = self.features_of(table)
        keys, numeric = label_keys(table.columns[self.label_column], table.row_name, self.label_column)
        classes = class_keys(keys, numeric)
        labels = encode_labels(keys, classes, table.row_name, self.label_column)
        inputs = torch.from_numpy(feature_matrix(table, names))
        test = None
        if self.test_path is not None:
            test = self.read_test(names, classes)
        return assemble(inputs, labels, classes, test, self.test_fraction, self.split_seed, self.scaling)

    def read_test(self, names: list[str], classes: list[str]) -> ArrayDataset:
        """The separate test table: same feature columns, every row labeled with a training class."""
        assert self.test_path is not None
        table = read_table(self.test_path)
        missing = [name for name in [*names, self.label_column] if name not in table.columns]
        if missing:
            raise SSGANError(f"{table.path}: has no column {missing[0]!r}; the test table needs the training columns")
        row_name: RowName = table.row_name
        keys, _ = label_keys(table.columns[self.label_column], row_name, self.label_column)
        labels = encode_labels(keys, classes, row_name, self.label_column)
        require_labeled(labels, row_name, self.label_column)
        return ArrayDataset(torch.from_numpy(feature_matrix(table, names)), labels)
