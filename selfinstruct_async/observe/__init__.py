"""Watching a run: logs, the progress display and the monitor endpoint."""
