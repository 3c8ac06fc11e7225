-- Debian packages the owner approved for an agent group's image (podman/docker runtimes).
CREATE TABLE group_packages (
    agent_group_id TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    package        TEXT NOT NULL,
    approved_at    REAL NOT NULL,
    PRIMARY KEY (agent_group_id, package)
);
