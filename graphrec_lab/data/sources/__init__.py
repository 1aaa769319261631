"""Dataset sources and readers: real files in, ``RawInteractions`` out.

``get_source("gowalla").load(data_dir)`` checks (or downloads) and verifies the files, then reads
them. ``recbole_source(name)`` wraps any folder of RecBole atomic files.
"""

from graphrec_lab.data.sources.base import (
    SOURCES,
    DataFormatError,
    DatasetNotFoundError,
    DatasetSource,
    get_source,
)
from graphrec_lab.data.sources.download import ensure_files, file_sha256
from graphrec_lab.data.sources.lightgcn_text import read_lightgcn_text
from graphrec_lab.data.sources.movielens import read_movielens_100k
from graphrec_lab.data.sources.recbole_atomic import read_recbole_atomic, recbole_source

__all__ = [
    "SOURCES",
    "DataFormatError",
    "DatasetNotFoundError",
    "DatasetSource",
    "ensure_files",
    "file_sha256",
    "get_source",
    "read_lightgcn_text",
    "read_movielens_100k",
    "read_recbole_atomic",
    "recbole_source",
]
