-- Questions an agent asked a person (ask_user_question), waiting for an answer.
CREATE TABLE pending_questions (
    id                  TEXT PRIMARY KEY,         -- q- + 8 base36: fits Telegram's 64-byte callback data
    session_id          TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    messaging_group_id  INTEGER REFERENCES messaging_groups(id) ON DELETE CASCADE,
    thread_id           TEXT,
    question            TEXT NOT NULL,
    options             TEXT NOT NULL DEFAULT '[]',
    platform_message_id TEXT,
    status              TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'expired')),
    answer              TEXT,
    answered_by         TEXT,
    created_at          REAL NOT NULL,
    expires_at          REAL NOT NULL
);
CREATE INDEX pending_questions_open ON pending_questions(messaging_group_id, status);
