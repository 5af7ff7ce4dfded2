"""The engine: the DAG, one DuckDB session per pipeline, checks, retries."""
