-- Active liveness challenges: issued to one caller, answered at most once, before they
-- expire. The steps are a JSON array of step codes (turn_left, ...).
CREATE TABLE liveness_challenges (
    id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    steps TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE INDEX liveness_challenges_expires ON liveness_challenges (expires_at);

-- How verifications from a kiosk's key, and a camera's own, check liveness: the passive
-- anti-spoof score refuses (passive), every verification answers a challenge (active, keys
-- only: a camera cannot be asked to turn), or the score is only reported (off).
ALTER TABLE api_keys ADD COLUMN liveness_mode TEXT NOT NULL DEFAULT 'passive'
    CHECK (liveness_mode IN ('passive', 'active', 'off'));
ALTER TABLE cameras ADD COLUMN liveness_mode TEXT NOT NULL DEFAULT 'passive'
    CHECK (liveness_mode IN ('passive', 'off'));
