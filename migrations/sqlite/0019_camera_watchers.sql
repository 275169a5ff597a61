-- Which process watches each camera. An API instance holds a camera under a lease that it
-- renews every few seconds, writing the camera's live figures with it so that every
-- instance can report them; once a lease has run out (its holder died or stalled),
-- another instance takes the camera over. A graceful stop deletes the holder's rows.
-- Attendance does not depend on this for exactly-once: a walk-past seen by two instances
-- for a moment is still one arrival per cooldown, kept in the attendance tables.
CREATE TABLE camera_watchers (
    camera_id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    pid INTEGER NOT NULL,
    watching_since TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    figures TEXT
);
