"""User and item side features through a scikit-learn preprocessing pipeline, fitted on training rows.

``data.features`` configures it per side and per column::

    features:
      user: {age: numeric, gender: onehot, occupation: onehot, zip: {kind: onehot, prefix: 1}}
      item: {year: numeric, genres: multihot}
      min_variance: 0.0            # VarianceThreshold after encoding (0: drop constant columns only)
      mutual_info_k: null          # keep the k columns most informative of the training degree

Kinds: ``numeric`` (median imputation, standardisation), ``onehot`` (most-frequent imputation,
one-hot; categories unseen in the training rows encode as all zeros and are counted), ``ordinal``
(unseen: -1, counted), ``hashing`` (``n_features`` buckets, no vocabulary), ``multihot`` (a
``|``-separated set, one column per value seen in training). ``prefix: n`` keeps the first n
characters of a categorical value (ZIP-code regions); ``min_count: n`` (onehot) groups the categories
seen in fewer than n training rows, and unseen ones, into one ``<col>=infrequent_sklearn`` column.

The pipeline is fitted on the rows of the users / items that have training interactions only, so no
statistic of a held-out (cold-start) user or item leaks into the features; every row is then
transformed. Tables come from the dataset's files (``feature_tables``; ``ml-100k``: ``u.user`` age,
gender, occupation, zip; ``u.item`` year, genres; UniSRec releases such as ``amazon-scientific``:
items' title, categories (the whole path), brand; RecBole atomic folders (``recbole:<name>``): every
field of ``<name>.user`` / ``<name>.item``, ``token_seq`` fields as ``|``-joined sets).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.sources.recbole_atomic import read_recbole_atomic, read_recbole_tables
from graphrec_lab.data.sources.unisrec import read_unisrec_item_fields, unisrec_prefix

if TYPE_CHECKING:  # pandas is imported where a table is read or built (it is slow to import)
    import pandas as pd

KINDS = ("numeric", "onehot", "ordinal", "hashing", "multihot")


class FeatureConfigError(ValueError):
    """A ``data.features`` entry names an unknown column or kind."""


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    kind: str
    prefix: int | None = None
    n_features: int = 16
    min_count: int = 1  # onehot: categories with fewer training rows share one "infrequent" column

    @classmethod
    def parse(cls, side: str, name: str, value: Any, available: list[str]) -> ColumnSpec:
        key = f"data.features.{side}.{name}"
        if name not in available:
            raise FeatureConfigError(f"{key}: unknown column {name!r}; the {side} table has {available}")
        opts = {"kind": value} if isinstance(value, str) else dict(value or {})
        kind = opts.pop("kind", None)
        if kind not in KINDS:
            raise FeatureConfigError(f"{key}.kind={kind!r}: expected one of {KINDS}")
        unknown = sorted(set(opts) - {"prefix", "n_features", "min_count"})
        if unknown:
            raise FeatureConfigError(f"{key}: unknown options {unknown} (prefix, n_features, min_count)")
        if "min_count" in opts and kind != "onehot":
            raise FeatureConfigError(f"{key}.min_count: only kind=onehot groups rare categories")
        return cls(name, kind, opts.get("prefix"), int(opts.get("n_features", 16)), int(opts.get("min_count", 1)))


@dataclass
class SideFeatures:
    """``values`` [N, F] float32 for every row; ``names`` the F output columns; ``unseen`` the count of
    non-training rows per column whose category the training rows never showed."""

    values: Tensor
    names: list[str]
    unseen: dict[str, int] = field(default_factory=dict)


class BuiltFeatures(dict):
    """``{side: SideFeatures}`` with the ``save`` / ``load`` of the processed-data cache
    (``data.cache.load_or_build_entry``): the features are cached beside the processed graph."""

    def save(self, path: str | Path) -> None:
        torch.save({side: {"values": f.values, "names": f.names, "unseen": f.unseen} for side, f in self.items()}, path)

    @classmethod
    def load(cls, path: str | Path) -> BuiltFeatures:
        raw = torch.load(path, map_location="cpu", weights_only=True)
        return cls({side: SideFeatures(d["values"], list(d["names"]), dict(d["unseen"])) for side, d in raw.items()})


def _categorical(frame: pd.DataFrame, spec: ColumnSpec) -> pd.Series:
    col = frame[spec.name].astype("string")
    return col.str.slice(0, spec.prefix) if spec.prefix else col


def build_features(table: pd.DataFrame, specs: list[ColumnSpec], train_rows: np.ndarray, side: str,
                   min_variance: float = 0.0, mutual_info_k: int | None = None,
                   train_degree: np.ndarray | None = None) -> SideFeatures:  # fmt: skip
    """Fit the configured transformers on ``table.iloc[train_rows]`` and transform every row.

    ``table``: one row per dense id (``len(table)`` = number of users or items)."""
    import pandas as pd
    from sklearn.feature_extraction import FeatureHasher
    from sklearn.feature_selection import VarianceThreshold
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MultiLabelBinarizer, OneHotEncoder, OrdinalEncoder, StandardScaler

    if len(train_rows) == 0:
        raise FeatureConfigError(f"data.features.{side}: no {side} has training interactions to fit on")
    blocks, names, unseen = [], [], {}
    train_mask = np.zeros(len(table), dtype=bool)
    train_mask[train_rows] = True
    for spec in specs:
        if spec.kind == "numeric":
            x = pd.to_numeric(table[spec.name], errors="coerce").to_numpy(dtype=float).reshape(-1, 1)
            if np.isnan(x[train_mask]).all():
                raise FeatureConfigError(f"data.features.{side}.{spec.name}: no training row has a numeric value to fit on")
            imputer = SimpleImputer(strategy="median").fit(x[train_mask])
            scaler = StandardScaler().fit(imputer.transform(x[train_mask]))
            blocks.append(scaler.transform(imputer.transform(x)))
            names.append(spec.name)
            continue
        if spec.kind == "multihot":
            sets = [set() if pd.isna(v) else {s for s in str(v).split("|") if s} for v in table[spec.name]]
            mlb = MultiLabelBinarizer().fit([sets[i] for i in np.flatnonzero(train_mask)])
            known = set(mlb.classes_)
            unseen[spec.name] = int(sum(bool(s - known) for s, t in zip(sets, train_mask) if not t))
            blocks.append(mlb.transform([s & known for s in sets]).astype(float))
            names += [f"{spec.name}={c}" for c in mlb.classes_]
            continue
        values = _categorical(table, spec).fillna("<missing>").to_numpy(dtype=object).reshape(-1, 1)
        if spec.kind == "hashing":
            hasher = FeatureHasher(n_features=spec.n_features, input_type="string", alternate_sign=False)
            blocks.append(hasher.transform([[str(v)] for v in values[:, 0]]).toarray())
            names += [f"{spec.name}#{k}" for k in range(spec.n_features)]
            continue
        seen = set(values[train_mask, 0])
        unseen[spec.name] = int(sum(v not in seen for v in values[~train_mask, 0]))
        if spec.kind == "onehot":
            # min_count > 1: scikit-learn groups categories seen fewer times in training, and unseen
            # ones, into one infrequent column; without it unseen categories encode as zeros.
            min_frequency = spec.min_count if spec.min_count > 1 else None
            enc = OneHotEncoder(min_frequency=min_frequency, handle_unknown="infrequent_if_exist", sparse_output=False)
            enc.fit(values[train_mask])
            blocks.append(enc.transform(values))
            names += [f"{spec.name}={n.split('_', 1)[1]}" for n in enc.get_feature_names_out(["x"])]
        else:  # ordinal
            enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(values[train_mask])
            blocks.append(enc.transform(values))
            names.append(spec.name)
    matrix = np.concatenate(blocks, axis=1)
    selector = VarianceThreshold(min_variance).fit(matrix[train_mask])
    keep = selector.get_support()
    if not keep.any():
        raise FeatureConfigError(f"data.features.{side}: every column is constant on the training rows (min_variance={min_variance})")
    if mutual_info_k is not None and int(keep.sum()) > mutual_info_k:
        # Supervised selection needs a target every recommender has: the row's training degree
        # (log1p), i.e. which attributes tell popular items / active users apart. Fitted on the
        # training rows only, like everything above.
        from sklearn.feature_selection import SelectKBest, mutual_info_regression

        if train_degree is None:
            raise FeatureConfigError(f"data.features.mutual_info_k: no training degrees were given for the {side} side")
        score = functools.partial(mutual_info_regression, random_state=0)
        kept = np.flatnonzero(keep)
        best = SelectKBest(score, k=mutual_info_k).fit(matrix[train_mask][:, kept], np.log1p(train_degree[train_mask]))
        keep = np.zeros_like(keep)
        keep[kept[best.get_support()]] = True
    return SideFeatures(torch.from_numpy(matrix[:, keep]).float(), [n for n, k in zip(names, keep) if k], unseen)


def read_ml100k_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """``u.user`` and ``u.item`` as tables indexed by raw id (strings): user age, gender, occupation,
    zip; item year, genres (``|``-joined names)."""
    import pandas as pd

    folder = Path(folder)
    users = pd.read_csv(folder / "u.user", sep="|", header=None, names=["id", "age", "gender", "occupation", "zip"],
                        dtype=str, encoding="latin-1")  # fmt: skip
    genre_names = [line.rpartition("|")[0] for line in (folder / "u.genre").read_text(encoding="latin-1").splitlines() if line]
    items = pd.read_csv(folder / "u.item", sep="|", header=None, dtype=str, encoding="latin-1",
                        names=["id", "title", "release_date", "video_date", "url", *genre_names])  # fmt: skip
    flags = items[genre_names].to_numpy() == "1"
    table = pd.DataFrame({
        "id": items["id"], "year": items["release_date"].str[-4:],
        "genres": ["|".join(g for g, f in zip(genre_names, row) if f) for row in flags],
    })  # fmt: skip
    return {"user": users.set_index("id"), "item": table.set_index("id")}


def feature_tables(source: DatasetSource, folder: str | Path) -> dict[str, pd.DataFrame]:
    """The side-feature tables of a dataset, indexed by raw id: ml-100k's ``u.user`` / ``u.item``
    (``read_ml100k_tables``), or the item fields of a UniSRec release (``amazon-scientific``: title,
    categories as one path string, brand). Other sources have none: a ``ValueError`` names
    ``data.features``."""
    import pandas as pd

    if source.name == "ml-100k":
        return read_ml100k_tables(folder)
    prefix = unisrec_prefix(source)
    if prefix is not None:
        fields = read_unisrec_item_fields(folder, prefix)
        return {"item": pd.DataFrame.from_dict(fields, orient="index", dtype="string")}
    reader = source.reader
    if reader is read_recbole_atomic or (isinstance(reader, functools.partial) and reader.func is read_recbole_atomic):
        keywords = reader.keywords if isinstance(reader, functools.partial) else {}
        tables = read_recbole_tables(folder, keywords.get("dataset"), keywords.get("user_field", "user_id"), keywords.get("item_field", "item_id"))
        if tables:
            return tables
    raise ValueError(
        f"data.features: dataset {source.name!r} has no side-feature tables (supported: ml-100k, UniSRec releases, "
        "RecBole atomic folders with .user / .item files)"
    )


def side_features(spec: dict[str, Any], tables: dict[str, pd.DataFrame], tokens: dict[str, list[str]],
                  train_rows: dict[str, np.ndarray]) -> dict[str, SideFeatures]:  # fmt: skip
    """The configured sides' features, rows in dense-id order (``tokens[side][dense id]`` = raw id).
    ``train_rows[side]``: the dense ids of the training interactions' endpoints (repeats give the
    training degree ``mutual_info_k`` selects by; unique ids are enough without it)."""
    spec = dict(spec or {})
    min_variance = float(spec.pop("min_variance", 0.0))
    mutual_info_k = spec.pop("mutual_info_k", None)
    if mutual_info_k is not None and (not isinstance(mutual_info_k, int) or mutual_info_k < 1):
        raise FeatureConfigError(f"data.features.mutual_info_k={mutual_info_k!r}: expected a positive integer or null")
    unknown = sorted(set(spec) - {"user", "item"})
    if unknown:
        raise FeatureConfigError(f"data.features: unknown keys {unknown} (user, item, min_variance, mutual_info_k)")
    out = {}
    for side, columns in spec.items():
        if not columns:
            continue
        if side not in tables:
            raise FeatureConfigError(f"data.features.{side}: this dataset has no {side} table (it has: {sorted(tables)})")
        table = tables[side].reindex(tokens[side])  # ids without a row: all missing
        specs = [ColumnSpec.parse(side, name, value, list(table.columns)) for name, value in columns.items()]
        rows, counts = np.unique(np.asarray(train_rows[side]), return_counts=True)
        degree = np.zeros(len(table))
        degree[rows] = counts
        out[side] = build_features(table.reset_index(drop=True), specs, rows, side, min_variance, mutual_info_k, degree)
    return out
