"""Render a message body's Markdown subset to HTML that is safe to insert in the page."""
import functools
import html
import re

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from chat.domain.mentions import MENTION

# What a chat message may use (docs/protocol.md, Formatting): no headings, rules, images, tables or raw HTML.
TAGS = {"p", "br", "strong", "em", "s", "code", "pre", "blockquote", "ul", "ol", "li", "a", "span"}
ATTRIBUTES = {"a": {"href"}, "span": {"data-user"}, "ol": {"start"}}
SCHEMES = {"http", "https", "mailto"}
# Relative and scheme-less links are refused too: a message links only out, by a scheme on the list.
LINK = re.compile(r"(?i)(https?|mailto):")
# An <a> of the sanitised output, whose attributes nh3 always writes double-quoted.
LINK_HREF = re.compile(r'<a\s[^>]*?href="([^"]*)"')
# Rendering is pure: bodies read again and again (history pages) are rendered once per process.
CACHE_SIZE = 10_000


def _parser():
    parser = MarkdownIt("commonmark", {"html": False, "linkify": True, "breaks": True, "typographer": False})
    parser.enable(["strikethrough", "linkify"])
    # In a chat "# 1" or "---" under a line are text, and four spaces of indent are not code (fences are).
    parser.disable(["heading", "lheading", "hr", "code", "image", "reference", "html_block", "html_inline"])
    parser.core.ruler.push("mentions", _mark_mentions)
    return parser


def _mark_mentions(state):
    """Mark @mentions in text outside links and code, as the server notifies them (chat.domain.mentions)."""
    for block in state.tokens:
        if block.type != "inline" or not block.children:
            continue
        children, in_link = [], 0
        for token in block.children:
            in_link += {"link_open": 1, "link_close": -1}.get(token.type, 0)
            if token.type == "text" and not in_link and "@" in token.content:
                children.extend(_split_mentions(token.content))
            else:
                children.append(token)
        block.children = children


def _split_mentions(text):
    tokens, done = [], 0
    for match in MENTION.finditer(text):
        # A sentence's full stop after a name is not part of it.
        name = match.group(1).rstrip(".")
        if not name:
            continue
        end = match.start() + 1 + len(name)
        tokens.append(_text(text[done:match.start()]))
        span = Token("html_inline", "", 0)
        span.content = f'<span class="mention" data-user="{html.escape(name)}">@{html.escape(name)}</span>'
        tokens.append(span)
        done = end
    tokens.append(_text(text[done:]))
    return tokens


def _text(content):
    token = Token("text", "", 0)
    token.content = content
    return token


def _keep_attribute(tag, attribute, value):
    if tag == "a" and attribute == "href" and not LINK.match(value):
        return None
    return value


_markdown = _parser()


@functools.lru_cache(maxsize=CACHE_SIZE)
def render(body):
    """Return a message body rendered to sanitised HTML: the Markdown subset, links out and @mentions marked."""
    # The allow-list sanitiser is the guarantee; the parser's own link check and escaping come before it.
    return nh3.clean(
        _markdown.render(body),
        tags=TAGS,
        attributes=ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes=SCHEMES,
        allowed_classes={"span": {"mention"}},
        set_tag_attribute_values={"a": {"target": "_blank"}},
        link_rel="noopener noreferrer",
        strip_comments=True,
    ).strip()


def links(body):
    """Return the http and https links of a body as the page shows them (bare or written as links), in order, once each."""
    # Read off the rendered HTML, which is cached and rendered for every new message anyway: no second parse.
    found = []
    for href in LINK_HREF.findall(render(body)):
        url = html.unescape(href)
        if re.match(r"(?i)https?://", url) and url not in found:
            found.append(url)
    return tuple(found)
