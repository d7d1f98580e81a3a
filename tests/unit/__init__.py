"""Unit tests: nothing but the venv (no model, no PostgreSQL, no server or browser, no vLLM);
`make test-fast` runs them on both cores. tests/conftest.py refuses a test here that takes the
model or PostgreSQL."""
