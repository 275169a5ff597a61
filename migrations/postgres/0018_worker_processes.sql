-- The processes that run task workers, so that any instance's health check can count
-- the workers of the whole deployment. Each such process upserts its row every 2 s and
-- deletes it when it shuts down gracefully; a process that dies stops beating, and
-- housekeeping deletes rows not beaten for 10 minutes. `beat_at` is when the process's
-- workers last showed they were alive, not merely when the row was written.
CREATE TABLE worker_processes (
    instance_id TEXT PRIMARY KEY,
    hostname TEXT NOT NULL,
    pid BIGINT NOT NULL,
    role TEXT NOT NULL,
    workers_configured BIGINT NOT NULL,
    workers_alive BIGINT NOT NULL,
    workers_busy BIGINT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    beat_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX worker_processes_beat_at ON worker_processes (beat_at);
