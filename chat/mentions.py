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
