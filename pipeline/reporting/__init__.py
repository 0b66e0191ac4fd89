"""What people read about runs: the trained runs' table and `--run best`, the report page, plots.

Public: runs.listed, runs.tables; report.build; plots (matplotlib's Agg backend, PNG files).
"""
