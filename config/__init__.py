"""One typed settings object for every i2vmon process."""

from config.settings import AlertRule, Settings, load_settings, settings_source

__all__ = ["AlertRule", "Settings", "load_settings", "settings_source"]
