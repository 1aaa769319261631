"""Dataset sources and readers: real files in, ``RawInteractions`` out.

``get_source("gowalla").load(data_dir)`` checks (or downloads) and verifies the files, then reads
them. ``registry`` lists every named source; ``recbole_source(name)`` wraps any folder of RecBole
atomic files, ``unisrec_source(prefix)`` any dataset of the UniSRec release; ``resolve_source`` maps a
dataset name (listed, ``recbole:<name>`` or ``unisrec:<Prefix>``) to its source.
"""

from graphrec_lab.data.errors import DataFormatError, DatasetNotFoundError, UnknownDatasetError
from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.sources.download import ensure_files, file_sha256
from graphrec_lab.data.sources.lightgcn_text import read_lightgcn_text
from graphrec_lab.data.sources.movielens import read_movielens_100k
from graphrec_lab.data.sources.recbole_atomic import read_recbole_atomic, recbole_source
from graphrec_lab.data.sources.registry import SOURCES, get_source, resolve_social_source, resolve_source
from graphrec_lab.data.sources.unisrec import (
    UNISREC_URL,
    read_unisrec,
    read_unisrec_sequences,
    split_unisrec_text,
    unisrec_source,
)

__all__ = [
    "SOURCES",
    "UNISREC_URL",
    "UnknownDatasetError",
    "DataFormatError",
    "DatasetNotFoundError",
    "DatasetSource",
    "ensure_files",
    "file_sha256",
    "get_source",
    "read_lightgcn_text",
    "read_movielens_100k",
    "read_recbole_atomic",
    "read_unisrec",
    "read_unisrec_sequences",
    "recbole_source",
    "resolve_social_source",
    "resolve_source",
    "split_unisrec_text",
    "unisrec_source",
]
