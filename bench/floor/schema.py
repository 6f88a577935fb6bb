"""The floor's table, created with plain SQL by bench/bench.py before the floor phase (this module
imports no Django: the orchestrating process never does)."""

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS bench_floor_row (
    id bigserial PRIMARY KEY,
    partner_id varchar(64) NOT NULL,
    reference varchar(64) NOT NULL,
    email varchar(254) NOT NULL,
    created_at timestamptz NOT NULL
)
"""
