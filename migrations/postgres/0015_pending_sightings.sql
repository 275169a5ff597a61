-- Failed liveness checks that no incident counts yet: a spoofing incident opens once its group
-- (a camera, or a submitter without one) has had `spoof_incident_min_failures` of them within
-- `incident_window_secs`, so one bad frame is a retry, not an alarm. Each task's counts once.
CREATE TABLE pending_sightings (
    task_id TEXT PRIMARY KEY,
    group_key TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX pending_sightings_group ON pending_sightings (group_key);
CREATE INDEX pending_sightings_seen ON pending_sightings (seen_at);
