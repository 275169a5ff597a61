-- Incidents are followed up: open → acknowledged → resolved, each step by whom, when and
-- with what note. Repeated detections of one kind at one place count on one open incident
-- (its `group_key`, cleared once the incident is resolved or goes quiet), so a camera under
-- attack raises a count instead of flooding the list.
ALTER TABLE incidents ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
ALTER TABLE incidents ADD COLUMN occurred_at TEXT;
ALTER TABLE incidents ADD COLUMN last_seen_at TEXT;
ALTER TABLE incidents ADD COLUMN occurrences INTEGER NOT NULL DEFAULT 1;
ALTER TABLE incidents ADD COLUMN group_key TEXT;
ALTER TABLE incidents ADD COLUMN reported_by TEXT;
ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;
ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT;
ALTER TABLE incidents ADD COLUMN acknowledgement_note TEXT;
ALTER TABLE incidents ADD COLUMN resolved_at TEXT;
ALTER TABLE incidents ADD COLUMN resolved_by TEXT;
ALTER TABLE incidents ADD COLUMN resolution_note TEXT;
UPDATE incidents SET occurred_at = created_at, last_seen_at = created_at;
-- One open incident per group: concurrent detections in any process add to the same one.
CREATE UNIQUE INDEX incidents_group ON incidents (group_key);
CREATE INDEX incidents_listing ON incidents (occurred_at, id);
CREATE INDEX incidents_status ON incidents (status, id);

-- Each task's detection counts once on its incident, however often the task runs.
CREATE TABLE incident_sightings (
    task_id TEXT PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents (id) ON DELETE CASCADE,
    seen_at TEXT NOT NULL
);
CREATE INDEX incident_sightings_incident ON incident_sightings (incident_id);

-- The photo a reporter sent with an incident, sealed (encrypted) for its incident.
CREATE TABLE incident_images (
    incident_id INTEGER PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    image BLOB NOT NULL,
    mime TEXT NOT NULL
);
