"""Settings that name nothing are refused at start, with the nearest valid name."""

from __future__ import annotations

import os

import pytest

from config import load_settings
from config.unknown_keys import UnknownSettingError


@pytest.fixture
def settings_file(tmp_path, monkeypatch):
    path = tmp_path / "i2vmon.toml"
    path.write_text("")
    monkeypatch.setenv("I2VMON_CONFIG", str(path))
    for var in [v for v in os.environ if v.startswith("I2VMON_") and v != "I2VMON_CONFIG"]:
        monkeypatch.delenv(var)
    return path


def refusal(settings_file) -> str:
    with pytest.raises(UnknownSettingError) as caught:
        load_settings()
    return str(caught.value)


def test_a_misspelt_key_in_a_section_names_the_nearest_field(settings_file):
    settings_file.write_text('[engine]\nspeed_mod = "off"\n')
    assert "unknown setting engine.speed_mod; did you mean speed_mode?" in refusal(settings_file)


def test_a_misspelt_section_names_the_nearest_section(settings_file):
    settings_file.write_text("[colector]\ninterval_s = 2\n")
    assert "unknown setting [colector]; did you mean collector?" in refusal(settings_file)


def test_a_misspelt_top_level_key_is_refused(settings_file):
    settings_file.write_text('queue_ur = "sqlite://x"\n')
    assert "unknown setting queue_ur; did you mean queue_url?" in refusal(settings_file)


def test_every_unknown_key_is_named_at_once(settings_file):
    settings_file.write_text('[engine]\nspeed_mod = "off"\n[api]\nprot = 9000\n')
    message = refusal(settings_file)
    assert "engine.speed_mod" in message and "api.prot; did you mean port?" in message


def test_a_key_far_from_every_name_is_refused_without_a_guess(settings_file):
    settings_file.write_text("[engine]\nzzz = 1\n")
    message = refusal(settings_file)
    assert "unknown setting engine.zzz" in message and "did you mean" not in message


def test_a_misspelt_key_of_an_alert_rule_is_refused(settings_file):
    settings_file.write_text('[[alerts.rules]]\nname = "warm"\nmetric = "temp_c"\nthreshold = 70\nlevel = "warning"\n'
                             "hysteresys = 2\n")
    assert "alerts.rules.0.hysteresys; did you mean hysteresis?" in refusal(settings_file)


def test_an_alias_is_a_valid_key(settings_file):
    settings_file.write_text('[[alerts.rules]]\nname = "warm"\nmetric = "temp_c"\nthreshold = 70\nlevel = "warning"\n'
                             "for = 2\n")
    assert load_settings().alerts.rules[0].for_s == 2


def test_valid_settings_still_load(settings_file):
    settings_file.write_text('[engine]\nspeed_mode = "off"\n[collector]\ninterval_s = 2\n')
    settings = load_settings()
    assert settings.engine.speed_mode == "off" and settings.collector.interval_s == 2


def test_a_misspelt_nested_environment_variable_names_the_right_one(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MOD", "off")
    assert ("unknown setting I2VMON_ENGINE__SPEED_MOD; did you mean I2VMON_ENGINE__SPEED_MODE?"
            in refusal(settings_file))


def test_an_environment_variable_for_a_misspelt_section_is_refused(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_COLECTOR__INTERVAL_S", "2")
    assert "I2VMON_COLECTOR__INTERVAL_S; did you mean I2VMON_COLLECTOR?" in refusal(settings_file)


def test_a_near_miss_of_a_top_level_environment_setting_is_refused(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_DATA_DIRR", "/tmp/x")
    assert "I2VMON_DATA_DIRR; did you mean I2VMON_DATA_DIR?" in refusal(settings_file)


def test_other_i2vmon_variables_that_are_not_settings_pass(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_FAILPOINTS", "")
    monkeypatch.setenv("I2VMON_TEST_FAKE_NVML", "1")
    monkeypatch.setenv("I2VMON_ENGINE__SPEED_MODE", "off")
    assert load_settings().engine.speed_mode == "off"


def test_a_command_refuses_to_start_with_the_message_and_no_traceback(settings_file, capsys):
    from engine import cli

    settings_file.write_text('[engine]\nspeed_mod = "off"\n')
    assert cli.main(["list"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown setting engine.speed_mod; did you mean speed_mode?" in err and "Traceback" not in err


def test_keys_inside_a_json_section_variable_are_checked(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE", '{"speed_mod": "off"}')
    assert "I2VMON_ENGINE; did you mean I2VMON_ENGINE__SPEED_MODE?" in refusal(settings_file)


def test_a_json_section_variable_with_valid_keys_loads(settings_file, monkeypatch):
    monkeypatch.setenv("I2VMON_ENGINE", '{"speed_mode": "off"}')
    assert load_settings().engine.speed_mode == "off"
