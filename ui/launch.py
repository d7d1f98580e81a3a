"""`scoutlens ui` starts Streamlit through here so that the server's own upload cap
(server.maxUploadSize) is the limit saved in Settings from the first request on: Streamlit
then refuses a larger upload while it arrives (by its Content-Length, or once a chunked body
passes the cap) instead of holding it in memory until "Ingest" refuses it."""

from __future__ import annotations

import sys

from ui import prefs


def streamlit_argv(args: list[str], upload_mb: int) -> list[str]:
    """`streamlit run ARGS` with the upload cap in MB."""
    return ["streamlit", "run", *args, "--server.maxUploadSize", str(upload_mb)]


def main() -> None:
    from streamlit.web.cli import main as streamlit_main

    from ui.uploads import bound_held_uploads

    bound_held_uploads()  # a session cannot fill memory with file after file within the cap
    sys.argv = streamlit_argv(sys.argv[1:], prefs.load().upload_mb)
    streamlit_main(prog_name="streamlit")  # reads sys.argv, as `python -m streamlit` does


if __name__ == "__main__":
    main()
