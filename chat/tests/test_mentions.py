"""Finding @mentions in message bodies."""
import pytest

from chat.domain.mentions import mentioned_members, mentioned_usernames


@pytest.mark.parametrize(
    "body,names",
    [
        ("hi @bob", {"bob"}),
        ("@alice, @bob.", {"alice", "bob", "bob."}),
        ("mail bob@example.com", set()),
        ("@@bob", {"@bob"}),  # Django usernames may contain "@"
        ("(@carol) @dave_2 @e.f", {"carol", "dave_2", "e.f"}),
        ("no mentions", set()),
        ("@", set()),
    ],
)
def test_mentioned_usernames(body, names):
    assert mentioned_usernames(body) == names


@pytest.mark.parametrize(
    "names,expected",
    [
        ({"ocax"}, {"OcaX"}),  # typed in another case: the only member it can mean
        ({"OcaX"}, {"OcaX"}),
        ({"bob"}, {"bob"}),  # an exact match wins over Bob
        ({"BOB"}, set()),  # Bob or bob: no guess
        ({"nobody"}, set()),
        ({"ocax.", "ocax"}, {"OcaX"}),
    ],
)
def test_mentioned_members_ignore_case_when_unambiguous(names, expected):
    assert mentioned_members(names, {"OcaX", "Bob", "bob", "alice"}) == expected
