-- New chats and people, one owner across chat apps.
-- How each channel meets a chat nobody wired: ask the owner (a card), answer DMs with main, pair by code, ignore.
CREATE TABLE channel_settings (
    channel_type TEXT PRIMARY KEY,
    new_chats    TEXT NOT NULL DEFAULT 'ask' CHECK (new_chats IN ('ask', 'main', 'pairing', 'ignore'))
);

-- The owner's answer about an unwired chat, remembered (NULL: not decided; wiring it answers it).
ALTER TABLE messaging_groups ADD COLUMN admission TEXT CHECK (admission IN ('ignored', 'blocked'));
-- Who a direct chat is with (the first person who wrote in it): whether cards sent there can be answered.
ALTER TABLE messaging_groups ADD COLUMN dm_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;

-- The channel a card was shown in: a press is judged by the presser's role on that channel.
ALTER TABLE approvals ADD COLUMN sent_to TEXT;

-- Messages of chats waiting for the owner's answer, answered in order once it comes (none lost, none twice:
-- the router stores each platform message id once).
CREATE TABLE held_messages (
    id                 INTEGER PRIMARY KEY,
    messaging_group_id INTEGER NOT NULL REFERENCES messaging_groups(id) ON DELETE CASCADE,
    event              TEXT NOT NULL,           -- the inbound event as JSON (files base64)
    created_at         REAL NOT NULL
);
CREATE INDEX held_by_chat ON held_messages(messaging_group_id, id);

-- One-time codes of `nanoclaw owner link`: whoever sends one becomes an owner identity. Only the hash is kept.
CREATE TABLE owner_links (
    code_hash  TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_by    TEXT,                            -- channel:user that sent it
    used_at    REAL
);
