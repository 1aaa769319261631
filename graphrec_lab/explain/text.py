"""Token attributions of a text-fused run: which words of an item's text raise s(u, i).

For a model that reads item text features (``text=frozen`` or ``text=lora``, ``feature_mode``
``features``/``sum``/``gated``), the score depends on each item's text through the text encoder,
the model's projection and the graph propagation. Integrated Gradients (Sundararajan et al., ICML
2017) on the encoder's input token embeddings attributes s(u, i) to the tokens of one item's text:
the target item's own text, or the text of one of the user's history items (whose features reach the
user through propagation). The baseline replaces every token but the special ones by the padding
token's embedding; the attributions sum to s(x) - s(baseline) up to the Riemann error of ``steps``
(``completeness``, reported with the result).

``to_html`` writes a page with each token shaded by its attribution (green raises the score, red
lowers it).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from graphrec_lab.inference.run import InferenceError, LoadedRun


@dataclass
class TokenAttribution:
    """Attributions of s(user, item) to the tokens of ``text_item``'s text."""

    user: str
    item: str
    text_item: str
    tokens: list[str]
    weights: list[float]  # one per token, same order
    score: float  # s(u, i) with the text as it is
    baseline_score: float  # s(u, i) with the baseline text
    steps: int

    @property
    def completeness(self) -> float:
        """|sum of attributions - (score - baseline score)|: the integration error."""
        return abs(sum(self.weights) - (self.score - self.baseline_score))

    def top(self, n: int = 10) -> list[tuple[str, float]]:
        order = sorted(range(len(self.tokens)), key=lambda t: -abs(self.weights[t]))
        return [(self.tokens[t], self.weights[t]) for t in order[:n]]


def _text_features(run: LoadedRun):
    text = getattr(run, "text", None)
    node_input = getattr(run.model, "input", None)
    if text is None or node_input is None or getattr(node_input, "item_proj", None) is None:
        raise InferenceError(
            f"{run.model_name}: token attributions need a text-fused run (text=frozen or text=lora with "
            "model.feature_mode features, sum or gated)"
        )
    return text, node_input


def token_attributions(run: LoadedRun, user: str, item: str, text_item: str | None = None, steps: int = 32) -> TokenAttribution:
    """Integrated Gradients of s(user, item) over the tokens of ``text_item``'s text (default: ``item``)."""
    text, node_input = _text_features(run)
    encoder = text.encoder
    u = int(run.user_index([user])[0])
    i = int(run.item_index([item])[0])
    j = int(run.item_index([text_item or item])[0])
    ids = torch.tensor([encoder.tokenize([text.texts[j]])[0]], device=encoder.device)  # [1, L]
    mask = torch.ones_like(ids)
    embed_layer = encoder.model.get_input_embeddings()
    special = set(getattr(encoder.tokenizer, "all_special_ids", []))
    keep = torch.tensor([[t in special for t in ids[0].tolist()]], device=ids.device)  # special tokens stay
    with torch.no_grad():
        x = embed_layer(ids)  # [1, L, E]
        pad = embed_layer(torch.full_like(ids, encoder._pad_id))
        base = torch.where(keep.unsqueeze(-1), x, pad)
    bank = node_input.item_features.detach()
    graph = run.train_graph

    def score(embeds: Tensor) -> Tensor:
        out = encoder.model(inputs_embeds=embeds, attention_mask=mask)
        hidden = (out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]).float()
        pooled = hidden.mean(1) if encoder.pooling == "mean" else hidden[:, 0]
        pooled = F.normalize(pooled, p=2, dim=1) if encoder.normalize else pooled
        row = text._transform(pooled).to(bank.dtype)
        node_input.set_live_features("item", bank.index_copy(0, torch.tensor([j], device=bank.device), row))
        try:
            users, items = run.model(graph)
        finally:
            node_input.set_live_features("item", None)
        return users[u] @ items[i]

    was_training = encoder.model.training
    encoder.model.eval()
    try:
        grads = torch.zeros_like(x)
        for s in range(1, steps + 1):  # right Riemann sum of the path integral
            point = (base + (s / steps) * (x - base)).requires_grad_(True)
            (g,) = torch.autograd.grad(score(point), point)
            grads += g
        with torch.no_grad():
            full, zero = float(score(x)), float(score(base))
    finally:
        encoder.model.train(was_training)
    weights = ((x - base) * grads / steps).sum(-1)[0]
    tokens = encoder.tokenizer.convert_ids_to_tokens(ids[0].tolist())
    return TokenAttribution(user, item, text_item or item, tokens, weights.tolist(), full, zero, steps)


def to_html(attributions: list[TokenAttribution], path: str | Path, title: str = "") -> Path:
    """One section per attribution: the text's tokens shaded by weight (green +, red -)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<body style='font-family: sans-serif; max-width: 60em'>", f"<h2>{html.escape(title)}</h2>"]
    for a in attributions:
        biggest = max((abs(w) for w in a.weights), default=1.0) or 1.0
        parts.append(
            f"<h3>text of {html.escape(a.text_item)}: s({html.escape(a.user)}, {html.escape(a.item)}) = {a.score:.4f} "
            f"(baseline text: {a.baseline_score:.4f}; integration error {a.completeness:.2g})</h3><p>"
        )
        for token, w in zip(a.tokens, a.weights):
            alpha = min(1.0, abs(w) / biggest)
            colour = f"rgba(40,160,70,{alpha:.2f})" if w >= 0 else f"rgba(220,60,60,{alpha:.2f})"
            parts.append(f"<span title='{w:+.4g}' style='background:{colour}; padding:1px 2px; margin:1px'>{html.escape(token)}</span>")
        parts.append("</p>")
    parts.append("</body>")
    path.write_text("\n".join(parts) + "\n")
    return path
