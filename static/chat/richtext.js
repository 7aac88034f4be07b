// Python's \w is Unicode-aware, and so is this, so the page highlights what the server notifies.
const WORD = String.raw`\p{L}\p{N}_`;
// A mention: "@" not preceded by a word character or "@" (so "bob@example.com" is an address).
const MENTION = String.raw`(?<![${WORD}@])@[${WORD}.@+-]+`;
const LINK = String.raw`https?://[^\s<>"]+`;
const TOKEN = new RegExp(`(${LINK})|(${MENTION})`, "giu");
// Punctuation that usually ends the sentence around a link rather than the link itself.
const LINK_TRAILER = /[.,;:!?'")\]]+$/u;
const MENTION_TRAILER = /\.+$/u;
const SAFE_SCHEMES = new Set(["http:", "https:"]);

/** Return a fragment showing text with its links and @mentions marked, built from text nodes only. */
export function renderRichText(text, currentUser) {
  const fragment = document.createDocumentFragment();
  let done = 0;
  for (const match of text.matchAll(TOKEN)) {
    const [whole, link] = match;
    const token = whole.replace(link ? LINK_TRAILER : MENTION_TRAILER, "");
    const element = link ? linkElement(token) : mentionElement(token, currentUser);
    if (!element) continue;
    fragment.append(text.slice(done, match.index), element);
    done = match.index + token.length;
  }
  fragment.append(text.slice(done));
  return fragment;
}

function linkElement(href) {
  let url;
  try {
    url = new URL(href);
  } catch {
    return null;
  }
  if (!SAFE_SCHEMES.has(url.protocol)) return null;
  const anchor = document.createElement("a");
  anchor.href = url.href;
  anchor.rel = "noopener noreferrer";
  anchor.target = "_blank";
  anchor.textContent = href;
  return anchor;
}

function mentionElement(token, currentUser) {
  if (token.length < 2) return null;
  const span = document.createElement("span");
  span.className = token.slice(1) === currentUser ? "mention mention--me" : "mention";
  span.textContent = token;
  return span;
}
