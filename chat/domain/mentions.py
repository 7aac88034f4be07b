"""Find the @username mentions in a message body."""
import re

# A mention starts at a word boundary: "bob@example" is an address, not a mention.
MENTION = re.compile(r"(?<![\w@])@([\w.@+-]+)")


def mentioned_usernames(body):
    """Return the usernames a body mentions, allowing for trailing sentence punctuation."""
    names = set()
    for match in MENTION.finditer(body):
        name = match.group(1)
        names.update({name, name.rstrip(".")})
    names.discard("")
    return names


def mentioned_members(names, usernames):
    """Return which of `usernames` the mentioned `names` mean: an exact match, else the only one equal ignoring case."""
    # Usernames are case-sensitive, but people type "@bob" for "Bob"; where two
    # members differ only in case, a guess could notify the wrong one.
    by_lowered = {}
    for username in usernames:
        by_lowered.setdefault(username.lower(), []).append(username)
    members = set()
    for name in names:
        if name in usernames:
            members.add(name)
        elif len(matches := by_lowered.get(name.lower(), [])) == 1:
            members.update(matches)
    return members
