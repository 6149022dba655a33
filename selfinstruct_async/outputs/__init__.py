"""The output commands: stats, report, export and dedup over a run directory."""
