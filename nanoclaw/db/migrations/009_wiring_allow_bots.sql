-- Messages written by bots (ourselves included) trigger an agent only where a wiring allows it,
-- so two assistants in one chat cannot answer each other forever.
ALTER TABLE wirings ADD COLUMN allow_bots INTEGER NOT NULL DEFAULT 0;
