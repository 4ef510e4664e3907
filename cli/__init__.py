"""The `agora` command: serve the API, run workers, and operate consultations and views."""
