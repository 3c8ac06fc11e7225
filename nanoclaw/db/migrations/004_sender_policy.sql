-- Who may talk in a chat (open | allowlist | ask), and approvals waiting for the owner.
ALTER TABLE messaging_groups ADD COLUMN sender_policy TEXT NOT NULL DEFAULT 'open'
    CHECK (sender_policy IN ('open', 'allowlist', 'ask'));

CREATE TABLE sender_denylist (
    messaging_group_id INTEGER NOT NULL REFERENCES messaging_groups(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (messaging_group_id, user_id)
);

-- A card waiting for the owner's decision. id: oa- + 8 base36 (fits Telegram's callback data).
CREATE TABLE approvals (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,                     -- sender (later: request, install_packages, …)
    subject    TEXT NOT NULL,                     -- what is decided, for dedupe: e.g. chat id + sender
    payload    TEXT NOT NULL DEFAULT '{}',        -- JSON: what to do on approval (held messages …)
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'approved', 'denied', 'expired')),
    decided_by TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX approvals_open ON approvals(kind, subject, status);
