"""Analysis of runs and recordings for notebooks and reports (polars frames, matplotlib)."""
