-- Where each card (question, approval, credential request) was posted, so its final state can be shown
-- on every copy, whoever decided it and wherever (a dashboard decision closes the card in the chat).
CREATE TABLE card_posts (
    card_id             TEXT NOT NULL,
    channel_type        TEXT NOT NULL,
    platform_id         TEXT NOT NULL,
    thread_id           TEXT,
    platform_message_id TEXT NOT NULL,
    text                TEXT NOT NULL,           -- the card's text as sent (edits keep it, adding the outcome)
    created_at          REAL NOT NULL,
    PRIMARY KEY (card_id, channel_type, platform_message_id)
);
