-- The feed of changes to who the matching index holds: every transaction that stores,
-- replaces or erases a template, or deactivates or reactivates a person, adds a row, and
-- each server process reloads the people named after the last row it applied.
-- `face_index_head` is one row that each such transaction updates last, just before it
-- commits: the update takes the row's lock, so changes get their `seq` in commit order
-- and a follower that has read up to some `seq` can never see a lower one appear later.
CREATE TABLE face_index_head (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO face_index_head (id, last_seq) VALUES (1, 0);

CREATE TABLE face_index_changes (
    seq BIGINT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX face_index_changes_changed_at ON face_index_changes (changed_at);
CREATE INDEX face_index_changes_user ON face_index_changes (user_id, seq);
