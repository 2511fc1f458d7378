"""The entrypoint: navigation, the sidebar's service status and the alert banner."""

from __future__ import annotations

from tests.app.conftest import no_exception, texts


def test_empty_store_says_what_is_down(ui, paths):
    ui.run()
    no_exception(ui)
    sidebar = "\n".join(str(e.value) for e in ui.sidebar.markdown) + "\n".join(str(e.value) for e in ui.sidebar.caption)
    assert "Collector" in sidebar and "no live sample" in sidebar
    assert "python -m collector" in sidebar
    assert str(paths.root) in sidebar
    assert "Generate" in [t.value for t in ui.title]


def test_banner_shows_firing_alert_with_action(ui, collector_live):
    ui.run()
    no_exception(ui)
    warning = "\n".join(w.value for w in ui.warning)
    assert "GPU memory above 85%" in warning and collector_live["action"] in warning
    sidebar = "\n".join(str(e.value) for e in ui.sidebar.markdown)
    assert "🟢 **Collector**" in sidebar


def test_every_page_renders_through_the_router(ui, history, collector_live):
    ui.run()
    for path, title in (("../pages/live_monitor.py", "Live monitor"), ("../pages/quality_review.py", "Quality review"),
                        ("../pages/analytics.py", "Analytics"), ("../pages/generate.py", "Generate")):
        ui.switch_page(path)
        ui.run()
        no_exception(ui)
        assert title in [t.value for t in ui.title], texts(ui)
