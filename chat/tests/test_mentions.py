"""Finding @mentions in message bodies."""
import pytest

from chat.mentions import mentioned_usernames


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
