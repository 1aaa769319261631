"""Dataset sources and readers: real files in, ``RawInteractions`` out.

``get_source("gowalla").load(data_dir)`` checks (or downloads) and verifies the files, then reads
them. ``recbole_source(name)`` wraps any folder of RecBole atomic files, ``unisrec_source(prefix)``
any dataset of the UniSRec release; ``resolve_source`` maps a dataset name (registered,
``recbole:<name>`` or ``unisrec:<Prefix>``) to its source.
"""

from graphrec_lab.data.sources.base import (
    SOURCES,
    DataFormatError,
    DatasetNotFoundError,
    DatasetSource,
    UnknownDatasetError,
    get_source,
)
from graphrec_lab.data.sources.download import ensure_files, file_sha256
from graphrec_lab.data.sources.lightgcn_text import read_lightgcn_text
from graphrec_lab.data.sources.movielens import read_movielens_100k
from graphrec_lab.data.sources.recbole_atomic import read_recbole_atomic, recbole_source
from graphrec_lab.data.sources.unisrec import (
    UNISREC_URL,
    read_unisrec,
    read_unisrec_sequences,
    split_unisrec_text,
    unisrec_source,
)

# UniSRec's "Industrial and Scientific" (Amazon 2018), as in ../shared/datasets/amazon-scientific.
SOURCES["amazon-scientific"] = unisrec_source(
    "Scientific",
    dirname="amazon-scientific",
    name="amazon-scientific",
    checksums={
        "Scientific.train.inter": "7284f6489d956fa20c9b64ffc84569264320edba5c3bc2fcb22db2ea083a1163",
        "Scientific.valid.inter": "5f37c84d3b54617cdc46638c89dfe8741c7efc4987acd5eb64de2cbd4311f46c",
        "Scientific.test.inter": "546da7e5f44002b4518d7fd58066684bc09613f76c240914e16976d57cfe7083",
        "Scientific.item2index": "896ab1017508cf20834d3d0537da9f8f624324223a835af272a98ba16f8c087a",
        "Scientific.user2index": "f0162b1a3a0c6b7e816f86208e7b36f65d6787923126f9558fbc6d368e4c4974",
        "Scientific.text": "95887e6bda76e54f59b71b566320520d5da74e21d3b6ff8f20bfb6e8e84aa831",
    },
)

# The LightGCN paper's other two splits, in gowalla's text format (train.txt/test.txt + id lists).
# Not in ../shared/datasets, so no checksums are pinned: present files are read as they are.
for _name, _raw, _url in (
    ("yelp2018", "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/yelp2018",
     "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/yelp2018"),
    ("amazon-book", "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/amazon-book",
     "https://github.com/kuandeng/LightGCN/tree/master/Data/amazon-book"),
):  # fmt: skip
    _files = ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
    SOURCES.setdefault(_name, DatasetSource(
        name=_name, dirname=_name, files=_files, url=_url, checksums={},
        downloads=tuple((f"{_raw}/{f}", f"file:{f}") for f in _files), reader=read_lightgcn_text,
    ))  # fmt: skip
del _name, _raw, _url, _files

# Social datasets (user-item interactions + user-user ties): lastfm, hetrec2011-lastfm-2k, yelp-social.
from graphrec_lab.data.sources.social_formats import social_sources  # noqa: E402

SOURCES.update(social_sources())
# News (MIND format): mind-small-train, mind-small-dev, mind-small-sample register themselves.
from graphrec_lab.data.sources import mind as _mind  # noqa: E402,F401


def resolve_source(dataset: str) -> DatasetSource:
    """The source of a dataset name: a registered one, ``recbole:<name>`` or ``unisrec:<Prefix>``
    (files ``<Prefix>.*`` in ``<data_dir>/<Prefix>``, as the UniSRec release unpacks)."""
    kind, sep, rest = dataset.partition(":")
    if sep and kind == "recbole":
        return recbole_source(rest)
    if sep and kind == "unisrec":
        return unisrec_source(rest)
    return get_source(dataset)


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
    "resolve_source",
    "split_unisrec_text",
    "unisrec_source",
]
