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


def test_rating_is_saved_and_shown_beside_the_automatic_score_which_it_does_not_change(page, history, paths):
    from data.store import Store
    from engine.quality.combine import combine_quality

    at = page("quality")
    at.run()
    at.selectbox(key="qr_rated").set_value("not rated")
    at.run()
    feedback = at.get("feedback")[0]
    job_id = feedback.key.removeprefix("qr_stars_")
    run = next(r for r in history if r.job_id == job_id)
    automatic = combine_quality(run.clip_score, run.smoothness_std, None)[0]
    assert f"**Combined {automatic:.3f}** · not rated" in texts(at)
    feedback.set_value(4)  # the fifth star
    at.text_input(key=f"qr_note_{job_id}").input("crisp motion")
    at.run()
    at.button(key=f"qr_save_{job_id}").click()
    at.selectbox(key="qr_rated").set_value("any")
    at.run()
    no_exception(at)
    assert "Saved 5★" in texts(at)
    ratings = Store(paths).ratings(job_id).to_pylist()
    assert ratings[-1]["stars"] == 5 and ratings[-1]["note"] == "crisp motion"
    assert f"**Combined {automatic:.3f}** · your rating 5★" in texts(at)  # beside it; the score is unchanged
    # the formula where the number is, not in a tooltip
    assert f"combined = 0.625·CLIP {combine_quality(run.clip_score, None, None)[1]['clip']['term']:.2f}" in texts(at)


def test_without_prompt_alignment_the_combined_score_is_null_with_the_reason_in_the_ui_and_the_csv(page, paths, now,
                                                                                                   video_file):
    import csv
    import dataclasses
    import io
    import json
    from datetime import timedelta

    from app.views import export
    from benchmarks import app_synthetic
    from data.parquet_store import write_rows
    from data.store import Store

    # scored before the rule: a smoke-test video's noise, CLIP not computed, 0.91 from smoothness alone
    record = dataclasses.replace(
        app_synthetic.run_records(1, now, days=1)[0], state="succeeded", model="tiny", smoke_test=True,
        video_path=str(video_file), clip_score=None, smoothness_std=0.9, quality_score=0.91, low_quality=False,
        quality_reasons=json.dumps({"clip_score": "CLIP model not available offline"}))
    write_rows(paths, "runs", [record], "testhost")
    at = page("quality")
    at.run()
    no_exception(at)
    assert "**Combined N/A**" in texts(at)
    assert ("no combined score: prompt alignment (CLIP) not computed (CLIP model not available offline); "
            "motion only: smoothness term 0.91") in texts(at)
    rows = list(csv.DictReader(io.StringIO(export.runs_csv(Store(paths), now - timedelta(days=2), now).decode())))
    assert rows[0]["quality_score"] == "" and rows[0]["low_quality"] == ""  # the CSV agrees with the page


def test_a_video_made_with_quality_trades_says_so_on_its_card(page, paths, now, video_file):
    import dataclasses

    from benchmarks import app_synthetic
    from data.parquet_store import write_rows

    record = dataclasses.replace(app_synthetic.run_records(1, now, days=1)[0], state="succeeded", model="tiny-wan",
                                 smoke_test=True, video_path=str(video_file), speed_mode="regional+qkv+fp8+cache")
    write_rows(paths, "runs", [record], "testhost")
    at = page("quality")
    at.run()
    no_exception(at)
    assert ("Made with quality trades: fp8 matmuls (torchao), step caching (diffusers' enable_cache) — not the stock "
            "pipeline's maths") in texts(at)
