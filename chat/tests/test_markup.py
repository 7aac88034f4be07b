"""The Markdown subset of messages, and that nothing executable or off-scheme comes out of it."""
import html.parser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.domain.markup import ATTRIBUTES, TAGS, render
from chat.domain.models import MAX_BODY_LENGTH

# Each attribute the output may carry, beyond ATTRIBUTES: the sanitiser sets these itself.
SET_BY_SANITISER = {"a": {"rel", "target"}, "span": {"class"}}
HREF_SCHEMES = ("http:", "https:", "mailto:")


class Elements(html.parser.HTMLParser):
    """Collect every start tag of a fragment with its attributes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.elements = []

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def assert_inert(output):
    """Fail unless the fragment has only allowed tags and attributes, and links only by an allowed scheme."""
    parser = Elements()
    parser.feed(output)
    parser.close()
    for tag, attrs in parser.elements:
        assert tag in TAGS, (tag, output)
        allowed = ATTRIBUTES.get(tag, set()) | SET_BY_SANITISER.get(tag, set())
        assert set(attrs) <= allowed, (tag, attrs, output)
        if "href" in attrs:
            assert attrs["href"].lower().startswith(HREF_SCHEMES), (attrs, output)
        if "class" in attrs:
            assert attrs["class"] == "mention", (attrs, output)
        if tag == "a":
            assert attrs.get("rel") == "noopener noreferrer" and attrs.get("target") == "_blank", (attrs, output)


@pytest.mark.parametrize("body, expected", [
    ("**bold** and __bold__", "<p><strong>bold</strong> and <strong>bold</strong></p>"),
    ("*italic* and _italic_", "<p><em>italic</em> and <em>italic</em></p>"),
    ("~~struck~~", "<p><s>struck</s></p>"),
    ("`a < b`", "<p><code>a &lt; b</code></p>"),
    ("```\nif a < b:\n    pass\n```", "<pre><code>if a &lt; b:\n    pass\n</code></pre>"),
    ("```python\nx = 1\n```", "<pre><code>x = 1\n</code></pre>"),
    ("> quoted", "<blockquote>\n<p>quoted</p>\n</blockquote>"),
    ("- one\n- two", "<ul>\n<li>one</li>\n<li>two</li>\n</ul>"),
    ("3. three\n4. four", '<ol start="3">\n<li>three</li>\n<li>four</li>\n</ol>'),
    ("line one\nline two", "<p>line one<br>\nline two</p>"),
    ("[docs](https://example.com/a?b=1&c=2)",
     '<p><a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer">docs</a></p>'),
    ("see https://example.com/x.", '<p>see <a href="https://example.com/x" target="_blank"'
     ' rel="noopener noreferrer">https://example.com/x</a>.</p>'),
    ("[mail](mailto:ada@example.com)",
     '<p><a href="mailto:ada@example.com" target="_blank" rel="noopener noreferrer">mail</a></p>'),
    ("hi @bob.", '<p>hi <span class="mention" data-user="bob">@bob</span>.</p>'),
    ("ada@example.com is an address", '<p><a href="mailto:ada@example.com" target="_blank" rel="noopener noreferrer">'
     "ada@example.com</a> is an address</p>"),
    ("`@bob` in code", "<p><code>@bob</code> in code</p>"),
    # What chat users type that Markdown would turn into something else stays as typed.
    ("# 1 on the list\n---", "<p># 1 on the list<br>\n---</p>"),
    ("    four spaces", "<p>four spaces</p>"),
    ("![a cat](https://example.com/cat.png)",
     '<p>!<a href="https://example.com/cat.png" target="_blank" rel="noopener noreferrer">a cat</a></p>'),
    ("<b>not bold</b>", "<p>&lt;b&gt;not bold&lt;/b&gt;</p>"),
])
def test_the_subset_renders_as_documented(body, expected):
    assert render(body) == expected
    assert_inert(render(body))


def test_a_mention_inside_a_link_is_not_marked():
    output = render("[ask @bob](https://example.com/@bob)")
    assert "mention" not in output and "@bob" in output


# The OWASP XSS filter evasion cheat sheet's vectors that apply to a text field, and Markdown's own.
HOSTILE = [
    "<script>alert('XSS')</script>",
    '<SCRIPT SRC=http://xss.rocks/xss.js></SCRIPT>',
    "javascript:/*--></title></style></textarea></script></xmp><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<IMG SRC=JaVaScRiPt:alert('XSS')>",
    "<IMG SRC=`javascript:alert(\"RSnake says, 'XSS'\")`>",
    '<a onmouseover="alert(document.cookie)">xxs link</a>',
    '<IMG """><SCRIPT>alert("XSS")</SCRIPT>"\\>',
    "<IMG SRC=# onmouseover=\"alert('xxs')\">",
    '<IMG SRC=/ onerror="alert(String.fromCharCode(88,83,83))"></img>',
    "<img src=x onerror=\"&#0000106&#0000097&#0000118&#0000097&#0000115&#0000099&#0000114&#0000105&#0000112&#0000116"
    "&#0000058&#0000097&#0000108&#0000101&#0000114&#0000116&#0000040&#0000039&#0000088&#0000083&#0000083&#0000039"
    "&#0000041\">",
    "<IMG SRC=&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;&#97;&#108;&#101;&#114;&#116;&#40;"
    "&#39;&#88;&#83;&#83;&#39;&#41;>",
    "<IMG SRC=\"jav\tascript:alert('XSS');\">",
    "<IMG SRC=\"jav&#x0A;ascript:alert('XSS');\">",
    "<IMG SRC=\" &#14;  javascript:alert('XSS');\">",
    '<SCRIPT/XSS SRC="http://xss.rocks/xss.js"></SCRIPT>',
    '<BODY onload!#$%&()*~+-_.,:;?@[/|\\]^`=alert("XSS")>',
    '<<SCRIPT>alert("XSS");//\\<</SCRIPT>',
    "<iframe src=http://xss.rocks/scriptlet.html <",
    '</TITLE><SCRIPT>alert("XSS");</SCRIPT>',
    "<INPUT TYPE=\"IMAGE\" SRC=\"javascript:alert('XSS');\">",
    "<svg/onload=alert('XSS')>",
    "<LINK REL=\"stylesheet\" HREF=\"javascript:alert('XSS');\">",
    "<STYLE>@import'http://xss.rocks/xss.css';</STYLE>",
    "<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;url=javascript:alert('XSS');\">",
    "<DIV STYLE=\"background-image: url(javascript:alert('XSS'))\">",
    '<OBJECT TYPE="text/x-scriptlet" DATA="http://xss.rocks/scriptlet.html"></OBJECT>',
    '<a href="javascript:alert(1)">x</a>',
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x](&#x6A;avascript:alert(1))",
    "[x](java%0ascript:alert(1))",
    "[x](java\tscript:alert(1))",
    "[x](<javascript:alert(1)>)",
    "[x]( javascript:alert(1) )",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "[x](file:///etc/passwd)",
    "[x](//evil.example/)",
    "[x](/admin/)",
    "<javascript:alert(1)>",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "[x](https://example.com/\"onmouseover=\"alert(1))",
    '[x](https://example.com "title" onclick="alert(1)")',
    "[<img src=x onerror=alert(1)>](https://example.com)",
    "**<img src=x onerror=alert(1)>**",
    "```\n</code></pre><script>alert(1)</script>\n```",
    "`</code><script>alert(1)</script>`",
    "@<script>alert(1)</script>",
    '@"onmouseover="alert(1)',
    "@bob\"><script>alert(1)</script>",
    "[x]: javascript:alert(1)\n\n[y][x]",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
]


