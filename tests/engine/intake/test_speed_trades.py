"""A job's speed-mode quality trades: checked at intake (a list of known names the model offers), kept in one order,
and taken by `engine submit --trade`."""

from __future__ import annotations

import pytest

from engine.cli import main
from engine.intake.validation import InputError, check_params

WAN = {"model": "tiny-wan", "prompt": "a fox turns its head"}


def test_no_trades_is_the_default():
    assert check_params(WAN).speed_trades == ()


def test_trades_are_kept_in_the_canonical_order_without_duplicates():
    assert check_params({**WAN, "speed_trades": ["cache", "int8attn", "cache", "fp8"]}).speed_trades == (
        "fp8", "int8attn", "cache")


def test_a_form_fields_comma_separated_text_is_taken():
    assert check_params({**WAN, "speed_trades": "cache, fp8"}).speed_trades == ("fp8", "cache")


def test_an_unknown_trade_names_the_valid_ones():
    with pytest.raises(InputError, match="unknown trade\\(s\\) turbo; the trades are fp8, int8attn, cache"):
        check_params({**WAN, "speed_trades": ["turbo"]})


def test_a_trade_the_model_does_not_offer_names_the_models():
    with pytest.raises(InputError, match="tiny does not offer fp8; it offers: none"):
        check_params({"model": "tiny", "prompt": "x", "speed_trades": ["fp8"]})


def test_trades_that_are_not_a_list_of_names_are_refused():
    with pytest.raises(InputError, match="speed_trades must be a list of names"):
        check_params({**WAN, "speed_trades": [1]})


def test_submit_takes_repeated_trade_options_and_lists_them(data_dir, png_file, capsys):
    args = ["submit", "--model", "tiny-wan", "--prompt", "a fox", "--image", str(png_file), "--frames", "5",
            "--steps", "2", "--height", "32", "--width", "32", "--trade", "cache", "--trade", "fp8", "--force"]
    assert main(args) == 0
    assert main(["list"]) == 0
    assert "trades fp8+cache" in capsys.readouterr().out


def test_submit_refuses_a_trade_that_does_not_exist_as_a_usage_error(data_dir, png_file, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["submit", "--model", "tiny-wan", "--prompt", "x", "--image", str(png_file), "--trade", "turbo"])
    assert exited.value.code == 2 and "invalid choice: 'turbo'" in capsys.readouterr().err


def test_the_per_call_trades_are_refused_for_a_job_on_several_gpus():
    with pytest.raises(InputError, match="speed_trades cache run on one GPU only; set gpus to 1"):
        check_params({**WAN, "gpus": 2, "speed_trades": ["cache"]})


def test_fp8_may_run_on_a_group():
    assert check_params({**WAN, "gpus": 2, "speed_trades": ["fp8"]}).speed_trades == ("fp8",)
