-- Extra host folders an agent group sees under /workspace/extra/<name> (checked against the allow-list at every spawn).
CREATE TABLE group_mounts (
    agent_group_id TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    host_path      TEXT NOT NULL,
    writable       INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    PRIMARY KEY (agent_group_id, name)
);
