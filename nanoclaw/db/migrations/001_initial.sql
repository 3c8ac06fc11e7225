-- Entities of DESIGN §2 needed by the core pipeline.
CREATE TABLE agent_groups (
    id         TEXT PRIMARY KEY,                 -- short name, also the folder name under groups/
    name       TEXT NOT NULL,
    is_admin   INTEGER NOT NULL DEFAULT 0,
    provider   TEXT,                              -- NULL: the host default
    model      TEXT,
    created_at REAL NOT NULL
);

CREATE TABLE messaging_groups (
    id           INTEGER PRIMARY KEY,
    channel_type TEXT NOT NULL,
    platform_id  TEXT NOT NULL,
    name         TEXT,
    is_dm        INTEGER NOT NULL DEFAULT 0,
    first_seen   REAL NOT NULL,
    last_seen    REAL NOT NULL,
    UNIQUE (channel_type, platform_id)
);

CREATE TABLE wirings (
    id                 INTEGER PRIMARY KEY,
    messaging_group_id INTEGER NOT NULL REFERENCES messaging_groups(id) ON DELETE CASCADE,
    agent_group_id     TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    trigger            TEXT NOT NULL DEFAULT 'mention' CHECK (trigger IN ('mention', 'prefix', 'always', 'dm')),
    trigger_value      TEXT,                      -- the prefix for 'prefix'; another word for 'mention'
    response_scope     TEXT NOT NULL DEFAULT 'thread' CHECK (response_scope IN ('thread', 'chat')),
    session_mode       TEXT NOT NULL DEFAULT 'per-thread' CHECK (session_mode IN ('shared', 'per-thread', 'agent-shared')),
    priority           INTEGER NOT NULL DEFAULT 0,
    UNIQUE (messaging_group_id, agent_group_id)
);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    key                TEXT NOT NULL UNIQUE,      -- agent group | messaging group or * | thread
    agent_group_id     TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    messaging_group_id INTEGER REFERENCES messaging_groups(id) ON DELETE SET NULL,
    thread_id          TEXT,
    mode               TEXT NOT NULL,
    status             TEXT NOT NULL DEFAULT 'active',  -- active | quarantined
    created_at         REAL NOT NULL,
    last_active        REAL NOT NULL
);

CREATE TABLE users (
    id               INTEGER PRIMARY KEY,
    channel_type     TEXT NOT NULL,
    platform_user_id TEXT NOT NULL,
    display_name     TEXT,
    role             TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'blocked')),
    UNIQUE (channel_type, platform_user_id)
);

CREATE TABLE sender_allowlist (
    messaging_group_id INTEGER NOT NULL REFERENCES messaging_groups(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (messaging_group_id, user_id)
);

CREATE TABLE destinations (
    id                    INTEGER PRIMARY KEY,
    agent_group_id        TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    messaging_group_id    INTEGER REFERENCES messaging_groups(id) ON DELETE CASCADE,
    thread_id             TEXT,
    target_agent_group_id TEXT REFERENCES agent_groups(id) ON DELETE CASCADE,
    UNIQUE (agent_group_id, name)
);
