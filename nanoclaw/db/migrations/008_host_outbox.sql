-- Messages from the host itself (approval cards, notices) waiting for their channel: kept across restarts.
CREATE TABLE host_outbox (
    id           TEXT PRIMARY KEY,           -- the message id: stable, so a resend is recognisable
    channel_type TEXT NOT NULL,
    message      TEXT NOT NULL,              -- JSON of the outgoing message (no files)
    created_at   REAL NOT NULL
);
CREATE INDEX host_outbox_channel ON host_outbox (channel_type, created_at);
