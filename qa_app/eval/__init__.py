"""Evaluation: question sets, metrics, runs that resume, reports, diffs, and the benchmark adapters.

Modules: ``sets`` (loading and checking a JSONL set), ``metrics`` (an item's result, rates,
recall), ``runner`` (answering a set in threads, one bad item never stopping a run),
``checkpoint`` (settings fingerprint, run description, resumable results), ``report``
(terminal tables, Markdown/HTML reports), ``diff`` (two runs compared), and the adapters of
the external benchmarks, ``rgb`` and ``cmrc`` (read in place from ../shared; they write only
through ``Index``).
"""
