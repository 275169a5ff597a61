-- Face recognition: durable tasks, encrypted templates, attendance, incidents.

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,              -- enroll_<uuid>, verify_<uuid>, bulk_<uuid>
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,              -- principal key: user:<id> or api_key:<id>
    payload BYTEA NOT NULL,            -- encrypted; emptied when the task ends
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    lease_until TIMESTAMPTZ,
    result TEXT,
    error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ,
    processing_ms BIGINT
);
CREATE INDEX tasks_claim ON tasks (status, created_at);

CREATE TABLE face_templates (
    user_id BIGINT PRIMARY KEY REFERENCES users (id),
    template BYTEA NOT NULL,           -- AES-256-GCM: nonce || ciphertext
    embeddings BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE attendance_logs (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    timestamp TIMESTAMPTZ NOT NULL,
    camera_id TEXT,
    location TEXT,
    confidence DOUBLE PRECISION,
    similarity DOUBLE PRECISION,
    anti_spoof_score DOUBLE PRECISION,
    verification_time DOUBLE PRECISION,
    source TEXT NOT NULL,             -- verify, bulk_verify, webhook, manual
    task_id TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
-- One arrival per task and person: a re-run task never logs twice.
CREATE UNIQUE INDEX attendance_logs_task_user ON attendance_logs (task_id, user_id);
CREATE INDEX attendance_logs_user_time ON attendance_logs (user_id, timestamp);
CREATE INDEX attendance_logs_time ON attendance_logs (timestamp);

CREATE TABLE incidents (
    id BIGSERIAL PRIMARY KEY,
    type TEXT NOT NULL,
    camera_id TEXT,
    severity TEXT NOT NULL,
    description TEXT NOT NULL,
    details TEXT NOT NULL,
    task_id TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX incidents_task_type ON incidents (task_id, type);

-- Kept only when keep_enrollment_images is on; erased with the template.
CREATE TABLE enrollment_images (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    image BYTEA NOT NULL,             -- AES-256-GCM: nonce || ciphertext
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX enrollment_images_user ON enrollment_images (user_id);
