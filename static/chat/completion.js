import { loadEmoji } from "./reactions.js";

// What is being typed just before the caret: "@ad" (a member) or ":thu" (an emoji by its name, two letters at least,
// so that "10:30" offers nothing). The same word rules as the server's mentions (chat/domain/mentions.py).
const MENTION = /(?:^|[^\p{L}\p{N}_@])@([\p{L}\p{N}_.@+-]{1,150})$/u;
const SHORTCODE = /(?:^|\s):([a-z0-9_+-]{2,30})$/u;
const SHOWN = 8;

/** Return the token the caret ends, as {kind: "mention" | "emoji", query, start}, or null. */
export function tokenBefore(text) {
  const mention = MENTION.exec(text);
  if (mention) return { kind: "mention", query: mention[1], start: text.length - mention[1].length - 1 };
  const shortcode = SHORTCODE.exec(text);
  if (shortcode) return { kind: "emoji", query: shortcode[1], start: text.length - shortcode[1].length - 1 };
  return null;
}

/** Return up to `limit` emoji whose words contain `query` (":thumbs_up" types "thumbs up"), those starting with it first. */
export function matchEmoji(choices, query, limit = SHOWN) {
  const wanted = query.toLowerCase().replaceAll("_", " ");
  const starting = [];
  const containing = [];
  for (const [emoji, words] of choices) {
    const at = words.indexOf(wanted);
    if (at === 0 || (at > 0 && words[at - 1] === " ")) starting.push(emoji);
    else if (at > 0) containing.push(emoji);
    if (starting.length >= limit) break;
  }
  return [...starting, ...containing].slice(0, limit);
}

/**
 * Offer completions in the composer: members' names after "@", emoji after ":". Arrow keys move, Enter or Tab
 * takes one, Escape closes; while the list is open, Enter does not send.
 */
export function setupCompletion(textarea, list, { membersUrl, emojiUrl }) {
  let options = [];
  let active = 0;
  let token = null;
  let asked = 0; // the latest lookup: answers to earlier ones are dropped

  const close = () => {
    options = [];
    token = null;
    list.hidden = true;
    list.replaceChildren();
    textarea.setAttribute("aria-expanded", "false");
    textarea.removeAttribute("aria-activedescendant");
  };

  const show = () => {
    if (!options.length) return close();
    list.replaceChildren(...options.map((option, index) => {
      const item = document.createElement("li");
      item.id = `completion-${index}`;
      item.className = "completion__option";
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", String(index === active));
      item.textContent = option.label;
      // Chosen on pointerdown, before the textarea loses its focus to the list.
      item.addEventListener("pointerdown", (event) => {
        event.preventDefault();
        take(index);
      });
      return item;
    }));
    list.hidden = false;
    textarea.setAttribute("aria-expanded", "true");
    textarea.setAttribute("aria-activedescendant", `completion-${active}`);
  };

  const take = (index) => {
    const option = options[index];
    if (!option || !token) return;
    const before = textarea.value.slice(0, textarea.selectionStart);
    const after = textarea.value.slice(textarea.selectionStart);
    const done = `${before.slice(0, token.start)}${option.insert} `;
    textarea.value = done + after;
    textarea.setSelectionRange(done.length, done.length);
    close();
  };

  const lookUp = async () => {
    const found = tokenBefore(textarea.value.slice(0, textarea.selectionStart));
    const ask = ++asked;
    if (!found) return close();
    let next;
    if (found.kind === "mention") {
      const names = await fetchNames(membersUrl, found.query);
      next = names.map((name) => ({ label: name, insert: `@${name}` }));
    } else {
      const emoji = matchEmoji(await loadEmoji(emojiUrl), found.query);
      next = emoji.map((character) => ({ label: character, insert: character }));
    }
    if (ask !== asked) return;
    token = found;
    options = next;
    active = 0;
    show();
  };

  textarea.setAttribute("aria-autocomplete", "list");
  textarea.setAttribute("aria-controls", list.id);
  textarea.setAttribute("aria-expanded", "false");
  textarea.addEventListener("input", lookUp);
  textarea.addEventListener("blur", close);
  // Registered for the capture phase, so it runs before the composer's own Enter (which sends).
  textarea.addEventListener("keydown", (event) => {
    if (list.hidden || !options.length) return;
    const moves = { ArrowDown: 1, ArrowUp: -1 };
    if (event.key in moves) {
      active = (active + moves[event.key] + options.length) % options.length;
      show();
    } else if ((event.key === "Enter" && !event.shiftKey) || event.key === "Tab") {
      take(active);
    } else if (event.key === "Escape") {
      close();
    } else {
      return;
    }
    event.preventDefault();
    event.stopImmediatePropagation();
  }, { capture: true });
}

async function fetchNames(url, prefix) {
  try {
    const response = await fetch(`${url}?${new URLSearchParams({ q: prefix })}`, { credentials: "same-origin" });
    if (!response.ok) return [];
    const { users } = await response.json();
    return Array.isArray(users) ? users : [];
  } catch {
    return [];
  }
}
