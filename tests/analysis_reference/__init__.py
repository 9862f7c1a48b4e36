"""A verbatim copy of lazycelery.analysis's grouping code (counts, normalize, tbparse,
fingerprint, groups) as of commit a36e768, before the grouping was made faster: the reference
that tests/test_analysis_equivalence.py compares fingerprints and group state with, and that
bench/bench_errors.py measures in the same run. Do not edit (only its imports point here)."""
