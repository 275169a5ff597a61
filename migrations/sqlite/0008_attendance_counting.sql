-- Summaries, reports and patterns count the logs of a time range by status and person:
-- this index holds all three, so SQLite counts from the index alone, not the table rows
-- (a month's summary at a million logs: 1.6 s → 0.95 s, docs/PERFORMANCE.md). PostgreSQL
-- has no such index: there it measured slower, its index-only scans needing a vacuumed table.
CREATE INDEX attendance_logs_counting ON attendance_logs (timestamp, status, user_id);
