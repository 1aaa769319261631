"""News recommendation data: MIND-format impressions, their splits, batches and the click graph.

Modules by job: ``types`` (``Impressions``, ``NewsData``), ``build`` (``build_news_data``, the split),
``batching`` (training samples and evaluation batches), ``datamodule`` (``NewsDataModule``).

An *impression* is one page view: a user (with the click history logged before the period), a time,
and the articles shown, each labelled clicked (1) or skipped (0). ``NewsData`` holds every
impression of a dataset in CSR form per split, the articles' text and the ids, built from MIND files
(``graphrec_lab.data.sources.mind``) or from the synthetic generator
(``graphrec_lab.data.synthetic_news``) by one function, ``build_news_data``.

Splits (the MIND protocol):

* ``split="files"`` (MIND-small, MIND-large with its dev set): the training file's impressions are
  training data except those on its last ``val_days`` day(s), which are the validation set (as the
  MIND paper carves its development set out of the training week); the second file (MIND's dev
  set) is the test set.
* ``split="time"`` (one file: the sample, synthetic data): the last ``test_days`` day(s) are the
  test set, the ``val_days`` day(s) before them the validation set, the rest training data.

Articles referenced in ``behaviors.tsv`` but absent from ``news.tsv`` (or present with empty text)
are counted (``meta["news_referenced_without_row"]``, ``meta["news_referenced_without_text"]``,
logged as a warning) and handled by ``data.text.missing``: ``drop_items`` removes them from every
history and impression (impressions left without candidates go too, all counted); ``empty`` /
``placeholder`` keep them with an empty / placeholder text; ``error`` stops.

The click graph (what graph models propagate over, and what ``load_graph`` returns for the rest of
the framework) has an edge for every (user, article) in a training or validation impression's
history, and every click of a training impression. Validation clicks are held out (they select the
model) and test-file histories are left out by default: in MIND they cover the training week, and so
the validation labels.
"""

from graphrec_lab.data.news.batching import ImpressionBatch, ImpressionEvalSet, ImpressionTrainBatches, sample_without_replacement
from graphrec_lab.data.news.build import SplitConfig, build_news_data
from graphrec_lab.data.news.datamodule import NewsDataModule
from graphrec_lab.data.news.types import Impressions, NewsData

__all__ = [
    "ImpressionBatch", "ImpressionEvalSet", "ImpressionTrainBatches", "Impressions", "NewsData", "NewsDataModule",
    "SplitConfig", "build_news_data", "sample_without_replacement",
]
