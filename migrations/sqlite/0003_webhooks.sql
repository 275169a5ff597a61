-- Outgoing webhooks: registrations and a durable outbox of deliveries.

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    url TEXT NOT NULL,
    events TEXT NOT NULL,             -- comma-separated event kinds, e.g. attendance_logged,spoofing_detected
    secret BLOB NOT NULL,             -- AES-256-GCM: nonce || ciphertext
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_by TEXT,                  -- audit name of the admin who registered it
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id INTEGER NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    event_key TEXT NOT NULL,          -- the occurrence, e.g. attendance:42
    payload TEXT NOT NULL,            -- the exact body that is signed and sent
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until TEXT,
    last_status_code INTEGER,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);
-- One delivery per webhook and occurrence: an event published twice is queued once.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_key);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
