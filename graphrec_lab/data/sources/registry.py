"""Every named dataset source, listed in one place; ``get_source``/``resolve_source`` look names up.

``SOURCES`` maps a dataset name (``data.dataset``) to its ``DatasetSource``: the LightGCN splits
(gowalla, yelp2018, amazon-book), MovieLens-100K, UniSRec's amazon-scientific, the social datasets
(lastfm, hetrec2011-lastfm-2k, yelp-social) and MIND-small (train, dev, sample). Beyond the names,
``resolve_source`` builds sources for ``recbole:<name>`` and ``unisrec:<Prefix>`` folders, and
``resolve_social_source`` also for ``diffnet:<prefix>``. A new dataset is one ``_add`` call here.
"""

from __future__ import annotations

from graphrec_lab.data.errors import UnknownDatasetError
from graphrec_lab.data.sources.base import DatasetSource
from graphrec_lab.data.sources.lightgcn_text import read_lightgcn_text
from graphrec_lab.data.sources.mind import mind_source
from graphrec_lab.data.sources.movielens import read_movielens_100k
from graphrec_lab.data.sources.recbole_atomic import recbole_source
from graphrec_lab.data.sources.social_formats import (
    HETREC_FILES,
    HETREC_LASTFM_URL,
    LASTFM_FILES,
    LIGHTGCN_LASTFM_RAW,
    LIGHTGCN_LASTFM_URL,
    diffnet_source,
    read_hetrec_lastfm,
    read_lastfm_lightgcn,
)
from graphrec_lab.data.sources.unisrec import unisrec_source

SOURCES: dict[str, DatasetSource] = {}


def _add(source: DatasetSource) -> None:
    if source.name in SOURCES:
        raise ValueError(f"dataset source {source.name!r} is listed twice")
    SOURCES[source.name] = source


