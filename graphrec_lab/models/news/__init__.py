"""News recommenders on MIND-format impressions: NRMS-style (text), graph-enhanced NRMS, popularity."""

from graphrec_lab.models.news.base import AdditiveAttention, NewsRecommender, NewsTextInput
from graphrec_lab.models.news.graph_nrms import GNNS, GraphNRMS, co_click_matrix
from graphrec_lab.models.news.nrms import NRMS, NewsEncoder, UserEncoder
from graphrec_lab.models.news.popularity import NewsPopularity

__all__ = [
    "AdditiveAttention", "GNNS", "GraphNRMS", "NRMS", "NewsEncoder", "NewsPopularity", "NewsRecommender",
    "NewsTextInput", "UserEncoder", "co_click_matrix",
]
