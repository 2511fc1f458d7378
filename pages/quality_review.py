"""Quality review: the finished videos as a gallery with their scores and low-quality flags; filter and sort;
rate each with stars and a note (kept as a rating event). The combined score shown is the automatic one (the one
the CSV exports), its formula beside it, null with the reason without prompt alignment; the rating sits beside it."""

import json
import math

import streamlit as st

from app.views import formatting as fmt, resources, speed_mode, video
from app.views.frame import guarded
from data import analytics
from data.analytics import RunFilter
from data.ratings import RatingRefused, append_rating
from engine.quality.combine import combine_quality, formula, missing_main_term

PAGE_SIZE = 12
COLUMNS = 3
SORTS = {
    "newest first": ("finished_at", False),
    "oldest first": ("finished_at", True),
    "combined score, best first": ("combined", False),
    "combined score, worst first": ("combined", True),
    "CLIP score, best first": ("clip_score", False),
    "rating, best first": ("rating", False),
}
RATED = ("any", "rated", "not rated")
GALLERY_TTL_S = 10  # a new video shows within this; the sessions opening the page meanwhile share one query


@st.cache_data(ttl=GALLERY_TTL_S, max_entries=64, show_spinner=False)
def _models(root: str) -> list:
    return analytics.distinct_values(resources._store(root), "model")


@st.cache_data(ttl=GALLERY_TTL_S, max_entries=64, show_spinner=False)
def _gallery(root: str, models: tuple, smoke: bool, low_only: bool):
    return analytics.gallery_index(resources._store(root), RunFilter(models=models, include_smoke_test=smoke),
                                   low_quality_only=low_only).to_pandas()


@st.cache_data(ttl=60, max_entries=256, show_spinner=False)
def _runs(root: str, job_ids: tuple) -> dict:
    """The shown cards' run records (written once, so a minute's cache is as good as a read)."""
    return {r["job_id"]: r for r in resources._store(root).runs_for(list(job_ids))}


def _present(value: object) -> bool:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def automatic(clip: object, smooth: object) -> tuple[float | None, dict]:
    """The automatic combined score (CLIP and smoothness; a rating is shown beside it, not folded in) and its
    terms: what the worker stored and the CSV exports."""
    return combine_quality(clip if _present(clip) else None, smooth if _present(smooth) else None, None)


def combined(clip: object, smooth: object) -> float | None:
    return automatic(clip, smooth)[0]


def _clip_reason(run: dict) -> str | None:
    try:
        reasons = json.loads(run.get("quality_reasons") or "{}")
    except (TypeError, ValueError):
        return None
    return reasons.get("clip_score") if isinstance(reasons, dict) else None


def score_lines(run: dict, saved: object) -> tuple[str, str]:
    """(the score line, the formula or the reason there is none) of a card."""
    score, terms = automatic(run.get("clip_score"), run.get("smoothness_std"))
    rating = f"your rating {int(saved)}★" if _present(saved) else "not rated"
    line = (f"**Combined {fmt.number(score, '.3f')}** · {rating} · CLIP {fmt.number(run.get('clip_score'), '.1f')} · "
            f"smoothness std {fmt.number(run.get('smoothness_std'), '.2f', 'px')}")
    if score is None:
        return line, missing_main_term(terms, _clip_reason(run))
    return line, f"combined = {formula(terms)} = {score:.3f}; automatic: the rating is beside it, not in it"


def _save(job_id: str) -> None:
    ss = st.session_state
    stars = ss.get(f"qr_stars_{job_id}")
    if stars is None:
        ss["qr_notice"] = ("warning", "Choose 1 to 5 stars first.")
        return
    settings = resources.settings()
    try:
        append_rating(resources.paths(settings), job_id, int(stars) + 1, ss.get(f"qr_note_{job_id}"), settings.hostname)
    except RatingRefused as exc:
        ss["qr_notice"] = ("error", str(exc))
        return
    ss["qr_notice"] = ("success", f"Saved {int(stars) + 1}★ for {job_id[:8]}.")


