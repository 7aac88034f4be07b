"""Search: the query language, what a user may find, highlighting, ordering and the page and JSON answers.

These run on SQLite and on PostgreSQL (.ci/run runs the suite on both), each with its own index.
"""
import datetime
from html.parser import HTMLParser

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from chat.domain import search, services
from chat.domain.models import Message


@pytest.fixture
def people(make_user):
    return {name: make_user(name) for name in ("alice", "bob", "carol")}


def post(slug, author, body, **room):
    room_obj, _ = services.room_create(slug=slug, user=author, **room)
    return services.message_create(room=room_obj, author=author, body=body)[0]


def found(user, text, **options):
    results, _ = search.message_search(user=user, query=search.search_parse(text), **options)
    return [result.message.body for result in results]


def test_the_query_language_parses_words_phrases_exclusions_and_filters():
    query = search.search_parse('deploy "release notes" -friday in:#dev from:@bob before:2026-12-31 has:link')
    assert query.terms == ["deploy", "release notes"] and query.excluded == ["friday"]
    assert (query.room, query.author, query.before, query.has_link) == ("dev", "bob", datetime.date(2026, 12, 31), True)
    assert query.filters == [("in", "dev"), ("from", "bob"), ("before", "2026-12-31"), ("has", "link")]
    # Times and addresses are words, punctuation alone is nothing.
    assert search.search_parse("10:30 !!! http://x.y").terms == ["10:30", "http://x.y"]


@pytest.mark.parametrize("text", ["before:tomorrow", "after:2026-13-01", "has:image", "in:", "-alone", "x" * 501,
                                  " ".join(["w"] * 21)])
def test_a_filter_it_cannot_use_is_a_clear_error(text):
    with pytest.raises(ValidationError):
        search.search_parse(text)


def test_a_user_finds_public_rooms_and_their_own_private_rooms_and_dms_only(people):
    alice, bob, carol = people["alice"], people["bob"], people["carol"]
    post("lobby", bob, "pineapple in public")
    post("secret", bob, "pineapple in private", private=True)
    post("archive", bob, "pineapple archived")
    services.room_archive(room=services.room_join(slug="archive", user=bob)[0], actor=bob)
    direct = services.room_open_direct(user=bob, username="carol")
    services.message_create(room=direct, author=bob, body="pineapple between us")
    assert sorted(found(alice, "pineapple")) == ["pineapple archived", "pineapple in public"]
    assert sorted(found(carol, "pineapple")) == ["pineapple archived", "pineapple between us", "pineapple in public"]
    assert len(found(bob, "pineapple")) == 4


def test_deleted_messages_are_never_found_and_an_edit_is_found_by_its_new_text_only(people):
    bob = people["bob"]
    gone = post("lobby", bob, "walrus sighting")
    kept = post("lobby", bob, "narwhal sighting")
    room = gone.room
    services.message_delete(room=room, actor=bob, message_id=gone.pk)
    services.message_edit(room=room, actor=bob, message_id=kept.pk, body="beluga sighting")
    assert found(bob, "walrus") == [] and found(bob, "narwhal") == []
    assert found(bob, "beluga") == ["beluga sighting"]
    assert found(bob, "sighting") == ["beluga sighting"]


def test_words_phrases_exclusions_and_filters_narrow_the_results(people):
    alice, bob = people["alice"], people["bob"]
    post("dev", alice, "the release notes are out")
    post("dev", bob, "notes on the release: https://example.test/r")
    post("ops", bob, "release notes for ops")
    post("dev", bob, "Release day is Friday")
    assert sorted(found(alice, "release notes")) == [
        "notes on the release: https://example.test/r", "release notes for ops", "the release notes are out",
    ]
    assert sorted(found(alice, '"release notes"')) == ["release notes for ops", "the release notes are out"]
    assert found(alice, "release -notes") == ["Release day is Friday"]
    assert sorted(found(alice, "release in:dev from:bob")) == [
        "Release day is Friday", "notes on the release: https://example.test/r",
    ]
    assert found(alice, "release has:link") == ["notes on the release: https://example.test/r"]
    # Filters alone list the messages they allow, newest first.
    assert found(alice, "from:alice") == ["the release notes are out"]
    assert found(alice, "release in:nowhere") == []


