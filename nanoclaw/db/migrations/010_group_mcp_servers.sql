-- MCP servers the owner approved for an agent group (add_mcp_server); the claude provider starts them.
-- config is JSON in the SDK's shape: {"type": "stdio", "command", "args", "env"} or {"type": "http"|"sse", "url"}.
CREATE TABLE group_mcp_servers (
    agent_group_id TEXT NOT NULL REFERENCES agent_groups(id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    config         TEXT NOT NULL,
    approved_at    REAL NOT NULL,
    PRIMARY KEY (agent_group_id, name)
);
