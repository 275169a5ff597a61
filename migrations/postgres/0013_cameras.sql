-- Cameras the server watches. The stream URL with its credentials is sealed (`url`);
-- `masked_url` is the same URL with the credentials replaced, the one responses show.
-- `revision` grows with every change, so a running ingestion worker knows it is stale.
CREATE TABLE cameras (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    location TEXT NOT NULL DEFAULT '',
    ip_address TEXT,
    url BYTEA NOT NULL,
    masked_url TEXT NOT NULL,
    direction TEXT NOT NULL CHECK (direction IN ('entry', 'exit', 'both')),
    sample_fps DOUBLE PRECISION NOT NULL,
    is_active BOOLEAN NOT NULL,
    revision BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
