"""Quality review: gallery, filters and sort, smoke-test label, star rating saved as an event."""

from __future__ import annotations

from tests.app.conftest import no_exception, texts


def test_empty_store_says_what_to_do(page):
    at = page("quality")
    at.run()
    no_exception(at)
    assert "No finished videos yet" in texts(at)


def test_gallery_shows_a_page_of_videos(page, history):
    at = page("quality")
    at.run()
    no_exception(at)
    succeeded = [r for r in history if r.state == "succeeded"]
    assert f"{len(succeeded)} videos" in texts(at)
    assert len(at.get("video")) == 12
    assert len(at.get("feedback")) == 12
    assert "smoke-test model (random weights)" in texts(at)


def test_filters_and_sort(page, history):
    at = page("quality")
    at.run()
    at.multiselect(key="qr_models").set_value(["svd"])
    at.run()
    no_exception(at)
    svd = [r for r in history if r.state == "succeeded" and r.model == "svd"]
    assert f"{len(svd)} videos" in texts(at)
    assert all("**svd**" in m.value for m in at.markdown if m.value.startswith("**") and "Combined" not in m.value)
    at.multiselect(key="qr_models").set_value([])
    at.checkbox(key="qr_low").check()
    at.run()
    low = [r for r in history if r.state == "succeeded" and r.low_quality]
    assert f"{len(low)} videos · {len(low)} flagged" in texts(at)
    at.checkbox(key="qr_low").uncheck()
    at.selectbox(key="qr_rated").set_value("rated")
    at.run()
    assert "3 videos" in texts(at)
    at.selectbox(key="qr_rated").set_value("any")
    at.selectbox(key="qr_sort").set_value("CLIP score, best first")
    at.run()
    no_exception(at)
    best = max((r for r in history if r.state == "succeeded"), key=lambda r: r.clip_score)
    first_card = [c.value for c in at.caption if c.value.startswith("`")][0]
    assert first_card.startswith(f"`{best.job_id[:8]}`")


def test_rating_is_saved_and_the_combined_score_follows(page, history, paths):
    from data.store import Store
    from engine.quality.combine import combine_quality

    at = page("quality")
    at.run()
    at.selectbox(key="qr_rated").set_value("not rated")
    at.run()
    feedback = at.get("feedback")[0]
    job_id = feedback.key.removeprefix("qr_stars_")
    run = next(r for r in history if r.job_id == job_id)
    feedback.set_value(4)  # the fifth star
    at.text_input(key=f"qr_note_{job_id}").input("crisp motion")
    at.run()
    assert "becomes" in texts(at)
    at.button(key=f"qr_save_{job_id}").click()
    at.selectbox(key="qr_rated").set_value("any")
    at.run()
    no_exception(at)
    assert "Saved 5★" in texts(at)
    stored = Store(paths).run(job_id)
    assert stored is not None
    ratings = Store(paths).ratings(job_id).to_pylist()
    assert ratings[-1]["stars"] == 5 and ratings[-1]["note"] == "crisp motion"
    expected = combine_quality(run.clip_score, run.smoothness_std, 5)[0]
    assert f"**Combined {expected:.3f}**" in texts(at)


def test_append_rating_refuses_bad_stars(paths):
    import pytest

    from data.ratings import RatingRefused, append_rating

    for bad in (0, 6, 2.5, True, None):
        with pytest.raises(RatingRefused):
            append_rating(paths, "ab" * 16, bad, None, "h")
    event = append_rating(paths, "ab" * 16, 3, "  ", "h")
    assert event.note is None


def test_a_prompt_shows_as_plain_text_not_markdown(page, paths, now, video_file):
    """Issue 26: a prompt's Markdown (an image link each viewer's browser would fetch, bold) shows literally."""
    import dataclasses

    from benchmarks import app_synthetic
    from data.parquet_store import write_rows

    prompt = "a cat ![x](http://example.invalid/p.png) **bold**"
    run = next(r for r in app_synthetic.run_records(10, now, days=1, video_path=str(video_file)) if r.state == "succeeded")
    write_rows(paths, "runs", [dataclasses.replace(run, prompt=prompt)], app_synthetic.HOST)
    at = page("quality")
    at.run()
    no_exception(at)
    assert prompt in [str(t.value) for t in at.text]
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "title", "subheader"):
        for element in getattr(at, kind):
            assert "example.invalid" not in str(element.value) and "**bold**" not in str(element.value), (kind, element)
