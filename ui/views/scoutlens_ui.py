"""The scoutlens web UI: `scoutlens ui` (or `make ui`) runs this with Streamlit. Streamlit puts
this folder on sys.path, so nothing here may share a name with a package (app, engine, evals)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from ui.auth import sign_in

HERE = Path(__file__).parent

# The favicon ships with the package: a `:material/...` page icon is fetched from Google's CDN by
# every browser that opens the page (the page icons below use the font bundled in Streamlit).
ICON = HERE.parent / "icon.svg"
st.set_page_config(page_title="scoutlens", page_icon=str(ICON), layout="wide")
sign_in()  # stops here with the sign-in when nobody is signed in
pages = [
    st.Page(HERE / "corpora_page.py", title="Corpora", icon=":material/library_books:",
            default=True),
    st.Page(HERE / "ask_page.py", title="Ask", icon=":material/chat:"),
    st.Page(HERE / "analyze_page.py", title="Analyze", icon=":material/summarize:"),
    st.Page(HERE / "evals_page.py", title="Evals", icon=":material/target:"),
    st.Page(HERE / "engine_page.py", title="Engine", icon=":material/memory:"),
    st.Page(HERE / "settings_page.py", title="Settings", icon=":material/settings:"),
]
st.navigation(pages).run()
