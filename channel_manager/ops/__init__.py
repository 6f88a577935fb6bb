"""Operations: health and readiness probes, housekeeping schedules, and the metrics read from
the database at scrape time."""
