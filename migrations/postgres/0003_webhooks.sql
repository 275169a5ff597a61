-- Outgoing webhooks: registrations and a durable outbox of deliveries.

CREATE TABLE webhooks (
    id BIGSERIAL PRIMARY KEY,
    url TEXT NOT NULL,
    events TEXT NOT NULL,             -- comma-separated event kinds, e.g. attendance_logged,spoofing_detected
    secret BYTEA NOT NULL,            -- AES-256-GCM: nonce || ciphertext
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_by TEXT,                  -- audit name of the admin who registered it
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    webhook_id BIGINT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    event_key TEXT NOT NULL,          -- the occurrence, e.g. attendance:42
    payload TEXT NOT NULL,            -- the exact body that is signed and sent
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivering', 'delivered', 'failed')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ,
    last_status_code BIGINT,
    last_error TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    delivered_at TIMESTAMPTZ
);
-- One delivery per webhook and occurrence: an event published twice is queued once.
CREATE UNIQUE INDEX webhook_deliveries_event ON webhook_deliveries (webhook_id, event_key);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