@pytest.mark.parametrize("body", HOSTILE)
def test_nothing_executable_or_off_scheme_comes_out(body):
    output = render(body)
    assert_inert(output)
    # As text ("&lt;script", "javascript:" in a paragraph) it is harmless; as markup it must not come out.
    assert "<script" not in output.lower()


# Nesting and unclosed markup at the length limit: the parser's nesting bound keeps each one shallow.
NESTED = [
    "> " * (MAX_BODY_LENGTH // 2),
    "- " * (MAX_BODY_LENGTH // 2),
    "*" * MAX_BODY_LENGTH,
    "**a" * (MAX_BODY_LENGTH // 3),
    "[" * MAX_BODY_LENGTH,
    "[a](" * (MAX_BODY_LENGTH // 4),
    "`" * MAX_BODY_LENGTH,
    "<" * MAX_BODY_LENGTH,
    "~~" * (MAX_BODY_LENGTH // 2),
    "1. " * (MAX_BODY_LENGTH // 3),
    "@" * MAX_BODY_LENGTH,
    ("> - " * 40 + "*_~~`x") * 20,
]


@pytest.mark.parametrize("body", NESTED, ids=lambda body: repr(body[:8]))
def test_deep_or_unclosed_markup_at_the_length_limit_renders_inert(body):
    assert len(body) <= MAX_BODY_LENGTH
    assert_inert(render(body))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("*_~`>-[]()<>!@#:/\\\"' \n\tabjavscriptJS1.&;=")), max_size=300))
def test_any_text_of_markup_characters_renders_inert(body):
    assert_inert(render(body))
