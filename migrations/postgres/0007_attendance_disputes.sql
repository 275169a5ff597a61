-- A person disputes one of their logs ("not me") or reports an arrival the system missed;
-- an admin accepts (the log is voided, or a manual mark is made) or rejects it.
CREATE TABLE attendance_disputes (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,                  -- not_me, missed_arrival
    attendance_id BIGINT REFERENCES attendance_logs (id),  -- not_me: the log disputed
    claimed_at TIMESTAMPTZ,                     -- missed_arrival: when the person says they arrived
    reason TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open', -- open, accepted, rejected
    created_at TIMESTAMPTZ NOT NULL,
    resolved_at TIMESTAMPTZ,
    resolved_by TEXT,
    resolution_note TEXT,
    resulting_attendance_id BIGINT REFERENCES attendance_logs (id)  -- the mark an accepted missed arrival made
);
-- One open dispute per log: a second is refused by the database, whatever process files it.
CREATE UNIQUE INDEX attendance_disputes_open_log ON attendance_disputes (attendance_id) WHERE status = 'open';
CREATE INDEX attendance_disputes_status ON attendance_disputes (status, id);
CREATE INDEX attendance_disputes_user ON attendance_disputes (user_id, id);
