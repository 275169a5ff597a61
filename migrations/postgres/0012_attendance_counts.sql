-- Counts of valid logs, kept in the transactions that write, void and delete logs, so that
-- summaries, reports and patterns read a few rows per day instead of every log of their
-- range. Days and hours are local to the zone in attendance_counts_zone; when the server
-- starts with another zone configured (or on counts that are new), it counts every day
-- again from the logs. department and attendee are the person's current ones: a change of
-- department, role or active flag moves the person's counts with it.
CREATE TABLE attendance_hour_counts (
    day BIGINT NOT NULL,              -- local days since 1970-01-01
    hour BIGINT NOT NULL,             -- local hour of the day, 0-23
    department TEXT NOT NULL,
    attendee BOOLEAN NOT NULL,        -- an active faculty member or student
    logs BIGINT NOT NULL,
    PRIMARY KEY (day, hour, department, attendee)
);
CREATE TABLE attendance_day_counts (
    day BIGINT NOT NULL,
    department TEXT NOT NULL,
    attendee BOOLEAN NOT NULL,
    persons BIGINT NOT NULL,          -- people with a valid log that day
    PRIMARY KEY (day, department, attendee)
);
CREATE TABLE attendance_counts_zone (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    zone TEXT NOT NULL                -- IANA name; '' until the first count
);
