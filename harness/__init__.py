"""What the tests, the bench (``python -m bench``) and the demo (``scripts/demo.py``) share
to drive the platform from outside: free ports and condition polling, launching and stopping
its processes, an HTTP client that speaks the API as a user does, and broker/storage helpers
for isolated runs.

It is a top-level package (installed by ``make venv`` with the project, but not copied into
the service images) rather than part of ``tests/``, so the bench and the demo can import it
without depending on the test suite."""