def card(run: dict, rating: dict | None) -> None:
    job_id = run["job_id"]
    saved = rating.get("rating") if rating else None
    with st.container(border=True):
        video.play(run.get("video_path"), smoke_test=bool(run.get("smoke_test")))
        st.markdown(f"**{run['model']}** · {fmt.resolution(run.get('height'), run.get('width'))} · "
                    f"{run.get('frames')} fr · {run.get('steps')} steps · seed {run.get('seed')}")
        if run.get("prompt"):  # plain text: a prompt's Markdown (an image link every viewer would fetch) stays literal
            st.text(run["prompt"][:200], width="stretch")
        line, how = score_lines(run, saved)
        st.markdown(line)
        st.caption(how)
        if trades := speed_mode.trades_text(run.get("speed_mode")):
            st.caption(trades)
        if run.get("low_quality"):
            st.warning(f"Low quality: {video.reasons_text(run.get('quality_reasons'))}", icon="⚠️")
        stars_key, note_key = f"qr_stars_{job_id}", f"qr_note_{job_id}"
        if stars_key not in st.session_state and saved is not None:
            st.session_state[stars_key] = int(saved) - 1
        if note_key not in st.session_state:
            st.session_state[note_key] = (rating or {}).get("rating_note") or ""
        chosen = st.feedback("stars", key=stars_key)
        st.text_input("Note", key=note_key, placeholder="what is good or wrong in this video")
        st.button("Save rating", key=f"qr_save_{job_id}", on_click=_save, args=(job_id,), disabled=chosen is None)
        st.caption(f"`{job_id[:8]}` · {fmt.timestamp(run.get('finished_at'))}"
                   + (f" · rated {saved}★" if saved is not None else " · not rated"))


def main() -> None:
    settings = resources.settings()
    store = resources.store(settings)
    st.title("Quality review")
    notice = st.session_state.pop("qr_notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])

    root = str(store.paths.root)
    models = _models(root)
    if not models:
        st.info("No finished videos yet. Generate one on the **Generate** page; an engine worker must be running "
                "(`python -m engine serve`, or `python -m app`).")
        return
    c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 1.4, 1.4])
    chosen_models = c1.multiselect("Models", models, key="qr_models", placeholder="all models")
    sort = c2.selectbox("Sort", list(SORTS), key="qr_sort")
    rated = c3.selectbox("Rating", RATED, key="qr_rated")
    low_only = c4.checkbox("Low quality only", key="qr_low")
    smoke = c5.checkbox("Smoke tests", value=True, key="qr_smoke", help="include videos of the random-weight test models")

    index = _gallery(root, tuple(chosen_models), smoke, low_only)
    ratings = analytics.latest_ratings(store)
    index["rating"] = [ratings.get(j, {}).get("rating") for j in index["job_id"]]
    if rated == "rated":
        index = index[index["rating"].notna()]
    elif rated == "not rated":
        index = index[index["rating"].isna()]
    if index.empty:
        st.info("No video matches these filters.")
        return
    index["combined"] = [combined(c, s) for c, s in zip(index["clip_score"], index["smoothness_std"])]
    column, ascending = SORTS[sort]
    index = index.sort_values(column, ascending=ascending, na_position="last", kind="stable")

    pages = max(1, math.ceil(len(index) / PAGE_SIZE))
    c1, c2 = st.columns([1, 5])
    page = int(c1.number_input("Page", min_value=1, max_value=pages, value=1, key="qr_page"))
    low = int(index["low_quality"].fillna(False).astype(bool).sum())
    c2.caption(f"{len(index)} videos · {low} flagged low quality · page {page} of {pages}")
    shown = index.iloc[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    runs = _runs(root, tuple(shown["job_id"]))
    cols = st.columns(COLUMNS)
    for i, job_id in enumerate(shown["job_id"]):
        if job_id in runs:
            with cols[i % COLUMNS]:
                card(runs[job_id], ratings.get(job_id))


guarded(main)
