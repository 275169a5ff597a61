-- Unknown visitors: faces seen at cameras, live, of good quality and recognised as nobody,
-- grouped by likeness. A visitor's `number` makes its label (V-0001) and comes from
-- `visitor_numbers`, whose one row every clustering transaction locks first: two servers
-- placing the same stranger at once take turns, so one face becomes one visitor.
-- `embedding` (the mean of the sightings' embeddings) and `crop` (the best face seen) are
-- sealed; so is each sighting's embedding, which enrolling a visitor makes a template of.
CREATE TABLE visitor_numbers (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_number INTEGER NOT NULL
);
INSERT INTO visitor_numbers (id, last_number) VALUES (1, 0);

CREATE TABLE visitors (
    number INTEGER PRIMARY KEY,
    embedding BLOB NOT NULL,
    crop BLOB NOT NULL,
    crop_quality DOUBLE PRECISION NOT NULL,
    sightings INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL
);
CREATE INDEX visitors_last_seen ON visitors (last_seen);

-- One row per verification task that saw the visitor: a task run twice adds one sighting.
CREATE TABLE visitor_sightings (
    task_id TEXT PRIMARY KEY,
    visitor_number INTEGER NOT NULL REFERENCES visitors (number) ON DELETE CASCADE,
    camera_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    similarity DOUBLE PRECISION,
    quality_score DOUBLE PRECISION NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX visitor_sightings_visitor ON visitor_sightings (visitor_number, seen_at);
