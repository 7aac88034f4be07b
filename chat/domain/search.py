"""Message search: words, phrases and filters over the messages a user may read, on SQLite (FTS5) and PostgreSQL.

The query language is the search box's: words and "quoted phrases" that must all appear, -word to leave one out,
and the filters in:<room>, from:<user>, before:<date>, after:<date> (YYYY-MM-DD, UTC) and has:link. Each database
has its own index (migration 0007: an FTS5 table on SQLite, a generated tsvector column on PostgreSQL) with its
own ranking and highlighting; both answer through message_search.
"""
import dataclasses
import datetime
import html
import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import BooleanField, FloatField, Q
from django.db.models.expressions import RawSQL

from chat.domain.models import Message, Room

MAX_QUERY_LENGTH = 500
MAX_TERMS = 20
# Results per page, and the furthest page one may ask for (deep offsets cost the database every row before them).
PAGE_SIZE = 20
MAX_OFFSET = 1000
ORDERS = ("newest", "relevance")
FILTERS = ("in", "from", "before", "after", "has")
# The highlighting functions mark matches with these; they become <mark> once the text is escaped.
START, STOP = "\x02", "\x03"
# A message without words to match shows this much of its body.
PLAIN_SNIPPET_CHARS = 200
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


# SQLite's index (migration 0007) is kept in step with chat_message by triggers, so that every way of writing a
# message (the ORM, the hand-written inserts) updates it in the same transaction.
SQLITE_TRIGGERS = {
    "chat_message_fts_insert": "AFTER INSERT ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(rowid, body) VALUES (new.id, new.body); END",
    "chat_message_fts_delete": "AFTER DELETE ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(chat_message_fts, rowid, body) VALUES ('delete', old.id, old.body); END",
    "chat_message_fts_update": "AFTER UPDATE OF body ON chat_message BEGIN"
    " INSERT INTO chat_message_fts(chat_message_fts, rowid, body) VALUES ('delete', old.id, old.body);"
    " INSERT INTO chat_message_fts(rowid, body) VALUES (new.id, new.body); END",
}


def sqlite_index_ensure(db):
    """Make SQLite's search triggers where they are missing, and rebuild the index then; return whether it did."""
    # A migration that rebuilds chat_message (SQLite alters a table by copying it) drops its triggers with it.
    with db.cursor() as cursor:
        cursor.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'trigger') AND name LIKE 'chat_message_fts%'")
        present = {name for (name,) in cursor.fetchall()}
        if "chat_message_fts" not in present or present >= set(SQLITE_TRIGGERS):
            return False
        for name, definition in SQLITE_TRIGGERS.items():
            cursor.execute(f"CREATE TRIGGER IF NOT EXISTS {name} {definition}")
        cursor.execute("INSERT INTO chat_message_fts(chat_message_fts) VALUES ('rebuild')")
    return True


@dataclasses.dataclass
class SearchQuery:
    """A parsed search: the words and phrases to find, those to leave out, and the filters."""

    terms: list = dataclasses.field(default_factory=list)
    excluded: list = dataclasses.field(default_factory=list)
    room: str | None = None
    author: str | None = None
    before: datetime.date | None = None
    after: datetime.date | None = None
    has_link: bool = False

    @property
    def filters(self):
        """Return the filters as (name, value) chips, in the order the box offers them."""
        chips = [("in", self.room), ("from", self.author), ("before", self.before), ("after", self.after)]
        chips = [(name, str(value)) for name, value in chips if value is not None]
        return chips + [("has", "link")] * self.has_link


