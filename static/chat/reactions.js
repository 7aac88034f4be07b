// The emoji people pick first: offered before any search, after the user's own recent ones.
const STARTERS = ["👍", "❤️", "😂", "🎉", "😮", "😢", "🙏", "👀"];
const RECENT_KEY = "chat.recentEmoji";
const RECENT_COUNT = 16;
const SHOWN_COUNT = 64;
const loads = new Map(); // url -> the promise of its [emoji, words][]

/** Return the emoji the server offers (/chat/emoji.json) as [emoji, words][], fetched once per page; [] on failure. */
export function loadEmoji(url) {
  if (!loads.has(url)) {
    const load = fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : []))
      .catch(() => []);
    loads.set(url, load);
  }
  return loads.get(url);
}

/** Return the reactions bar of a message: one toggle per emoji with its count; who reacted shows on hover and focus. */
export function reactionsElement(message, username, onToggle) {
  const bar = document.createElement("div");
  bar.className = "reactions";
  for (const { emoji, count, users } of message.reactions ?? []) {
    const mine = users.includes(username);
    const button = document.createElement("button");
    button.type = "button";
    button.className = mine ? "reaction reaction--mine" : "reaction";
    button.setAttribute("aria-pressed", String(mine));
    const others = count - users.length;
    const who = users.join(", ") + (others > 0 ? ` and ${others} more` : "");
    button.title = `${who} reacted with ${emoji}`;
    button.setAttribute("aria-label", `${emoji} ${count}: ${who}`);
    button.append(textSpan("reaction__emoji", emoji), textSpan("reaction__count", String(count)));
    button.addEventListener("click", () => onToggle(emoji, !mine));
    bar.append(button);
  }
  return bar;
}

/** The emoji picker: one per page, opened beside a message's React button; search by name, recent ones first. */
export class EmojiPicker {
  #choices = null; // [emoji, words][], fetched on first open
  #onPick = null;
  #opener = null;

  constructor(url) {
    this.url = url;
    this.element = document.createElement("div");
    this.element.className = "emoji-picker";
    this.element.setAttribute("role", "dialog");
    this.element.setAttribute("aria-label", "Pick a reaction");
    this.element.hidden = true;
    this.search = document.createElement("input");
    this.search.type = "search";
    this.search.className = "emoji-picker__search";
    this.search.placeholder = "Search emoji";
    this.search.setAttribute("aria-label", "Search emoji");
    this.grid = document.createElement("div");
    this.grid.className = "emoji-picker__grid";
    this.element.append(this.search, this.grid);
    document.body.append(this.element);
    this.search.addEventListener("input", () => this.#show());
    this.search.addEventListener("keydown", (event) => {
      if (event.key !== "Enter") return;
      // Else the Enter would go on to the React button, which has the focus back by then, and open the picker again.
      event.preventDefault();
      this.grid.querySelector("button")?.click();
    });
    this.element.addEventListener("keydown", (event) => {
      if (event.key === "Escape") this.close();
    });
    document.addEventListener("pointerdown", (event) => {
      if (!this.element.hidden && !this.element.contains(event.target) && event.target !== this.#opener) this.close();
    });
  }

  /** Open beside `opener`; onPick(emoji) runs with the chosen one. */
  async open(opener, onPick) {
    this.#opener = opener;
    this.#onPick = onPick;
    this.search.value = "";
    this.element.hidden = false;
    // Below the button, or above it when the window ends first.
    const box = opener.getBoundingClientRect();
    const height = this.element.offsetHeight;
    const below = box.bottom + 4 + height <= window.innerHeight;
    this.element.style.top = `${Math.max(8, below ? box.bottom + 4 : box.top - 4 - height)}px`;
    this.element.style.left = `${Math.max(8, Math.min(box.left, window.innerWidth - this.element.offsetWidth - 8))}px`;
    this.#show();
    this.search.focus();
    if (this.#choices === null) {
      this.#choices = await loadEmoji(this.url);
      this.#show();
    }
  }

  close() {
    if (this.element.hidden) return;
    this.element.hidden = true;
    this.#opener?.focus();
    this.#opener = null;
  }

  #show() {
    const words = this.search.value.trim().toLowerCase();
    let shown;
    if (!words) {
      shown = [...new Set([...recentEmoji(), ...STARTERS, ...(this.#choices ?? []).map(([emoji]) => emoji)])];
    } else {
      shown = (this.#choices ?? []).filter(([, names]) => names.includes(words)).map(([emoji]) => emoji);
    }
    this.grid.replaceChildren(...shown.slice(0, SHOWN_COUNT).map((emoji) => this.#button(emoji)));
  }

  #button(emoji) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "emoji-picker__choice";
    button.textContent = emoji;
    button.addEventListener("click", () => {
      rememberEmoji(emoji);
      const onPick = this.#onPick;
      this.close();
      onPick?.(emoji);
    });
    return button;
  }
}

function recentEmoji() {
  try {
    const recent = JSON.parse(localStorage.getItem(RECENT_KEY) ?? "[]");
    return Array.isArray(recent) ? recent.filter((item) => typeof item === "string") : [];
  } catch {
    return [];
  }
}

function rememberEmoji(emoji) {
  const recent = [emoji, ...recentEmoji().filter((item) => item !== emoji)].slice(0, RECENT_COUNT);
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(recent));
  } catch {
    // Storage may be full or off: recent ones are a convenience.
  }
}

function textSpan(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}
