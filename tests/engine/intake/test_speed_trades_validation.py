"""A job's quality trades (speed_trades) are checked like every other parameter: known words, offered by the model,
kept in the queued params in one order."""

from __future__ import annotations

import dataclasses

import pytest

from engine.intake.validation import InputError, check_params
from engine.registry import MODELS

MODEL = "tiny-wan"


@pytest.fixture
def offers_trades(monkeypatch):
    monkeypatch.setitem(MODELS, MODEL, dataclasses.replace(MODELS[MODEL], speed_trades=("fp8", "int8attn", "cache")))


def _params(**extra):
    return {"model": MODEL, "prompt": "a boat", **extra}


def test_chosen_trades_are_kept_in_the_queued_params_in_one_order(offers_trades):
    params = check_params(_params(speed_trades=["cache", "fp8", "cache"]))
    assert params.speed_trades == ("fp8", "cache")
    assert params.to_dict()["speed_trades"] == ["fp8", "cache"]


def test_a_forms_comma_separated_text_is_read_as_the_list(offers_trades):
    assert check_params(_params(speed_trades="int8attn, cache")).speed_trades == ("int8attn", "cache")


def test_no_trade_is_the_default(offers_trades):
    assert check_params(_params()).speed_trades == ()
    assert check_params(_params(speed_trades=[])).speed_trades == ()


def test_an_unknown_trade_is_refused_with_the_choices(offers_trades):
    with pytest.raises(InputError, match="'turbo' is not a quality trade; choose from fp8, int8attn, cache"):
        check_params(_params(speed_trades=["turbo"]))


def test_a_trade_the_model_does_not_offer_is_refused(monkeypatch):
    monkeypatch.setitem(MODELS, MODEL, dataclasses.replace(MODELS[MODEL], speed_trades=()))
    with pytest.raises(InputError, match="tiny-wan does not offer cache .it offers none"):
        check_params(_params(speed_trades=["cache"]))


def test_the_cli_queues_the_trades_given_with_speed_trades(offers_trades, settings, png_file):
    from engine.cli import main
    from engine.queue import open_queue

    args = ["submit", "--model", MODEL, "--prompt", "a boat", "--image", str(png_file), "--speed-trades", "cache,fp8",
            "--force"]
    assert main(args) == 0
    (job,) = open_queue(settings).list()
    assert job.params.speed_trades == ("fp8", "cache")