def search_parse(text):
    """Return the SearchQuery a search box's text asks for; ValidationError for a filter it cannot use."""
    if len(text) > MAX_QUERY_LENGTH:
        raise ValidationError(f"A search is at most {MAX_QUERY_LENGTH} characters.", code="too_long")
    query = SearchQuery()
    for negated, phrase, word in _TOKEN.findall(text):
        name, colon, value = word.partition(":")
        if colon and name.lower() in FILTERS:
            _apply_filter(query, name.lower(), value)
            continue
        if word:
            negated, phrase = ("-", word[1:]) if word.startswith("-") else ("", word)
        term = " ".join(phrase.replace('"', " ").split())
        # Only word characters are indexed: a term of punctuation alone would match nothing or everything.
        if re.search(r"\w", term):
            (query.excluded if negated else query.terms).append(term)
    if len(query.terms) + len(query.excluded) > MAX_TERMS:
        raise ValidationError(f"A search takes at most {MAX_TERMS} words and phrases.", code="too_many")
    if query.excluded and not query.terms:
        raise ValidationError("Give a word to search for besides the ones to leave out.", code="only_excluded")
    return query


def _apply_filter(query, name, value):
    if not value:
        raise ValidationError(f"{name}: needs a value, as in {name}:{_EXAMPLES[name]}.", code="invalid_filter")
    if name == "in":
        query.room = value.lstrip("#").lower()
    elif name == "from":
        query.author = value.lstrip("@")
    elif name == "has":
        if value.lower() != "link":
            raise ValidationError("has: takes only link, as in has:link.", code="invalid_filter")
        query.has_link = True
    else:
        try:
            setattr(query, name, datetime.date.fromisoformat(value))
        except ValueError:
            raise ValidationError(
                f"{name}: takes a date as YYYY-MM-DD, as in {name}:{_EXAMPLES[name]}.", code="invalid_filter"
            ) from None


_EXAMPLES = {"in": "general", "from": "alice", "before": "2026-12-31", "after": "2026-01-01", "has": "link"}


@dataclasses.dataclass
class SearchResult:
    """A message found, with its snippet: the body's matching part as HTML, the matches in <mark>."""

    message: Message
    snippet: str


def message_search(*, user, query, order="newest", offset=0, limit=PAGE_SIZE):
    """Return (the page of results, has_more): the messages matching `query` that `user` may read, not deleted."""
    if order not in ORDERS:
        raise ValidationError(f"Order results by {' or '.join(ORDERS)}.", code="invalid_order")
    if not 0 <= offset <= MAX_OFFSET:
        raise ValidationError(f"Results go at most {MAX_OFFSET} deep: narrow the search.", code="too_deep")
    backend = _backend()
    messages = _filtered(user, query)
    if query.terms:
        messages = backend.matching(messages, query)
    if order == "relevance" and query.terms:
        messages = backend.ranked(messages, query)
    else:
        messages = messages.order_by(*backend.newest)
    page = list(messages.select_related("author", "room")[offset: offset + limit + 1])
    page, has_more = page[:limit], len(page) > limit
    marked = backend.highlights([m.pk for m in page], query) if query.terms else {}
    return [SearchResult(m, _snippet_html(marked.get(m.pk), m.body)) for m in page], has_more


def _filtered(user, query):
    """Return the messages `user` may read that pass the query's filters: public rooms, and rooms they belong to."""
    readable = Room.objects.filter(Q(is_private=False) | Q(memberships__user=user)).values("pk")
    messages = Message.objects.filter(is_deleted=False, room__in=readable)
    if query.room:
        messages = messages.filter(room__slug=query.room)
    if query.author:
        messages = messages.filter(author__username__iexact=query.author)
    if query.before:
        messages = messages.filter(created_at__lt=_day_start(query.before))
    if query.after:
        messages = messages.filter(created_at__gte=_day_start(query.after + datetime.timedelta(days=1)))
    if query.has_link:
        messages = messages.filter(Q(body__icontains="http://") | Q(body__icontains="https://"))
    return messages


def _day_start(day):
    return datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.timezone.utc)


def _snippet_html(marked, body):
    """Return HTML of a highlighted snippet (or the start of `body`): the text escaped, the matches in <mark>."""
    if marked is None:
        text = body if len(body) <= PLAIN_SNIPPET_CHARS else body[:PLAIN_SNIPPET_CHARS] + "…"
        return html.escape(text.replace(START, "").replace(STOP, ""))
    # A body may hold the marker characters itself: only alternate ones open and close a mark, so the HTML
    # stays well formed whatever was typed.
    parts, open_mark = [], False
    for part in re.split(f"([{START}{STOP}])", marked):
        if part in (START, STOP):
            if (part == START) != open_mark:
                parts.append("</mark>" if open_mark else "<mark>")
                open_mark = not open_mark
        else:
            parts.append(html.escape(part))
    return "".join(parts) + ("</mark>" if open_mark else "")


