"""The output commands: stats, report, export and dedup over a run directory.

``stats`` computes a typed ``run_stats.RunStats`` (prices from ``prices``); ``report``
draws the figures and ``report_html`` the page; ``export`` writes trainer formats from
``export_rows``; ``dedup`` runs the similarity filter over a dataset; ``verb_noun`` is the
report's verb-object analysis. They read ``tasks.jsonl`` through
``checkpoint.tasks_file.TasksReader``; their errors are ``errors.OutputError``'s branch.
"""
