"""The API's jobs take a model's speed-mode quality trades ("speed_trades") and refuse, with a plain message, a
trade that does not exist or that the model does not offer."""

from __future__ import annotations

from tests.api.test_api_jobs import post_job

WAN = {"model": "tiny-wan", "prompt": "a fox turns its head", "height": 32, "width": 32, "frames": 5, "steps": 2}


def test_a_job_takes_the_trades_its_model_offers_in_one_order_without_duplicates(client):
    r = post_job(client, {**WAN, "speed_trades": ["cache", "fp8", "cache"]})

    assert r.status_code == 201, r.text
    assert r.json()["job"]["params"]["speed_trades"] == ["fp8", "cache"]


def test_an_unknown_trade_is_refused_naming_the_trades(client):
    r = post_job(client, {**WAN, "speed_trades": ["turbo"]})

    assert r.status_code == 400
    assert r.json()["detail"] == "speed_trades: unknown trade(s) turbo; the trades are fp8, int8attn, cache"


def test_a_trade_the_model_does_not_offer_is_refused_naming_the_models(client):
    r = post_job(client, {"model": "tiny", "prompt": "a cat walking", "speed_trades": ["cache"]})

    assert r.status_code == 400
    assert r.json()["detail"] == "speed_trades: tiny does not offer cache; it offers: none"
