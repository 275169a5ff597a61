-- The person an enrollment task is for: erasing or deactivating them ends their
-- enrollments still queued or running (their photos are erased with the task's input).
ALTER TABLE tasks ADD COLUMN subject BIGINT;
CREATE INDEX tasks_subject ON tasks (subject, kind, status);

-- The task an audit entry reports on (verifications, enrollments): recorded once per
-- task and action, however often the task runs.
ALTER TABLE audit_logs ADD COLUMN task_id TEXT;
CREATE UNIQUE INDEX audit_logs_task_action ON audit_logs (task_id, action);
