"""The API's jobs for a model that makes a soundtrack: video_only and audio_guidance are taken where the model makes
sound and refused, with a plain message, where it does not."""

from __future__ import annotations

from tests.api.test_api_jobs import post_job

LTX2 = {"model": "tiny-ltx2", "prompt": "waves on a beach", "frames": 9, "steps": 2}


def test_a_sound_models_job_takes_video_only_and_an_audio_guidance_scale(client):
    r = post_job(client, {**LTX2, "video_only": True, "audio_guidance": 5.5})

    assert r.status_code == 201, r.text
    params = r.json()["job"]["params"]
    assert (params["video_only"], params["audio_guidance"]) == (True, 5.5)


def test_sound_parameters_for_a_silent_model_are_refused_with_a_plain_message(client):
    r = post_job(client, {"model": "tiny", "prompt": "a cat walking", "video_only": True})

    assert r.status_code == 400
    assert r.json()["detail"] == "video_only: tiny makes no soundtrack; leave video_only unset"
    assert client.get("/api/jobs").json()["counts"]["queued"] == 0
