from graphrec_lab.evaluation.evaluator import METRICS, FullRankingEvaluator
from graphrec_lab.evaluation.ranking import mask_scores, topk_stable

__all__ = ["METRICS", "FullRankingEvaluator", "mask_scores", "topk_stable"]