class SQLiteSearch:
    """FTS5 over chat_message_fts: bm25 ranking, snippet() highlighting."""

    table = "chat_message_fts"
    # Ids grow with each insert: SQLite walks them backwards, checking each against the matches, and stops at a
    # page (8 ms for two common words in 200,000 messages, bench.search, where sorting by time collects them all).
    newest = ("-id",)

    def expression(self, query):
        """Return the FTS5 query of the terms: each a quoted phrase, all required, the excluded with NOT."""
        phrase = '"{}"'.format
        return " ".join(map(phrase, query.terms)) + "".join(f" NOT {phrase(term)}" for term in query.excluded)

    def matching(self, messages, query):
        return messages.filter(id__in=RawSQL(
            f"SELECT rowid FROM {self.table} WHERE {self.table} MATCH %s", [self.expression(query)]
        ))

    def ranked(self, messages, query):
        rank = RawSQL(
            f"(SELECT rank FROM {self.table} WHERE {self.table} MATCH %s AND rowid = chat_message.id)",
            [self.expression(query)], output_field=FloatField(),
        )
        # bm25 is lower for better matches.
        return messages.annotate(rank=rank).order_by("rank", *self.newest)

    def highlights(self, ids, query):
        if not ids:
            return {}
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT rowid, snippet({self.table}, 0, %s, %s, '…', 24) FROM {self.table}"
                f" WHERE {self.table} MATCH %s AND rowid IN ({', '.join(['%s'] * len(ids))})",
                [START, STOP, self.expression(query), *ids],
            )
            return dict(cursor.fetchall())


class PostgreSQLSearch:
    """The generated tsvector column chat_message.search: websearch_to_tsquery, ts_rank, ts_headline."""

    headline_options = f"StartSel={START}, StopSel={STOP}, MaxWords=30, MinWords=12, MaxFragments=2"
    # By time, not by id: by the primary key PostgreSQL walks it backwards past every message for a rare word
    # (310 ms against 6 ms in 1,000,000 messages, bench.search), where by time it sorts only the index's matches.
    newest = ("-created_at", "-id")

    def text(self, query):
        """Return the websearch_to_tsquery text of the terms: each quoted, the excluded with a minus."""
        return " ".join([*(f'"{t}"' for t in query.terms), *(f'-"{t}"' for t in query.excluded)])

    def params(self, query):
        return [settings.CHAT_SEARCH_CONFIG, self.text(query)]

    def matching(self, messages, query):
        return messages.filter(RawSQL(
            "chat_message.search @@ websearch_to_tsquery(%s::regconfig, %s)", self.params(query),
            output_field=BooleanField(),
        ))

    def ranked(self, messages, query):
        rank = RawSQL(
            "ts_rank(chat_message.search, websearch_to_tsquery(%s::regconfig, %s))", self.params(query),
            output_field=FloatField(),
        )
        return messages.annotate(rank=rank).order_by("-rank", *self.newest)

    def highlights(self, ids, query):
        if not ids:
            return {}
        with connection.cursor() as cursor:
            # Only the page's rows: ts_headline re-parses each body, too slow to run on every match.
            cursor.execute(
                "SELECT id, ts_headline(%s::regconfig, body, websearch_to_tsquery(%s::regconfig, %s), %s)"
                " FROM chat_message WHERE id = ANY(%s)",
                [settings.CHAT_SEARCH_CONFIG, *self.params(query), self.headline_options, ids],
            )
            return dict(cursor.fetchall())


_BACKENDS = {"sqlite": SQLiteSearch(), "postgresql": PostgreSQLSearch()}


def _backend():
    try:
        return _BACKENDS[connection.vendor]
    except KeyError:
        raise NotImplementedError(f"Message search supports SQLite and PostgreSQL, not {connection.vendor}.") from None
