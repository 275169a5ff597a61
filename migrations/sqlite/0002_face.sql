-- Face recognition: durable tasks, encrypted templates, attendance, incidents.

CREATE TABLE tasks (
    id TEXT PRIMARY KEY,              -- enroll_<uuid>, verify_<uuid>, bulk_<uuid>
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,              -- principal key: user:<id> or api_key:<id>
    payload BLOB NOT NULL,            -- encrypted; emptied when the task ends
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    lease_until TEXT,
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    processing_ms INTEGER
);
CREATE INDEX tasks_claim ON tasks (status, created_at);

CREATE TABLE face_templates (
    user_id INTEGER PRIMARY KEY REFERENCES users (id),
    template BLOB NOT NULL,           -- AES-256-GCM: nonce || ciphertext
    embeddings INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE attendance_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id),
    timestamp TEXT NOT NULL,
    camera_id TEXT,
    location TEXT,
    confidence REAL,
    similarity REAL,
    anti_spoof_score REAL,
    verification_time REAL,
    source TEXT NOT NULL,             -- verify, bulk_verify, webhook, manual
    task_id TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
-- One arrival per task and person: a re-run task never logs twice.
CREATE UNIQUE INDEX attendance_logs_task_user ON attendance_logs (task_id, user_id);
CREATE INDEX attendance_logs_user_time ON attendance_logs (user_id, timestamp);
CREATE INDEX attendance_logs_time ON attendance_logs (timestamp);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    camera_id TEXT,
    severity TEXT NOT NULL,
    description TEXT NOT NULL,
    details TEXT NOT NULL,
    task_id TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX incidents_task_type ON incidents (task_id, type);

-- Kept only when keep_enrollment_images is on; erased with the template.
CREATE TABLE enrollment_images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id INTEGER NOT NULL REFERENCES users (id),
    image BLOB NOT NULL,              -- AES-256-GCM: nonce || ciphertext
    created_at TEXT NOT NULL
);
CREATE INDEX enrollment_images_user ON enrollment_images (user_id);
