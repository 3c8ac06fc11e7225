"""Answers to questions agents asked (ask_user_question): from a card button or a plain reply.

An answer becomes an inbound `answer` row in the asking session, which wakes the
runner; a waiting tool call takes it, otherwise the agent sees it as a message.
"""

from __future__ import annotations

import secrets
import sqlite3
from typing import Awaitable, Callable

from nanoclaw.db import questions
from nanoclaw.db.questions import Question
from nanoclaw.host.sessions import SessionManager
from nanoclaw.logs import get_logger

log = get_logger("nanoclaw.host.questions")


class QuestionDesk:
    def __init__(self, conn: sqlite3.Connection, sessions: SessionManager, wake: Callable[[str], Awaitable[None]]) -> None:
        self.conn = conn
        self.sessions = sessions
        self.wake = wake
        self.closed: Callable[[str, str], Awaitable[None]] | None = None  # (card id, outcome): CardBoard.close

    async def answer(self, question_id: str, value: str, sender_id: str) -> str | None:
        """Take an answer; returns an error text for the person when it cannot be taken."""
        question = questions.get(self.conn, question_id)
        if question is None:
            return "That question does not exist (any more)."
        if not questions.mark_answered(self.conn, question_id, value, sender_id):
            return "That question was already answered or has expired."
        end = self.sessions.end(question.session_id)
        end.append(
            id=f"answer:{question_id}:{secrets.token_hex(4)}", kind="answer", text=value, trigger=True,
            sender_id=sender_id, sender_name=sender_id,
            payload={"question_id": question_id, "question": question.question},
        )
        log.info("question.answered", question=question_id, session=question.session_id)
        if self.closed is not None:
            await self.closed(question_id, f"✅ Answered: {value}")
        await self.wake(question.session_id)
        return None

    def open_questions(self, messaging_group_id: int) -> list[Question]:
        """A chat's open, unexpired questions, newest first (a plain reply answers the first)."""
        return questions.open_for_chat(self.conn, messaging_group_id)

    @staticmethod
    def interpret(question: Question, text: str) -> str:
        """'2' picks the second option; anything else is the answer as written."""
        stripped = text.strip()
        if stripped.isdigit() and 1 <= int(stripped) <= len(question.options):
            return question.options[int(stripped) - 1]
        for option in question.options:
            if option.lower() == stripped.lower():
                return option
        return stripped

    def close_all_open(self) -> list[str]:
        """At startup nobody waits for earlier questions any more; returns their ids."""
        return [q.id for q in questions.expire(self.conn, all_open=True)]
