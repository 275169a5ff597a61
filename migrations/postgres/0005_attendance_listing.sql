-- The attendance logs listing is newest first, ties by id: this index serves that order
-- (and the date range filters) without sorting.
CREATE INDEX attendance_logs_time_id ON attendance_logs (timestamp, id);
