"""The app's entrypoint and router: `python -m app`, which supervises it, or on its own from the repository
root `python -m streamlit run app/ui.py` (the scripts here and under pages/ import the repository's packages:
`python -m` puts the working directory on the path; the launcher also sets PYTHONPATH, app/streamlit_server.py).

It draws the shared frame (the sidebar's data directory and service status, the active-alert banner) and
runs the page chosen; each page under pages/ also runs on its own.
"""

from pathlib import Path

import streamlit as st

from app.views import frame, sign_in

st.set_page_config(page_title="i2vmon", page_icon="🎞️", layout="wide")
sign_in.require_sign_in()  # before any page: until signed in, nothing but the sign-in is drawn

PAGES = Path(__file__).resolve().parents[1] / "pages"
LIVE = st.Page(PAGES / "live_monitor.py", title="Live monitor", icon=":material/monitoring:", url_path="live")
page = st.navigation([
    st.Page(PAGES / "generate.py", title="Generate", icon=":material/movie:", url_path="generate", default=True),
    LIVE,
    st.Page(PAGES / "quality_review.py", title="Quality review", icon=":material/star:", url_path="quality"),
    st.Page(PAGES / "analytics.py", title="Analytics", icon=":material/analytics:", url_path="analytics"),
])
frame.guarded(frame.sidebar)
if page.url_path != LIVE.url_path:  # the live monitor shows the alerts in full itself
    frame.guarded(frame.banner)
page.run()
