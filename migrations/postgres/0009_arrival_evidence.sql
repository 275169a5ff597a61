-- The face crop a face log was decided on, sealed (encrypted) for its log; purged after
-- `evidence_retention_days`, and with the person's template when their biometric data is erased.
CREATE TABLE arrival_evidence (
    attendance_id BIGINT PRIMARY KEY REFERENCES attendance_logs (id) ON DELETE CASCADE,
    crop BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX arrival_evidence_created ON arrival_evidence (created_at);