def test_dates_filter_by_day_in_utc(people):
    bob = people["bob"]
    for day, body in [(1, "meeting one"), (2, "meeting two"), (3, "meeting three")]:
        message = post("lobby", bob, body)
        Message.objects.filter(pk=message.pk).update(
            created_at=datetime.datetime(2026, 3, day, 12, tzinfo=datetime.timezone.utc)
        )
    assert found(bob, "meeting after:2026-03-01 before:2026-03-03") == ["meeting two"]
    assert found(bob, "meeting before:2026-03-02") == ["meeting one"]


def test_newest_first_by_default_and_relevance_on_request(people):
    bob = people["bob"]
    post("lobby", bob, "otter otter otter, the otter is here")
    post("lobby", bob, "one otter among many other words in a long message about rivers and their banks")
    post("lobby", bob, "an otter")
    assert found(bob, "otter")[0] == "an otter"
    assert found(bob, "otter", order="relevance")[0] == "otter otter otter, the otter is here"
    with pytest.raises(ValidationError):
        found(bob, "otter", order="random")


def test_results_are_paged(people):
    bob = people["bob"]
    for n in range(5):
        post("lobby", bob, f"page marker {n}")
    first, more = search.message_search(user=bob, query=search.search_parse("marker"), limit=2)
    rest, more_after = search.message_search(user=bob, query=search.search_parse("marker"), offset=4, limit=2)
    assert [r.message.body for r in first] == ["page marker 4", "page marker 3"] and more
    assert [r.message.body for r in rest] == ["page marker 0"] and not more_after


class Tags(HTMLParser):
    """Collect the start and end tags of an HTML fragment."""

    def __init__(self, fragment):
        super().__init__()
        self.tags = []
        self.feed(fragment)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_endtag(self, tag):
        self.tags.append(("/" + tag, []))


def test_snippets_mark_the_matches_and_escape_everything_else(people):
    bob = people["bob"]
    post("lobby", bob, '<img src=x onerror=alert(1)> the falcon <b>lands</b> \x02 stray \x03\x03 <script>x</script>')
    [result], _ = search.message_search(user=bob, query=search.search_parse("falcon"))
    assert "<mark>falcon</mark>" in result.snippet
    # Only balanced <mark>s, without attributes, whatever the body holds (PostgreSQL's headline also drops tags).
    tags = Tags(result.snippet).tags
    assert {tag for tag, _ in tags} <= {"mark", "/mark"} and all(attrs == [] for _, attrs in tags)
    assert [tag for tag, _ in tags] == ["mark", "/mark"] * (len(tags) // 2)
    [plain], _ = search.message_search(user=bob, query=search.search_parse("from:bob"))
    assert Tags(plain.snippet).tags == [] and "&lt;img" in plain.snippet


def test_the_search_page_and_the_json_answer_show_the_same_results(client, people):
    bob = people["bob"]
    message = post("lobby", bob, "heron at the lake")
    client.force_login(people["alice"])
    page = client.get(reverse("chat:search"), {"q": "heron"})
    assert page.status_code == 200
    text = page.content.decode()
    assert "<mark>heron</mark> at the lake" in text and reverse("chat:message", args=["lobby", message.seq]) in text
    answer = client.get(reverse("chat:search_json"), {"q": "heron", "order": "relevance"}).json()
    assert answer["has_more"] is False
    [result] = answer["results"]
    assert (result["room"], result["author"], result["body"], result["url"]) == (
        "lobby", "bob", "heron at the lake", f"/chat/lobby/m/{message.seq}/"
    )
    refused = client.get(reverse("chat:search_json"), {"q": "before:someday"})
    assert refused.status_code == 400 and refused.json()["error"] == "invalid"
    assert client.get(reverse("chat:search"), {"q": "has:image"}).status_code == 400