# ------------------------------------------------------------------------- LightGCN splits, MovieLens
_GOWALLA_RAW = "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/gowalla"
_LIGHTGCN_FILES = ("train.txt", "test.txt", "user_list.txt", "item_list.txt")
_add(DatasetSource(
    name="gowalla",
    dirname="gowalla",
    files=_LIGHTGCN_FILES,
    url="https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/gowalla",
    checksums={
        "train.txt": "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62",
        "test.txt": "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3",
        "user_list.txt": "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1",
        "item_list.txt": "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139",
    },
    downloads=tuple((f"{_GOWALLA_RAW}/{f}", f"file:{f}") for f in _LIGHTGCN_FILES),
    reader=read_lightgcn_text,
))
_add(DatasetSource(
    name="ml-100k",
    dirname="ml-100k",
    files=("u.data", "u.item", "u.user", "u.genre", "u.info"),
    url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    checksums={
        # u.data: sha256 of the original GroupLens file (no header line).
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
    },
    downloads=(("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "zip:ml-100k/"),),
    reader=read_movielens_100k,
))

# The LightGCN paper's other two splits, in gowalla's text format (train.txt/test.txt + id lists).
# No reference copy was checksummed, so no checksums are pinned: present files are read as they are.
for _name, _raw, _url in (
    ("yelp2018", "https://raw.githubusercontent.com/gusye1234/LightGCN-PyTorch/master/data/yelp2018",
     "https://github.com/gusye1234/LightGCN-PyTorch/tree/master/data/yelp2018"),
    ("amazon-book", "https://raw.githubusercontent.com/kuandeng/LightGCN/master/Data/amazon-book",
     "https://github.com/kuandeng/LightGCN/tree/master/Data/amazon-book"),
):  # fmt: skip
    _add(DatasetSource(
        name=_name, dirname=_name, files=_LIGHTGCN_FILES, url=_url, checksums={},
        downloads=tuple((f"{_raw}/{f}", f"file:{f}") for f in _LIGHTGCN_FILES), reader=read_lightgcn_text,
    ))  # fmt: skip
del _name, _raw, _url

# -------------------------------------------------------------------------------- text (UniSRec)
# UniSRec's "Industrial and Scientific" (Amazon 2018), as in $GRAPHREC_DATA_DIR/amazon-scientific.
_add(unisrec_source(
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
))


# ------------------------------------------------------------ social (interactions + user-user ties)
# The sha256 values are those of the reference copies of these releases (each said to be byte-identical to a
# public copy); a download that differs fails verification with a clear error rather than silently
# changing the data.
_add(DatasetSource(
    name="lastfm",
    dirname="lastfm",
    files=LASTFM_FILES,
    url=LIGHTGCN_LASTFM_URL,
    checksums={
        "data1.txt": "c82af3228cbbda2f55a39244de09ed93292894f1d0d9f1908ebb57e27598fded",
        "test1.txt": "de4417c0e6123284ce59a0934bcf5288ec1ec8774a18a1eef453c9952dfa48f9",
        "trustnetwork.txt": "5b5bd7cbe4d22f3cd333dbfc7ec4b995cb2bdb28d95b0e9c5fc5607079f7b69e",
    },
    downloads=tuple((f"{LIGHTGCN_LASTFM_RAW}/{f}", f"file:{f}") for f in LASTFM_FILES),
    reader=read_lastfm_lightgcn,
))
# The shared copy carries a foreign user 1 and two listening rows more than the HetRec readme
# states (92,836 vs 92,834 after dropping user 1). If the GroupLens archive's bytes differ from
# it, verification fails naming the file; the hashes below are of the copy our results use.
_add(DatasetSource(
    name="hetrec2011-lastfm-2k",
    dirname="hetrec2011-lastfm-2k",
    files=HETREC_FILES,
    url=HETREC_LASTFM_URL,
    checksums={
        "user_artists.dat": "487e5df0bb6afb7cda912b96e08c1165e4cd0ad194ae4a1208e383fb1e6c6d7c",
        "user_friends.dat": "1f0250e7cc9e0dd01c6de78d7b7ede402fffc32982a92f2fb4bac9c6e4dece0d",
        "artists.dat": "a6928e7c2272bcb81fa92a4b4adb03ac8d1d6f08b320190ff7c2623f01494403",
    },
    downloads=((HETREC_LASTFM_URL, "zip:"),),
    reader=read_hetrec_lastfm,
))
_add(diffnet_source(
    "yelp",
    dirname="yelp-social",
    name="yelp-social",
    checksums={
        "yelp.train.rating": "2ae26ed59e2724add6b1b657fef02b7b47f33a1c2af8c92450d888259bedce23",
        "yelp.val.rating": "a346ca257268e7048519a3cbdc098c1035db55a86cc13a32a927e2cb7386998a",
        "yelp.test.rating": "d0f70986d197bd460a3127bd3bcef099890e3e2eba3379f3d5b197ebf4d1e9b0",
        "yelp.links": "c8cd9501aa60f8d24562ed61b3be610de0a99c689ddad95470324ef7d594be43",
    },
))

# ----------------------------------------------------------------------------------- news (MIND)
# MIND-small as the release unpacks it; the folder names are the zips' names (a common layout).
_add(mind_source("mind-small-train", "MINDsmall_train", "MINDsmall_train.zip"))
_add(mind_source("mind-small-dev", "MINDsmall_dev", "MINDsmall_dev.zip"))
# $GRAPHREC_DATA_DIR/mind-small-sample: 2,000 articles and 5,000 impressions sampled independently
# from MIND-small (so most referenced articles have no row in news.tsv). No download.
_add(
    mind_source(
        "mind-small-sample", "mind-small-sample",
        checksums={
            "news.tsv": "317a322c7b70518fb91ca08d937d1ec77a8b12fb9e28db5fc90374af16b354bf",
            "behaviors.tsv": "2a101e15ce197ba488abffb91d337bd069823011838de14dacc46a26c91484a5",
        },
    ),
)


def get_source(name: str) -> DatasetSource:
    """The source listed as ``name``; an unknown name raises ``UnknownDatasetError`` (a ``KeyError``)
    listing the known ones and the prefixes for ad-hoc folders."""
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise UnknownDatasetError(
            f"data.dataset={name!r}: unknown dataset; registered: synthetic, {known}. For a folder of "
            f"RecBole atomic files <data_dir>/{name}/{name}.inter use data.dataset=recbole:{name}; for "
            f"UniSRec files <data_dir>/{name}/{name}.* use data.dataset=unisrec:{name}"
        ) from None


def resolve_source(dataset: str) -> DatasetSource:
    """The source of a dataset name: a listed one, ``recbole:<name>`` or ``unisrec:<Prefix>``
    (files ``<Prefix>.*`` in ``<data_dir>/<Prefix>``, as the UniSRec release unpacks)."""
    kind, sep, rest = dataset.partition(":")
    if sep and kind == "recbole":
        return recbole_source(rest)
    if sep and kind == "unisrec":
        return unisrec_source(rest)
    return get_source(dataset)


def resolve_social_source(dataset: str) -> DatasetSource:
    """A listed dataset, ``diffnet:<prefix>`` (files ``<prefix>.*`` in ``<data_dir>/<prefix>``) or
    whatever ``resolve_source`` knows."""
    kind, sep, rest = dataset.partition(":")
    if sep and kind == "diffnet":
        if not rest:
            raise ValueError("data.dataset='diffnet:': give the file prefix, e.g. diffnet:flickr")
        return diffnet_source(rest)
    return resolve_source(dataset)


__all__ = ["SOURCES", "get_source", "resolve_social_source", "resolve_source"]
