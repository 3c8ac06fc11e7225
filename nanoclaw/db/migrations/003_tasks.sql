-- Scheduled tasks and their run log.
CREATE TABLE tasks (
    id                 TEXT PRIMARY KEY,          -- t- + 8 base36
    agent_group_id     TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    session_id         TEXT REFERENCES sessions(id) ON DELETE SET NULL,  -- NULL: the chat's shared session
    messaging_group_id INTEGER REFERENCES messaging_groups(id) ON DELETE SET NULL,
    thread_id          TEXT,
    prompt             TEXT NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('cron', 'interval', 'once')),
    spec               TEXT NOT NULL,             -- cron expression, seconds, or ISO time
    timezone           TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'done', 'cancelled')),
    next_run           REAL,
    last_run           REAL,
    last_result        TEXT,
    created_at         REAL NOT NULL
);
CREATE INDEX tasks_due ON tasks(status, next_run);

CREATE TABLE task_runs (
    id          INTEGER PRIMARY KEY,
    task_id     TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    session_id  TEXT,
    in_seq      INTEGER,
    started_at  REAL NOT NULL,
    finished_at REAL,
    status      TEXT NOT NULL,                    -- dispatched | done | failed
    error       TEXT
);
