-- Summaries, reports and patterns count the logs of a time range by status and person:
-- this index holds all three, so the counting reads the index alone, not the table rows.
CREATE INDEX attendance_logs_counting ON attendance_logs (timestamp, status, user_id);
