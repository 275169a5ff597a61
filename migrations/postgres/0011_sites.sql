-- Places where people may check in from a phone: a circle around a point.
CREATE TABLE sites (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    latitude DOUBLE PRECISION NOT NULL,
    longitude DOUBLE PRECISION NOT NULL,
    radius_m DOUBLE PRECISION NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
