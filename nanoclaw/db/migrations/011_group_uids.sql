-- On a root host each agent group runs as its own uid (NANOCLAW_SANDBOX_UID_BASE + uid_offset), so
-- groups share no per-user kernel limits with each other or with a person's account. Offsets are
-- never reused while the row exists; existing groups get theirs in creation order.
ALTER TABLE agent_groups ADD COLUMN uid_offset INTEGER;
UPDATE agent_groups SET uid_offset = (SELECT count(*) FROM agent_groups g WHERE g.rowid <= agent_groups.rowid);
CREATE UNIQUE INDEX agent_groups_uid_offset ON agent_groups(uid_offset);
