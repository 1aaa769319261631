"""A synthetic news platform in the MIND format, where text, popularity and collaborative signal
each carry part of what users click, so the value of each kind of model can be shown on a laptop.

Generative story (deterministic by ``seed``):

* **Topics** (``num_topics`` of the built-in vocabularies, e.g. sports, finance, health): every
  article has one topic; its title and abstract are drawn mostly from that topic's words, the rest
  from a shared pool of generic news words. The text therefore reveals the topic, nothing else.
* **Articles** are published on a day (``history_days`` days before the logged period for the
  articles of users' histories, then ``new_per_day`` per logged day) and stay on the front page for
  ``lifetime_days``. Each has a latent appeal ``a_i ~ N(0, 1)`` (popularity) and a hidden community
  ``c_i`` (one of ``communities``: think regional or partisan interest); neither is visible in its
  text.
* **Users** have a topic preference ``theta_u ~ Dirichlet(topic_concentration)`` and a hidden
  community ``c_u``. The utility of article ``i`` for user ``u`` is

      s(u, i) = topic_weight * log(theta_u[t_i] + 0.01) + popularity_weight * a_i
                + collaborative_weight * [c_u == c_i]

  Text-based models can learn the first term (topic from text, preference from the history), only
  click statistics reveal the second, and only the click graph the third (users of a community
  click the same articles).
* **Histories**: ``history_size`` clicks per user (Poisson) among the history articles, drawn with
  probability proportional to ``exp(s)`` (Gumbel top-k).
* **Impressions**: on each of the ``days`` logged days a user has Poisson(``impressions_per_day``)
  impressions, each showing ``candidates`` articles alive that day that the user has not clicked yet
  (history or earlier impressions), sampled with probability proportional to
  ``exp(exposure_bias * a_i)``. Each shown article is clicked with probability
  ``sigmoid(s + noise - click_threshold)`` (noise ``~ N(0, click_noise)``); an impression without a
  click gets one on its highest ``s + noise`` (every MIND impression has a click).

The result is a ``(NewsTable, BehaviorsTable)`` pair, as ``graphrec_lab.data.sources.mind`` reads
from files; ``write_mind_folder`` writes it as ``news.tsv`` + ``behaviors.tsv``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from graphrec_lab.data.sources.mind import TIME_FORMAT, BehaviorsTable, NewsTable

# A vocabulary per topic: (category, subcategory names, words).
TOPICS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("sports", ("football", "basketball", "tennis"), (
        "game", "team", "coach", "season", "score", "championship", "league", "player", "goal", "victory",
        "playoff", "stadium", "tournament", "injury", "quarterback", "match", "defeat", "title", "fans", "draft")),
    ("finance", ("markets", "economy", "companies"), (
        "stocks", "market", "investors", "shares", "earnings", "bank", "interest", "rates", "inflation", "economy",
        "trade", "profit", "revenue", "dollar", "bonds", "recession", "quarter", "growth", "prices", "fund")),
    ("health", ("medical", "fitness", "nutrition"), (
        "doctors", "patients", "hospital", "disease", "vaccine", "study", "treatment", "cancer", "heart", "diet",
        "exercise", "sleep", "symptoms", "virus", "health", "medicine", "therapy", "nurses", "clinic", "weight")),
    ("politics", ("elections", "congress", "policy"), (
        "president", "senate", "election", "vote", "campaign", "congress", "governor", "democrats", "republicans", "policy",
        "law", "bill", "debate", "candidate", "impeachment", "white", "house", "voters", "officials", "party")),
    ("technology", ("gadgets", "software", "science"), (
        "phone", "apple", "google", "software", "app", "computer", "internet", "robot", "data", "privacy",
        "startup", "chip", "laptop", "artificial", "intelligence", "update", "devices", "online", "hackers", "code")),
    ("food", ("recipes", "restaurants", "drinks"), (
        "recipe", "chicken", "dinner", "restaurant", "chef", "pizza", "cake", "cheese", "wine", "coffee",
        "kitchen", "dessert", "soup", "pasta", "breakfast", "menu", "baking", "sauce", "flavor", "meal")),
    ("travel", ("destinations", "airlines", "hotels"), (
        "travel", "flight", "airport", "hotel", "beach", "island", "vacation", "trip", "tourists", "cruise",
        "city", "mountains", "passport", "airline", "resort", "journey", "destination", "museum", "tour", "road")),
    ("autos", ("cars", "trucks", "racing"), (
        "car", "truck", "engine", "driver", "ford", "tesla", "electric", "suv", "speed", "highway",
        "crash", "recall", "sedan", "horsepower", "racing", "dealership", "mileage", "wheels", "pickup", "brakes")),
    ("weather", ("storms", "climate", "forecast"), (
        "storm", "snow", "rain", "forecast", "hurricane", "winds", "temperatures", "cold", "heat", "flooding",
        "tornado", "climate", "winter", "warning", "degrees", "weekend", "freeze", "wildfire", "drought", "clouds")),
    ("entertainment", ("movies", "music", "tv"), (
        "movie", "film", "actor", "actress", "star", "music", "album", "singer", "concert", "show",
        "series", "netflix", "hollywood", "premiere", "trailer", "award", "celebrity", "band", "episode", "director")),
    ("lifestyle", ("home", "family", "fashion"), (
        "home", "family", "kids", "parents", "wedding", "fashion", "style", "garden", "holiday", "gifts",
        "shopping", "decor", "dog", "pets", "beauty", "relationship", "christmas", "thanksgiving", "clothes", "house")),
    ("crime", ("police", "courts", "investigations"), (
        "police", "arrest", "suspect", "shooting", "court", "judge", "trial", "murder", "investigation", "sheriff",
        "charged", "prison", "jury", "victim", "robbery", "officers", "sentence", "fbi", "lawsuit", "guilty")),
)
GENERIC_WORDS = (
    "new", "says", "after", "year", "first", "report", "people", "week", "could", "best", "world", "local", "why",
    "how", "what", "today", "big", "time", "news", "latest", "more", "over", "still", "major", "top", "years",
    "former", "announces", "reveals", "plans", "ahead", "this", "next", "here", "look", "inside", "may", "back",
)
# Bump when the generator's output changes for the same arguments (it is part of cache keys).
GENERATOR_VERSION = 3
PERIOD_START = datetime(2019, 11, 9, tzinfo=timezone.utc)  # MIND-small's logging week starts in November 2019


def _sentence(rng: np.random.Generator, topic_words: tuple[str, ...], n: int, topic_share: float) -> str:
    words = [
        topic_words[rng.integers(len(topic_words))] if rng.random() < topic_share else GENERIC_WORDS[rng.integers(len(GENERIC_WORDS))]
        for _ in range(n)
    ]
    return " ".join(words).capitalize()


def generate_synthetic_news(
    num_users: int = 1000,
    num_topics: int = 10,
    days: int = 6,
    history_days: int = 7,
    history_news_per_day: int = 60,
    new_per_day: int = 150,
    lifetime_days: int = 4,
    history_size: float = 15.0,
    impressions_per_day: float = 1.0,
    candidates: int = 15,
    topic_concentration: float = 0.3,
    communities: int = 4,
    topic_weight: float = 1.0,
    popularity_weight: float = 0.6,
    collaborative_weight: float = 2.5,
    exposure_bias: float = 0.5,
    click_threshold: float = 2.0,
    click_noise: float = 0.5,
    topic_share: float = 0.6,
    seed: int = 0,
    return_latents: bool = False,
) -> tuple[NewsTable, BehaviorsTable] | tuple[NewsTable, BehaviorsTable, dict[str, np.ndarray]]:
    """Generate articles and impressions (see the module docstring). Returns MIND tables with news
    ids ``N1..``, user ids ``U1..`` and impression ids ``1..``, impressions in time order; with
    ``return_latents`` also the hidden variables (``topic``, ``appeal``, ``community`` per article,
    ``theta``, ``user_community`` per user, in id order) for diagnostics."""
    if not 1 <= num_topics <= len(TOPICS):
        raise ValueError(f"data.synthetic.num_topics={num_topics}: between 1 and {len(TOPICS)}")
    if days < 3:
        raise ValueError(f"data.synthetic.days={days}: at least 3 (training, validation and test days)")
    if candidates < 2 or lifetime_days < 1 or num_users < 1:
        raise ValueError("data.synthetic: candidates >= 2, lifetime_days >= 1 and num_users >= 1 are required")
    if communities < 1:
        raise ValueError(f"data.synthetic.communities={communities}: must be >= 1")
    rng = np.random.default_rng(seed)
    topics = TOPICS[:num_topics]

    # ---- articles: history pool (published before the period), then new_per_day per logged day
    pub_day = np.concatenate([
        np.repeat(np.arange(-history_days, 0), history_news_per_day),
        np.repeat(np.arange(days), new_per_day),
    ])
    n_news = pub_day.size
    topic_pop = rng.dirichlet(np.full(num_topics, 2.0))
    topic = rng.choice(num_topics, size=n_news, p=topic_pop)
    appeal = rng.normal(size=n_news)
    community = rng.integers(communities, size=n_news)
    ids = [f"N{k + 1}" for k in range(n_news)]
    fields: dict[str, list[str]] = {"category": [], "subcategory": [], "title": [], "abstract": [], "url": []}
    for k in range(n_news):
        cat, subs, words = topics[topic[k]]
        fields["category"].append(cat)
        fields["subcategory"].append(subs[rng.integers(len(subs))])
        fields["title"].append(_sentence(rng, words, int(rng.integers(6, 11)), topic_share))
        fields["abstract"].append(_sentence(rng, words, int(rng.integers(12, 21)), topic_share) + ".")
        fields["url"].append(f"https://example.org/news/{ids[k]}")
    news = NewsTable(ids, fields, source=f"synthetic news (seed {seed})")

    # ---- users
    theta = rng.dirichlet(np.full(num_topics, topic_concentration), size=num_users)  # [U, T]
    user_community = rng.integers(communities, size=num_users)

    def utility(u: int, items: np.ndarray) -> np.ndarray:
        return (
            topic_weight * np.log(theta[u, topic[items]] + 0.01)
            + popularity_weight * appeal[items]
            + collaborative_weight * (community[items] == user_community[u])
        )

    hist_pool = np.flatnonzero(pub_day < 0)
    histories: list[list[str]] = []
    clicked_by: list[set[int]] = []
    for u in range(num_users):
        k = min(max(1, int(rng.poisson(history_size))), hist_pool.size)
        g = utility(u, hist_pool) + rng.gumbel(size=hist_pool.size)
        picked = hist_pool[np.argsort(-g)[:k]]
        picked = picked[np.argsort(pub_day[picked], kind="stable")]  # oldest first, as MIND
        histories.append([ids[i] for i in picked])
        clicked_by.append(set(picked.tolist()))

    # ---- impressions, day by day
    start = int(PERIOD_START.timestamp())
    rows: list[tuple[int, int, list[int], list[int]]] = []  # (time, user, candidates, labels)
    for d in range(days):
        alive = np.flatnonzero((pub_day <= d) & (pub_day > d - lifetime_days))
        expo = np.exp(exposure_bias * appeal[alive])
        expo /= expo.sum()
        n_imp = rng.poisson(impressions_per_day, size=num_users)
        for u in np.flatnonzero(n_imp):
            for _ in range(int(n_imp[u])):
                fresh = np.fromiter((i not in clicked_by[u] for i in alive.tolist()), dtype=bool, count=alive.size)
                if fresh.sum() < 2:
                    continue
                p = expo * fresh
                c = rng.choice(alive, size=min(candidates, int(fresh.sum())), replace=False, p=p / p.sum())
                s = utility(int(u), c) + rng.normal(scale=click_noise, size=c.size)
                clicks = (rng.random(c.size) < 1.0 / (1.0 + np.exp(-(s - click_threshold)))).astype(int)
                if clicks.sum() == 0:
                    clicks[int(np.argmax(s))] = 1
                clicked_by[u].update(c[clicks == 1].tolist())
                t = start + d * 86400 + int(rng.integers(6 * 3600, 23 * 3600))
                rows.append((t, int(u), c.tolist(), clicks.tolist()))
    rows.sort(key=lambda r: r[0])
    behaviors = BehaviorsTable(
        impression_ids=[str(k + 1) for k in range(len(rows))],
        users=[f"U{r[1] + 1}" for r in rows],
        time=np.asarray([r[0] for r in rows], dtype=np.int64),
        history=[histories[r[1]] for r in rows],
        candidates=[[ids[i] for i in r[2]] for r in rows],
        labels=[r[3] for r in rows],
        source=f"synthetic behaviors (seed {seed})",
    )
    if return_latents:
        return news, behaviors, {
            "topic": topic, "appeal": appeal, "community": community, "theta": theta, "user_community": user_community,
        }
    return news, behaviors


def write_mind_folder(news: NewsTable, behaviors: BehaviorsTable, folder: str | Path) -> Path:
    """Write the tables as MIND's ``news.tsv`` (8 columns, empty entity lists) and ``behaviors.tsv``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "news.tsv", "w", encoding="utf-8") as f:
        for k, nid in enumerate(news.ids):
            cols = [nid] + [news.fields[c][k] for c in ("category", "subcategory", "title", "abstract", "url")] + ["[]", "[]"]
            f.write("\t".join(cols) + "\n")
    with open(folder / "behaviors.tsv", "w", encoding="utf-8") as f:
        for k in range(len(behaviors)):
            when = datetime.fromtimestamp(int(behaviors.time[k]), tz=timezone.utc)
            stamp = when.strftime(TIME_FORMAT).lstrip("0").replace("/0", "/").replace(" 0", " ")
            if behaviors.labels is not None:
                imps = " ".join(f"{c}-{l}" for c, l in zip(behaviors.candidates[k], behaviors.labels[k]))
            else:
                imps = " ".join(behaviors.candidates[k])
            f.write("\t".join([behaviors.impression_ids[k], behaviors.users[k], stamp, " ".join(behaviors.history[k]), imps]) + "\n")
    return folder


__all__ = ["GENERATOR_VERSION", "GENERIC_WORDS", "TOPICS", "generate_synthetic_news", "write_mind_folder"]
