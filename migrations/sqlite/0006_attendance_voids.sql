-- A log that turned out wrong is voided, not deleted: it stays visible with who voided
-- it and why, and counts nowhere.
ALTER TABLE attendance_logs ADD COLUMN status TEXT NOT NULL DEFAULT 'valid';  -- valid, voided
ALTER TABLE attendance_logs ADD COLUMN voided_at TEXT;
ALTER TABLE attendance_logs ADD COLUMN voided_by TEXT;
ALTER TABLE attendance_logs ADD COLUMN void_reason TEXT;
