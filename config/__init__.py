"""One typed settings object for every i2vmon process."""

from config.settings import AlertRule, Settings, load_settings, settings_source
from config.unknown_keys import UnknownSettingError

__all__ = ["AlertRule", "Settings", "UnknownSettingError", "load_settings", "settings_source"]
