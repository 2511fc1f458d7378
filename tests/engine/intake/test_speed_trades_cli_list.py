"""The CLI's --speed-trades (one comma-separated list) queues what --trade does (test_speed_trades.py checks the words)."""

from __future__ import annotations

import dataclasses

import pytest

from engine.registry import MODELS

MODEL = "tiny-wan"


@pytest.fixture
def offers_trades(monkeypatch):
    monkeypatch.setitem(MODELS, MODEL, dataclasses.replace(MODELS[MODEL], speed_trades=("fp8", "int8attn", "cache")))


def test_the_cli_queues_the_trades_given_with_speed_trades(offers_trades, settings, png_file):
    from engine.cli import main
    from engine.queue import open_queue

    args = ["submit", "--model", MODEL, "--prompt", "a boat", "--image", str(png_file), "--speed-trades", "cache,fp8",
            "--force"]
    assert main(args) == 0
    (job,) = open_queue(settings).list()
    assert job.params.speed_trades == ("fp8", "cache")
